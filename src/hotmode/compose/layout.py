"""Which files and which Compose project make up each mode x edition.

One place decides the file names, their order and the project names, so that rendering, running,
`files`, `env`, `status` and `check` all agree.
"""

from __future__ import annotations

from pathlib import Path

from hotmode.config import Config
from hotmode.modes import Selection
from hotmode.services import project_of

BASE = "docker-compose.yml"
DEV = "docker-compose.dev.yml"
LOCAL = "docker-compose.local.yml"


def edition_file(edition: str) -> str:
    return f"docker-compose.{edition}.yml"


def dev_edition_file(edition: str) -> str:
    return f"docker-compose.dev-{edition}.yml"


def project_name(config: Config, selection: Selection) -> str:
    """The Compose project of a mode x edition: distinct for every combination."""
    return project_of(config.name, selection.mode, selection.edition, config.default_edition.name)


def image_name(config: Config, mode: str) -> str:
    """The image tag of a mode; dev has its own so a dev build never replaces the prod image."""
    return f"{config.name}:{mode}"


def compose_files(
    config: Config, selection: Selection, overlays: tuple[Path, ...] = ()
) -> list[Path]:
    """The `-f` list of a mode x edition, base first, then local overlays last."""
    names = [BASE]
    default = selection.edition == config.default_edition.name
    if not default:
        names.append(edition_file(selection.edition))
    if selection.dev:
        names.append(DEV)
        if not default:
            names.append(dev_edition_file(selection.edition))
    files = [config.deployment / name for name in names]
    local = config.deployment / LOCAL
    if local.is_file():
        files.append(local)
    files.extend(path.resolve() for path in overlays)
    return files
