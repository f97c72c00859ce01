"""`hotmode init`: write a commented `hotmode.toml` inferred from the project's files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hotmode import scaffold


@click.command()
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Take every inferred value without asking (also without a TTY).",
)
@click.argument(
    "folder", required=False, type=click.Path(path_type=Path, file_okay=False, exists=True)
)
def init(yes: bool, folder: Path | None) -> None:
    """Infer the declaration from the project in FOLDER (default: here) and write it."""
    root = (folder or Path.cwd()).resolve()
    values = scaffold.infer(root)
    for note in values.notes:
        click.echo(f"hotmode: {note}")
    if not yes and sys.stdin.isatty():
        values = scaffold.Inferred(
            name=click.prompt("App name", default=values.name),
            source=click.prompt("Source folder", default=values.source),
            target=click.prompt("ASGI target (module:attribute)", default=values.target),
            port=click.prompt("Port", default=values.port, type=click.IntRange(1, 65535)),
            requirements=click.prompt("Requirements file", default=values.requirements),
        )
    path = scaffold.write_declaration(root, values)
    click.echo(f"hotmode: wrote {path}; next: `hotmode render`, then `hotmode up --dev`")
