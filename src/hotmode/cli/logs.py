"""`hotmode logs`: the running mode's log, or one companion's, natively or in Docker."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from hotmode import procs
from hotmode.cli.lifecycle import docker_if_wanted, native_option
from hotmode.cli.options import config_option, load
from hotmode.config import Config
from hotmode.errors import StateError, UsageError
from hotmode.modes import Selection
from hotmode.native import companion_docker, companion_record, companions, runner
from hotmode.native.state import RunState


@click.command()
@config_option
@native_option("Read only the local processes' logs; do not ask Docker.")
@click.option("--follow/--no-follow", "-f", default=True, help="Keep printing new lines.")
@click.option(
    "--service", default=None, help="A companion's log (e.g. postgres); default: the app."
)
def logs(config_path: Path | None, native_only: bool, follow: bool, service: str | None) -> int:
    """Print the running mode's log, and follow it."""
    config = load(config_path)
    record = runner.read_state(config)
    if record is None:
        docker = docker_if_wanted(config, native_only)
        if docker is not None:
            return int(docker.logs(config, follow=follow, service=service))
        raise StateError("no mode is running here; start one with `hotmode up --detach`")
    if service not in (None, config.service):
        return _companion_log(config, record, str(service), follow)
    if not record.log:
        owner = record.owner
        if owner is not None and not procs.why_not(owner, started_by_us=False):
            where = f"the terminal of `hotmode up` (pid {owner.pid})"
        else:
            where = "the terminal it was started from, whose `hotmode up` is gone"
        raise StateError(
            f"{record.label} (pid {record.pid}) runs in the foreground and logs to {where}; "
            "stop it with `hotmode down` and start it with `hotmode up --detach` to keep a log"
        )
    _print(Path(record.log), follow, lambda: procs.is_same(record.server))
    return 0


def _companion_log(config: Config, record: RunState, name: str, follow: bool) -> int:
    """A native app's companion's log: its process's log file, or its container's log."""
    declared = {companion.name: companion for companion in config.services}
    if name not in declared:
        choices = ", ".join([config.service, *declared])
        raise UsageError(f"--service {name!r} is not a service of {config.name}; use {choices}")
    entries, _ = companion_record.read(config.root)
    entry = next((e for e in entries if e.name == name), None)
    if entry is not None and entry.how == "docker":
        container = companion_docker.container_of(config.root, name)
        if container is None:
            raise StateError(
                f"{name} ran in Docker and its container is gone; see `hotmode status`"
            )
        argv = ["docker", "logs", *(["--follow"] if follow else []), container]
        return subprocess.run(argv, check=False).returncode  # noqa: S603 - docker's own CLI
    selection = Selection(record.mode, record.edition, "running", "running")
    log = companions.log_path(config, selection, declared[name])
    if entry is None or not log.is_file():
        raise StateError(
            f"{name} does not run beside {record.label} (the app uses its embedded default, or "
            "it was stopped); `hotmode status` says what runs"
        )
    process = entry.process
    _print(log, follow, lambda: process is not None and procs.is_same(process))
    return 0


def _print(log: Path, follow: bool, running: Callable[[], bool]) -> None:
    """Print a log file, then, with `follow`, its new lines for as long as `running()`."""
    with open(log, encoding="utf-8", errors="replace") as handle:
        sys.stdout.write(handle.read())
        sys.stdout.flush()
        while follow and running():
            line = handle.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)
