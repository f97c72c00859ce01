"""Options shared by the commands that act on a mode, and the one way to turn them into values."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hotmode.config import Config, find_declaration, load_config
from hotmode.errors import UsageError
from hotmode.modes import Selection, resolve

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    """`--config FILE`: the declaration; found upwards from the current folder if not given."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        envvar="HOTMODE_CONFIG",
        help="The declaration (hotmode.toml or pyproject.toml). Found upwards by default.",
    )(func)


overlay_option = click.option(
    "--overlay",
    "overlays",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="An extra Compose file appended last (repeatable).",
)


def mode_options(func: F) -> F:
    """`--dev/--prod` and `--edition`, plus `--config`."""
    func = click.option(
        "--edition", default=None, metavar="NAME", help="The edition (default: declared)."
    )(func)
    func = click.option(
        "--dev", is_flag=True, expose_value=False, callback=_mode_flag,
        help="Development: mounted, reloading.",
    )(func)  # fmt: skip
    func = click.option(
        "--prod", is_flag=True, expose_value=False, callback=_mode_flag,
        help="Production: baked, immutable.",
    )(func)  # fmt: skip
    return config_option(func)


def _mode_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # Both flags fill one `mode` parameter; `--dev --prod` is an error, not "the last one wins".
    current = ctx.params.get("mode")
    if value:
        if current not in (None, param.name):
            raise click.UsageError("--dev and --prod exclude each other; give one")
        ctx.params["mode"] = param.name
    else:
        ctx.params.setdefault("mode", None)


def load(config_path: Path | None) -> Config:
    """Load the declaration named, or the nearest one."""
    if config_path:
        return load_config(config_path)
    try:
        here = Path.cwd()
    except FileNotFoundError:
        raise UsageError(
            "the current folder no longer exists; cd into your project again"
        ) from None
    return load_config(find_declaration(here))


def declaration_root(config_path: Path | None) -> Path | None:
    """The project folder of the declaration named or found, without reading it; None if none."""
    try:
        path = config_path or find_declaration(Path.cwd())
    except (UsageError, OSError):
        return None
    return path.resolve().parent


def select(config: Config, mode: str | None, edition: str | None) -> Selection:
    """Resolve the mode and edition with the process environment."""
    return resolve(config, mode=mode, edition=edition, environ=os.environ)
