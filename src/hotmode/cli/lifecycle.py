"""`hotmode up | down | switch | status | logs`: one mode running at a time, and which.

With a reachable Docker engine the mode runs through Compose; without one, or with `--native`,
it runs as local processes (`hotmode.native`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from hotmode import procs, source
from hotmode.cli import data
from hotmode.cli.options import (
    config_option,
    declaration_root,
    load,
    mode_options,
    overlay_option,
    select,
)
from hotmode.compose import layout
from hotmode.config import Config
from hotmode.errors import ConfigError, HotmodeError, Interrupted, StateError
from hotmode.modes import Selection, all_selections, resolve
from hotmode.native import companion_record, companions, guard, runner, snapshot, state

F = TypeVar("F", bound=Callable[..., Any])


def native_option(help: str) -> Callable[[F], F]:
    """`--native`: leave Docker out of this command; `help` says what that means for it."""
    return click.option("--native", "native_only", is_flag=True, help=help)


RECORD_FILES = ("state.json", "companions.json")


def docker_if_wanted(config: Config, native_only: bool) -> Any:
    """The Docker driver module when an engine is reachable and wanted, else None."""
    if native_only:
        return None
    from hotmode.compose import docker

    return docker if docker.engine_reachable() else None


def _progress() -> Callable[[str], None] | None:
    """Where a Docker build or start shows its steps: the terminal, when one watches."""
    if not sys.stderr.isatty():
        return None
    return lambda line: click.echo(f"  {line}" if line else "", err=True)


def _note(message: str) -> None:
    if message:
        click.echo(f"hotmode: note: {message}", err=True)


@contextlib.contextmanager
def _signals(handler: Any) -> Iterator[None]:
    # A closed terminal (SIGHUP) stops a command as SIGTERM does: nothing is left running.
    previous = {signum: signal.signal(signum, handler) for signum in procs.STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def interruptible() -> contextlib.AbstractContextManager[None]:
    """A stop signal raises `Interrupted` here, so that the command can undo what it began."""
    return _signals(_raise_interrupted)


@contextlib.contextmanager
def changing(config: Config | Path) -> Iterator[None]:
    """Hold the project lock; refuse a link where hotmode keeps its own files, and a record
    file that is not a file (a FIFO, a folder); report and remove a stale or unreadable record
    first. A `Path` is the project's folder alone (its declaration cannot be read)."""
    root = config if isinstance(config, Path) else config.root
    guard.check_links(root)
    with state.project_lock(root):
        state.check_record_files(root, RECORD_FILES)
        _note(runner.clean_up(root))
        yield


def _prune(config: Config, running: state.RunState | None) -> None:
    keep = {running.revision} if running is not None and running.mode == "prod" else set()
    snapshot.prune(runner.state_dir(config), keep)


def _announce(record: state.RunState, detach: bool) -> None:
    click.echo(
        f"hotmode: {record.label} on http://{record.host}:{record.port} (pid {record.pid}, "
        f"revision {record.revision}; mode from {record.mode_source})"
    )
    if detach:
        click.echo(f"hotmode: logs in {record.log}; stop with `hotmode down`")


def _start_native(
    config: Config,
    selection: Selection,
    *,
    host: str,
    port: int | None,
    detach: bool,
    allow_uncommitted: bool,
) -> int:
    received: list[int] = []
    with changing(config), interruptible():
        record, process = runner.start(
            config,
            selection,
            host=host,
            port=port,
            detach=detach,
            allow_uncommitted=allow_uncommitted,
            say=click.echo,
        )
        _prune(config, record)
    _announce(record, detach)
    if detach:
        return 0
    # Handlers only record; `runner.supervise` stops the server in order.
    with _signals(lambda signum, _frame: received.append(signum)):
        return runner.supervise(
            config, process, record.server, lambda: received.pop(0) if received else None
        )


@click.command()
@mode_options
@overlay_option
@native_option("Run as local processes even if Docker is reachable.")
@click.option("--detach/--foreground", "-d", default=None, help="Return once healthy.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Native: the bind address.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: declared.")
@click.option("--allow-uncommitted", is_flag=True, help="Native prod outside git: serve the tree.")
@click.option("--allow-dirty", is_flag=True, help="Docker prod: build from a dirty tree.")
def up(
    config_path: Path | None,
    mode: str | None,
    edition: str | None,
    overlays: tuple[Path, ...],
    native_only: bool,
    detach: bool | None,
    host: str,
    port: int | None,
    allow_uncommitted: bool,
    allow_dirty: bool,
) -> int:
    """Start a mode. Native runs in the foreground unless --detach; Docker detaches."""
    config = load(config_path)
    selection = select(config, mode, edition)
    docker = docker_if_wanted(config, native_only)
    if docker is not None:
        with changing(config), interruptible():
            running = docker.up(
                config, selection, overlays=overlays, allow_dirty=allow_dirty, progress=_progress()
            )
        click.echo(
            f"hotmode: {running.describe()} is up in Docker, revision {running.revision} "
            f"(mode from {selection.mode_source}); stop it with `hotmode down`"
        )
        return 0
    return _start_native(
        config,
        selection,
        host=host,
        port=port,
        detach=bool(detach),
        allow_uncommitted=allow_uncommitted,
    )


@click.command()
@config_option
@overlay_option
@native_option("Stop only what runs as local processes; leave Docker alone.")
@click.option("--volumes", "volumes", is_flag=True, help="Also delete the data volumes (asks).")
@click.option("--yes", is_flag=True, help="With --volumes: do not ask.")
def down(
    config_path: Path | None,
    overlays: tuple[Path, ...],
    native_only: bool,
    volumes: bool,
    yes: bool,
) -> None:
    """Stop the running mode: every process or container, bounded, nothing left behind.

    Data volumes are kept; only --volumes deletes them, after naming them and asking.
    """
    try:
        config = load(config_path)
    except ConfigError:
        _down_without_declaration(config_path, volumes)
        raise
    if volumes:
        data.confirm_volumes(config, yes=yes)
    docker = docker_if_wanted(config, native_only)
    # The data goes while the lock is held: an `up` waiting for it never starts on a folder
    # being deleted.
    with changing(config), procs.deferred_signals():
        stopped = runner.stop(config)
        projects = docker.down(config, overlays=overlays) if docker is not None else {}
        deleted = data.remove_volumes(config) if volumes else []
    _say_stopped(stopped, projects)
    for name in deleted:
        click.echo(f"hotmode: deleted {name}")


def _down_without_declaration(config_path: Path | None, volumes: bool) -> None:
    """`down` when the declaration cannot be read: stop what the records prove and say it;
    Docker and data are left alone (the caller then reports the declaration's error, exit 2)."""
    root = declaration_root(config_path)
    if root is None or volumes:
        return
    with changing(root), procs.deferred_signals():
        stopped = runner.stop_project(root)
    if stopped.recorded or stopped.unrecorded or stopped.companions.stopped:
        _say_stopped(stopped, {})


def _say_stopped(stopped: runner.Stopped, projects: dict[str, list[str]]) -> None:
    if stopped.recorded is not None:
        click.echo(f"hotmode: stopped {stopped.recorded.label} (pid {stopped.recorded.pid})")
    for lost in stopped.unrecorded:
        click.echo(
            f"hotmode: stopped a {lost.label} server of this project that had no record "
            f"(pid {lost.server.pid})"
        )
    for line in stopped.companions.stopped:
        click.echo(f"hotmode: stopped {line}")
    for note in (*stopped.companions.notes, *stopped.foreign):
        _note(note)
    for project, names in projects.items():
        click.echo(f"hotmode: stopped {project} in Docker (containers {', '.join(names)})")
    if not (stopped.recorded or stopped.unrecorded or stopped.companions.stopped or projects):
        click.echo("hotmode: nothing was running")


@click.command()
@mode_options
@overlay_option
@native_option("Switch local processes even if Docker is reachable.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: kept.")
@click.option("--allow-uncommitted", is_flag=True, help="Native prod outside git: serve the tree.")
@click.option("--allow-dirty", is_flag=True, help="Docker prod: build from a dirty tree.")
def switch(
    config_path: Path | None,
    mode: str | None,
    edition: str | None,
    overlays: tuple[Path, ...],
    native_only: bool,
    port: int | None,
    allow_uncommitted: bool,
    allow_dirty: bool,
) -> None:
    """Stop the running mode, start another and wait for health; roll back if it fails.

    A signal (Ctrl-C, SIGTERM) during the switch rolls back too, then exits 130/143.
    """
    config = load(config_path)
    selection = select(config, mode, edition)
    docker = docker_if_wanted(config, native_only)
    if docker is not None:
        with changing(config), interruptible():
            switched = docker.switch(
                config, selection, overlays=overlays, allow_dirty=allow_dirty, progress=_progress()
            )
        if switched.previous is not None:
            click.echo(f"hotmode: stopped {switched.previous.describe()}")
        click.echo(f"hotmode: {switched.current.describe()} is up in Docker")
        return
    with changing(config):
        previous = runner.read_state(config)
        with interruptible():
            record = _switch_native(config, selection, previous, port, allow_uncommitted)
        _prune(config, record)
    if previous is not None:
        click.echo(f"hotmode: stopped {previous.label}")
    _announce(record, detach=True)


def _switch_native(
    config: Config,
    selection: Selection,
    previous: state.RunState | None,
    port: int | None,
    allow_uncommitted: bool,
) -> state.RunState:
    """Stop `previous`, start `selection` on the same address; on failure or a signal, start
    exactly what ran before (the same revision, host and port) and say what happened."""
    host = previous.host if previous is not None else "127.0.0.1"
    port = port or (previous.port if previous is not None else None)
    try:
        runner.stop(config)
        record, _ = runner.start(
            config,
            selection,
            host=host,
            port=port,
            detach=True,
            allow_uncommitted=allow_uncommitted,
            say=click.echo,
        )
    except (HotmodeError, OSError) as exc:
        if previous is None:
            raise
        with procs.deferred_signals():
            back = _roll_back(config, previous, exc)
        if isinstance(exc, Interrupted):
            raise Interrupted(exc.signum, f"interrupted: {back}") from exc
        raise StateError(f"{selection.label} failed ({exc}); {back}") from exc
    return record


def _roll_back(config: Config, previous: state.RunState, why: BaseException) -> str:
    """Start what ran before exactly as it ran; one clause saying how that went."""
    back = Selection(previous.mode, previous.edition, previous.mode_source, previous.edition_source)
    revision = previous.revision if previous.mode == "prod" else None
    try:
        runner.stop(config)
        runner.start(
            config,
            back,
            host=previous.host,
            port=previous.port,
            detach=True,
            allow_uncommitted=True,
            revision=revision,
        )
    except (HotmodeError, OSError) as again:
        raise StateError(
            f"switching failed ({why}), and so did bringing {previous.label} back ({again}); "
            "nothing runs now: fix the cause and run `hotmode up`"
        ) from again
    return f"{previous.label} is back (revision {previous.revision[:12]})"


@dataclass(frozen=True)
class _Live:
    """The mode that runs now, natively or in Docker, as `status` shows it."""

    mode: str
    edition: str
    details: dict[str, Any]
    summary: str
    stale: str = ""


def _live(config: Config, docker: Any, overlays: tuple[Path, ...]) -> _Live | None:
    record = runner.read_state(config)
    if record is not None:
        # A prod server keeps serving the commit it started from; once HEAD moves it is stale.
        head = source.revision(config.source) if record.mode == "prod" else None
        beside = companions.describe(config)
        return _Live(
            record.mode,
            record.edition,
            {"runner": "native", **runner.describe(record), "services": beside},
            f"pid {record.pid} on {record.host}:{record.port}, rev {record.revision[:12]}, "
            f"by {record.mode_source}" + "".join(f"; {c['name']} {c['detail']}" for c in beside),
            "HEAD moved" if head and record.revision != head else "",
        )
    current = docker.running(config) if docker is not None else None
    if current is None:
        return None
    selection = Selection(current.mode, current.edition, "docker", "docker")
    stale = []
    if current.config_hash != docker.config_hash(config, selection, overlays):
        stale.append("configuration changed")
    head = source.revision(config.source)
    if current.mode == "prod" and head and not current.revision.startswith(head):
        stale.append("HEAD moved")
    services = docker.services_of(config, current.project)
    others = "".join(
        f"; {s['service']} {s['state']} {s['health']}, data {', '.join(s['volumes']) or 'none'}"
        for s in services
        if s["service"] != config.service
    )
    return _Live(
        current.mode,
        current.edition,
        {"runner": "docker", **current.as_dict(), "services": services},
        f"container {current.container}, port {current.port}, rev {current.revision[:12]}, "
        f"{current.health or 'running'}{others}",
        ", ".join(stale),
    )


def _rows(config: Config, live: _Live | None) -> list[dict[str, Any]]:
    rows = []
    for selection in all_selections(config):
        files = [path.name for path in layout.compose_files(config, selection)]
        here = (
            live
            if live and (live.mode, live.edition) == (selection.mode, selection.edition)
            else None
        )
        rows.append(
            {
                "mode": selection.mode,
                "edition": selection.edition,
                "files": files,
                "project": layout.project_name(config, selection),
                "hot_reload": selection.dev,
                "source": "mounted" if selection.dev else "baked",
                "rebuild_needed": not selection.dev,
                "stale": here.stale if here else "",
                "running": here.details if here else None,
                "summary": here.summary if here else "",
            }
        )
    return rows


@click.command()
@config_option
@overlay_option
@native_option("Show only what runs as local processes; do not ask Docker.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--swarm", is_flag=True, help="The Swarm service's tasks instead (deploy --swarm).")
@click.option(
    "--stack", "stack_name", default=None, metavar="NAME", help="With --swarm: the stack."
)
def status(
    config_path: Path | None,
    overlays: tuple[Path, ...],
    native_only: bool,
    as_json: bool,
    swarm: bool,
    stack_name: str | None,
) -> None:
    """Every mode x edition, which one runs now (its services, health and data), and which one
    `hotmode up` would start."""
    import os

    config = load(config_path)
    if swarm:
        from hotmode.cli.deploy import swarm_status

        swarm_status(config, stack_name)
        return
    chosen = resolve(config, environ=os.environ)
    _note(state.read(config.root).problem)
    for note in companion_record.read(config.root)[1]:
        _note(note)
    live = _live(config, docker_if_wanted(config, native_only), overlays)
    rows = _rows(config, live)
    # Companions with no app: left by a server that died, or by an interrupted command.
    alone = [] if live is not None else [c for c in companions.describe(config) if c["running"]]
    for companion in alone:
        _note(
            f"{companion['name']} runs without the app ({companion['detail']}); "
            "stop it with `hotmode down`"
        )
    if as_json:
        document = {
            "app": config.name,
            "selected": {
                "mode": chosen.mode,
                "edition": chosen.edition,
                "mode_source": chosen.mode_source,
                "edition_source": chosen.edition_source,
            },
            "modes": [{k: v for k, v in row.items() if k != "summary"} for row in rows],
            "without_app": alone,
        }
        click.echo(json.dumps(document, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{config.name}: modes (files in {config.deployment})", title_justify="left"
    )
    for column in ("Mode", "Files", "Hot reload", "Source", "Rebuild needed", "Running"):
        table.add_column(column)
    for row in rows:
        rebuild = "no"
        if row["rebuild_needed"]:
            rebuild = f"yes, now: {row['stale']}" if row["stale"] else "yes"
        table.add_row(
            f"{row['mode']} {row['edition']}",
            " + ".join(
                [row["files"][0], *(n.removeprefix("docker-compose") for n in row["files"][1:])]
            ),
            "on" if row["hot_reload"] else "off",
            row["source"],
            rebuild,
            row["summary"],
        )
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    # What runs and what `up` would start are two facts; one line each, never one for the other.
    if live is None and alone:
        console.print("Running now: no app; stop what runs without it with `hotmode down`.")
    elif live is None:
        console.print("Running now: nothing.")
    else:
        console.print(f"Running now: {live.mode} {live.edition}.")
    console.print(
        f"`hotmode up` would start: {chosen.label} (mode from {chosen.mode_source}; "
        f"edition from {chosen.edition_source})"
    )
