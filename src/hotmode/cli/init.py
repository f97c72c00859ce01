"""`hotmode init`: write a commented `hotmode.toml` inferred from the project's files, or, with
`--from DIR`, from the Compose files a team keeps today, with a report of every mode."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from hotmode.adopt import scaffold


@click.command()
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Take every inferred value without asking (also without a TTY).",
)
@click.option(
    "--from",
    "origin",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="The folder of the Compose files to adopt (e.g. deployment).",
)
@click.option(
    "--app",
    "app",
    default=None,
    metavar="NAME",
    help="With --from: the app's service, when the files do not say which it is.",
)
@click.option(
    "--rename-volumes",
    is_flag=True,
    help="Adopt even where a data volume cannot keep its name (its data stays in the old one).",
)
@click.option(
    "--share-data",
    is_flag=True,
    help="Keep a data volume shared where the old files shared it across modes (dev on "
    "prod's data); by default dev gets its own.",
)
@click.option(
    "--requirements",
    default=None,
    help="The requirements file, relative to the source folder (when init finds none).",
)
@click.option(
    "--target", default=None, help="The app (ASGI or WSGI), module:attribute (when not found)."
)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="The app's port.")
@click.argument(
    "folder", required=False, type=click.Path(path_type=Path, file_okay=False, exists=True)
)
def init(
    yes: bool,
    origin: Path | None,
    app: str | None,
    rename_volumes: bool,
    share_data: bool,
    requirements: str | None,
    target: str | None,
    port: int | None,
    folder: Path | None,
) -> int:
    """Infer the declaration of the project in FOLDER (default: here) and write it."""
    root = (folder or Path.cwd()).resolve()
    scaffold.refuse_existing(root)
    if origin is not None:
        given = {"target": target, "port": port, "requirements": requirements, "service": app}
        return _adopt(root, origin.resolve(), rename_volumes, share_data, given)
    if app is not None:
        raise click.UsageError("--app names the app among the files of --from DIR; add --from")
    values = scaffold.infer(root)
    for note in values.notes:
        click.echo(f"hotmode: {note}")
    values = dataclasses.replace(
        values,
        requirements=requirements or values.requirements,
        target=target or values.target,
        port=port or values.port,
    )
    asking = not yes and sys.stdin.isatty()
    if not values.requirements and not asking:
        from hotmode.errors import StateError

        raise StateError(
            f"no requirements file found in {values.source}/ (requirements.txt, "
            "requirements/base.txt, ...); pass --requirements FILE"
        )
    if asking:
        values = scaffold.Inferred(
            name=click.prompt("App name", default=values.name),
            source=click.prompt("Source folder", default=values.source),
            target=click.prompt("App target (module:attribute)", default=values.target),
            port=click.prompt("Port", default=values.port, type=click.IntRange(1, 65535)),
            requirements=click.prompt("Requirements file", default=values.requirements or None),
            health=values.health,
        )
    path = scaffold.write_declaration(root, values)
    click.echo(f"hotmode: wrote {path}; next: `hotmode render`, then `hotmode up --dev`")
    return 0


def _adopt(
    root: Path, origin: Path, rename_volumes: bool, share_data: bool, given: dict[str, Any]
) -> int:
    from hotmode.adopt import infer as adopt
    from hotmode.adopt import report as adopt_report
    from hotmode.compose.engine import find_compose
    from hotmode.config import load_config

    compose = find_compose()
    adoption = adopt.adopt(root, origin, compose, share_data=share_data, given=given)
    if adoption.renamed and not rename_volumes:
        from hotmode.errors import StateError

        raise StateError(
            f"data volumes would change name ({'; '.join(adoption.renamed)}): their data would "
            "not follow; rerun with --rename-volumes to adopt anyway (the old volumes are kept)"
        )
    text = adopt.declaration_text(
        adoption, origin.relative_to(root) if origin.is_relative_to(root) else origin
    )
    path = scaffold.write_text_declaration(root, text)
    config = load_config(path)
    reports = adopt_report.reports(adoption, config, compose)
    for report in reports:
        click.echo(f"\n{report.label}:")
        for title, items in (
            ("kept", report.kept),
            ("changed", report.changed),
            ("not carried", report.not_carried),
            ("finding", report.findings),
        ):
            for item in items:
                click.echo(f"  {title:<11} {item}")
    for item in adoption.changed:
        click.echo(f"  changed     {item}")
    for item in adoption.not_carried:
        click.echo(f"  not carried {item}")
    for item in adoption.renamed:
        click.echo(f"  renamed     {item} (--rename-volumes)")
    for note in adoption.notes:
        click.echo(f"hotmode: {note}")
    for problem in adoption.left_out:
        click.echo(f"hotmode: {problem}", err=True)
    click.echo(f"\nhotmode: wrote {path}; next: `hotmode render --adopt`")
    lost = adoption.left_out or adoption.not_carried or any(r.not_carried for r in reports)
    if lost:
        click.echo(
            "hotmode: not everything was carried (listed above as `not carried` or left out); "
            "the declaration is written: check those items, then `hotmode render --adopt`",
            err=True,
        )
    return 1 if lost else 0
