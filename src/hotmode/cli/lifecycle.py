"""`hotmode up | down | switch | status | logs`: one mode running at a time, and which.

With a reachable Docker engine the mode runs through Compose; without one, or with `--native`,
it runs as local processes (`hotmode.native`).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click

from hotmode import companions, native, source
from hotmode.cli.options import config_option, load, mode_options, overlay_option, select
from hotmode.compose import layout
from hotmode.config import Config
from hotmode.errors import StateError
from hotmode.modes import Selection, all_selections, resolve

native_option = click.option(
    "--native",
    "native_only",
    is_flag=True,
    help="Run as local processes even if Docker is reachable.",
)


def _docker(config: Config, native_only: bool) -> Any:
    """The Docker driver module when an engine is reachable and wanted, else None."""
    if native_only:
        return None
    from hotmode.compose import docker

    return docker if docker.engine_reachable() else None


def _announce(state: native.RunState, detach: bool) -> None:
    click.echo(
        f"hotmode: {state.label} on http://{state.host}:{state.port} (pid {state.pid}, "
        f"revision {state.revision}; mode from {state.mode_source})"
    )
    if detach:
        click.echo(f"hotmode: logs in {state.log}; stop with `hotmode down`")


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

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    if not detach:
        # Handlers only record; `native.supervise` stops the server in order.
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    state, process = native.start(
        config, selection, host=host, port=port, detach=detach,
        allow_uncommitted=allow_uncommitted, say=click.echo,
    )  # fmt: skip
    _announce(state, detach)
    if detach:
        return 0
    return native.supervise(config, process, lambda: received.pop(0) if received else None)


@click.command()
@mode_options
@overlay_option
@native_option
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
    docker = _docker(config, native_only)
    if docker is not None:
        running = docker.up(config, selection, overlays=overlays, allow_dirty=allow_dirty)
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
@native_option
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
    config = load(config_path)
    if volumes:
        from hotmode.cli.data import confirm_volumes

        confirm_volumes(config, yes=yes)
    state = native.stop(config)
    stopped = state is not None
    if state is not None:
        click.echo(f"hotmode: stopped {state.label} (pid {state.pid})")
    docker = _docker(config, native_only)
    if docker is not None:
        for project in docker.down(config, overlays=overlays):
            stopped = True
            click.echo(f"hotmode: stopped {project} in Docker")
    if not stopped:
        click.echo("hotmode: nothing was running")
    if volumes:
        from hotmode.cli.data import remove_volumes

        remove_volumes(config)


@click.command()
@mode_options
@overlay_option
@native_option
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: declared.")
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
    """Stop the running mode, start another and wait for health; roll back if it fails."""
    config = load(config_path)
    selection = select(config, mode, edition)
    docker = _docker(config, native_only)
    if docker is not None:
        switched = docker.switch(config, selection, overlays=overlays, allow_dirty=allow_dirty)
        if switched.previous is not None:
            click.echo(f"hotmode: stopped {switched.previous.describe()}")
        click.echo(f"hotmode: {switched.current.describe()} is up in Docker")
        return
    previous = native.stop(config)
    try:
        state, _ = native.start(
            config, selection, port=port, detach=True, allow_uncommitted=allow_uncommitted
        )
    except Exception as exc:
        if previous is None:
            raise
        back = resolve(config, mode=previous.mode, edition=previous.edition, environ={}, dotenv={})
        native.start(config, back, host=previous.host, port=previous.port, detach=True,
                     allow_uncommitted=allow_uncommitted)  # fmt: skip
        raise StateError(f"{selection.label} failed ({exc}); {previous.label} is back") from exc
    if previous is not None:
        click.echo(f"hotmode: stopped {previous.label}")
    _announce(state, detach=True)


@dataclass(frozen=True)
class _Live:
    """The mode that runs now, natively or in Docker, as `status` shows it."""

    mode: str
    edition: str
    details: dict[str, Any]
    summary: str
    stale: str = ""


def _live(config: Config, docker: Any, overlays: tuple[Path, ...]) -> _Live | None:
    state = native.read_state(config)
    if state is not None:
        # A prod server keeps serving the commit it started from; once HEAD moves it is stale.
        head = source.revision(config.source) if state.mode == "prod" else None
        beside = companions.describe(config)
        return _Live(
            state.mode,
            state.edition,
            {"runner": "native", **native.describe(state), "services": beside},
            f"pid {state.pid} on {state.host}:{state.port}, rev {state.revision[:12]}, "
            f"by {state.mode_source}" + "".join(f"; {c['name']} {c['detail']}" for c in beside),
            "HEAD moved" if head and state.revision != head else "",
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
@native_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(
    config_path: Path | None, overlays: tuple[Path, ...], native_only: bool, as_json: bool
) -> None:
    """The Quick Reference, live: every mode x edition, and which one runs."""
    import os

    config = load(config_path)
    chosen = resolve(config, environ=os.environ)
    live = _live(config, _docker(config, native_only), overlays)
    rows = _rows(config, live)
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
    console.print(
        f"Selected now: {chosen.label} (mode from {chosen.mode_source}; "
        f"edition from {chosen.edition_source})"
    )
    if live is None:
        console.print("Nothing is running. Start with `hotmode up`.")


@click.command()
@config_option
@native_option
@click.option("--follow/--no-follow", "-f", default=True, help="Keep printing new lines.")
@click.option("--service", default=None, help="Docker: a companion's log (e.g. postgres).")
def logs(config_path: Path | None, native_only: bool, follow: bool, service: str | None) -> int:
    """Print the running mode's log, and follow it."""
    config = load(config_path)
    state = native.read_state(config)
    if state is None:
        docker = _docker(config, native_only)
        if docker is not None:
            return int(docker.logs(config, follow=follow, service=service))
    if state is None or not state.log:
        raise StateError("no detached mode is running here; start one with `hotmode up --detach`")
    with open(state.log, encoding="utf-8", errors="replace") as handle:
        sys.stdout.write(handle.read())
        sys.stdout.flush()
        while follow and native.is_alive(state.pid):
            line = handle.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)
    return 0
