"""`hotmode run TARGET`: serve an ASGI or WSGI app with real uvicorn, and with `--reload`, the fast
reload.

Thin: parse the options, set up the one log line format, call the reload engine, return its code.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from hotmode.errors import UsageError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class _EchoHandler(logging.Handler):
    """hotmode's own lines, on stderr, as `hotmode: ...`."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(f"hotmode: {record.getMessage()}", err=True)
        except Exception:  # logging must never take the supervisor down
            self.handleError(record)


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("hotmode")
    logger.handlers[:] = [_EchoHandler()]
    logger.propagate = False
    debug = level in ("debug", "trace")
    logger.setLevel(logging.DEBUG if debug else getattr(logging, level.upper()))


@click.command()
@click.argument("target")
@click.option("--reload", is_flag=True, help="Reload on code changes (fork from a warm zygote).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--factory",
    is_flag=True,
    help="TARGET is a factory (module:create_app): call it for the app.",
)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Env file for the workers; watched, and re-read on change.",
)
@click.option(
    "--app-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Folder the TARGET is imported from (default: the current one); watched by default.",
)
@click.option(
    "--watch",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Folder to watch instead of the app folder (repeatable).",
)
@click.option("--include", multiple=True, metavar="GLOB", help="Also reload on these files.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Never reload on these files.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@click.option(
    "--install",
    default=None,
    metavar="CMD",
    help="Run CMD in the app folder when a dependency file changes, before the zygote rebuilds.",
)
def run(
    target: str,
    reload: bool,
    host: str,
    port: int,
    workers: int,
    factory: bool,
    env_file: Path | None,
    app_dir: Path | None,
    watch: tuple[Path, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    log_level: str,
    install: str | None,
) -> int:
    """Serve TARGET (module:attribute) with uvicorn: an ASGI app (FastAPI, Starlette,
    Litestar, Django's asgi.py) or a WSGI app (Flask, Django's wsgi.py, Pyramid, Falcon), told
    apart by inspecting it. TARGET is written as users write it: main:app,
    config.wsgi:application, app:create_app() (a factory called, with literal arguments), or
    app:create_app with --factory. Django in dev is served as runserver serves it (static
    files when DEBUG is on).

    HOTMODE_DRAIN_TIMEOUT (seconds, default 3) bounds how long an old worker may finish its
    requests after a reload or at stop; HOTMODE_FORCE_POLLING forces polling for changes;
    HOTMODE_PARTIAL_RELOAD (auto, 1 or 0): whether a save re-imports only what it made stale
    over an app zygote; auto keeps one only for an app that takes 50 ms or more to import.
    """
    from hotmode.reload import engine
    from hotmode.reload.options import RunOptions
    from hotmode.target import TargetSyntaxError, parse_target

    try:
        parse_target(target)
    except TargetSyntaxError as exc:
        raise UsageError(f"TARGET {exc}") from None
    drain = os.environ.get("HOTMODE_DRAIN_TIMEOUT", "3")
    try:
        drain_timeout = float(drain)
    except ValueError:
        raise UsageError(f"HOTMODE_DRAIN_TIMEOUT={drain!r} is not a number of seconds") from None
    _configure_logging(log_level)
    options = RunOptions(
        target=target,
        factory=factory,
        app_dir=(app_dir or Path.cwd()).resolve(),
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        env_file=env_file.resolve() if env_file else None,
        watch=tuple(p.resolve() for p in watch),
        include=include,
        exclude=exclude,
        log_level=log_level,
        install=install,
        drain_timeout=drain_timeout,
        **_partial(os.environ.get("HOTMODE_PARTIAL_RELOAD", "auto")),
    )
    return engine.run(options, os.environ)


def _partial(value: str) -> dict[str, Any]:
    """HOTMODE_PARTIAL_RELOAD: `0` imports the whole app at every save; `1` keeps the unchanged
    part preloaded whatever it costs; `auto` (the default) only when the whole app takes 50 ms
    or more to import."""
    lowered = value.strip().lower()
    if lowered in ("0", "false", "no", "off"):
        return {"partial": False}
    if lowered in ("1", "true", "yes", "on"):
        return {"partial": True, "partial_from_ms": 0.0}
    if lowered in ("", "auto"):
        return {}
    raise UsageError(f"HOTMODE_PARTIAL_RELOAD={value!r}: use 0, 1 or auto")
