"""`hotmode up | down | switch | status | logs`: one mode running at a time, and which.

With a reachable Docker engine the mode runs through Compose; without one, or with `--native`,
it runs as local processes (`hotmode.native`).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from hotmode import native, snapshot
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
    try:
        from hotmode.compose import docker  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        return None
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
        config, selection, host=host, port=port, detach=detach, allow_uncommitted=allow_uncommitted
    )
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
        click.echo(f"hotmode: {selection.label} is up in Docker ({running.project})")
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
def down(config_path: Path | None, overlays: tuple[Path, ...], native_only: bool) -> None:
    """Stop the running mode: every process or container, bounded, nothing left behind."""
    config = load(config_path)
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
        docker.switch(config, selection, overlays=overlays, allow_dirty=allow_dirty)
        click.echo(f"hotmode: switched to {selection.label} in Docker")
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


def _rows(config: Config, running: native.RunState | None) -> list[dict[str, Any]]:
    # A prod server keeps serving the commit it started from; once HEAD moves it is stale.
    head = snapshot.revision(config.source) if running and running.mode == "prod" else None
    rows = []
    for selection in all_selections(config):
        files = [path.name for path in layout.compose_files(config, selection)]
        is_running = (
            running is not None
            and running.mode == selection.mode
            and running.edition == selection.edition
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
                "stale": bool(is_running and head and running and running.revision != head),
                "running": native.describe(running) if is_running and running else None,
            }
        )
    return rows


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: Path | None, as_json: bool) -> None:
    """The Quick Reference, live: every mode x edition, and which one runs."""
    import os

    config = load(config_path)
    running = native.read_state(config)
    chosen = resolve(config, environ=os.environ)
    rows = _rows(config, running)
    if as_json:
        document = {
            "app": config.name,
            "selected": {
                "mode": chosen.mode,
                "edition": chosen.edition,
                "mode_source": chosen.mode_source,
                "edition_source": chosen.edition_source,
            },
            "modes": rows,
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
        state = row["running"]
        table.add_row(
            f"{row['mode']} {row['edition']}",
            " + ".join(
                [row["files"][0], *(n.removeprefix("docker-compose") for n in row["files"][1:])]
            ),
            "on" if row["hot_reload"] else "off",
            row["source"],
            ("yes, now: HEAD moved" if row["stale"] else "yes") if row["rebuild_needed"] else "no",
            (
                f"pid {state['pid']} on {state['host']}:{state['port']}, "
                f"rev {state['revision'][:12]}, by {state['mode_source']}"
                if state
                else ""
            ),
        )
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    console.print(
        f"Selected now: {chosen.label} (mode from {chosen.mode_source}; "
        f"edition from {chosen.edition_source})"
    )
    if running is None:
        console.print("Nothing is running. Start with `hotmode up`.")


@click.command()
@config_option
@click.option("--follow/--no-follow", "-f", default=True, help="Keep printing new lines.")
def logs(config_path: Path | None, follow: bool) -> None:
    """Print the running mode's log, and follow it."""
    config = load(config_path)
    state = native.read_state(config)
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
