"""`hotmode down --volumes`: the one way data is deleted, named and asked for first.

Data volumes (a companion's database) outlive `down` and `switch`; deleting them is asked for
by name, lists what will go, and asks unless `--yes`. Native data folders under `.hotmode/`
are the same data and go the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hotmode.config import Config
from hotmode.errors import StateError, UsageError
from hotmode.native import data_home


def _what(config: Config) -> tuple[list[str], list[Path]]:
    volumes: list[str] = []
    if config.services:
        from hotmode.compose import docker

        if docker.engine_reachable():
            volumes = docker.data_volumes(config)
    return volumes, data_home.data_folders(config)


def confirm_volumes(config: Config, *, yes: bool) -> None:
    """Name the data that `--volumes` deletes and ask; raise `UsageError` on no."""
    volumes, folders = _what(config)
    names = [f"volume {v}" for v in volumes]
    names += [f"folder {data_home.describe(config, f)}" for f in folders]
    if not names:
        return
    click.echo(f"hotmode: --volumes deletes the data of every mode: {', '.join(names)}")
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("--volumes deletes data; confirm with --yes (no terminal to ask)")
    if not click.confirm("Delete this data for good?", default=False):
        raise StateError("nothing deleted; the data is kept")


def remove_volumes(config: Config) -> list[str]:
    """Delete the data volumes and native data folders (after `confirm_volumes`, under the
    project lock); return what was deleted."""
    volumes, folders = _what(config)
    if volumes:
        from hotmode.compose import docker

        docker.remove_volumes(volumes)
    described = [data_home.describe(config, folder) for folder in folders]
    for folder in folders:
        data_home.delete(config, folder)
    return [*volumes, *described]
