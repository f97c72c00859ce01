"""`hotmode render | config | files | env`: the declaration turned into Compose files and lists."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from hotmode.cli.deploy import orchestrator_options, render_orchestrator
from hotmode.cli.options import config_option, load, mode_options, overlay_option, select
from hotmode.compose import layout
from hotmode.compose.engine import compose_environment, find_compose
from hotmode.compose.render import (
    leftover_files,
    remove_leftovers,
    render_files,
    stale_files,
    write_files,
)
from hotmode.config import Config
from hotmode.errors import AuditFailed
from hotmode.modes import Selection, all_selections


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def validate(config: Config, selections: list[Selection]) -> None:
    """Have Compose merge and validate every mode x edition given."""
    compose = find_compose()
    for selection in selections:
        files = layout.compose_files(config, selection)
        compose.config(files, layout.project_name(config, selection), "--quiet")


@click.command()
@config_option
@click.option("--check", is_flag=True, help="Exit 1 if the files on disk differ; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite files that were edited by hand.")
@click.option("--no-validate", is_flag=True, help="Skip validating each mode with Compose.")
@click.option(
    "--adopt",
    is_flag=True,
    help="Move hand-written files in the way to .hotmode/backup/<time>/ first (after init).",
)
@orchestrator_options
def render(
    config_path: Path | None,
    check: bool,
    force: bool,
    no_validate: bool,
    adopt: bool,
    **orchestrator: Any,
) -> None:
    """Write the deployment folder: Compose files for every mode x edition, Dockerfile, ...

    With --k8s, Kubernetes manifests under deployment/k8s/ instead; with --swarm, the Swarm
    stack file deployment/docker-stack.yml.
    """
    config = load(config_path)
    if orchestrator["k8s"] or orchestrator["swarm"]:
        render_orchestrator(config, check=check, force=force, **orchestrator)
        return
    rendered = render_files(config)
    if adopt and not check:
        from hotmode.adopt.backup import back_up
        from hotmode.compose.render import is_hand_edited

        hand = [p for p in rendered if p.is_file() and is_hand_edited(p.read_text("utf-8"))]
        for old, kept in back_up(config.root, hand):
            click.echo(f"moved     {_rel(old)} -> {_rel(kept)}")
    if check:
        stale = stale_files(rendered) + leftover_files(config, rendered)
        if stale:
            names = ", ".join(_rel(path) for path in stale)
            raise AuditFailed(f"rendered files are stale: {names}; run `hotmode render`")
        click.echo(f"{len(rendered)} rendered files are up to date")
        return
    report = write_files(rendered, force=force)
    leftovers = remove_leftovers(leftover_files(config, rendered), force=force)
    report.kept += leftovers.kept
    for path in leftovers.removed:
        click.echo(f"removed   {_rel(path)} (no longer declared)")
    for path in report.written:
        click.echo(f"wrote     {_rel(path)}")
    for path in report.unchanged:
        click.echo(f"unchanged {_rel(path)}")
    if not no_validate:
        validate(config, all_selections(config))
        click.echo(f"validated {len(all_selections(config))} modes with Compose")
    if report.kept:
        names = ", ".join(_rel(path) for path in report.kept)
        raise AuditFailed(
            f"kept hand-edited {names}; move the change into {config.path.name} "
            "and rerun, or rerun with --force to overwrite"
        )


@click.command()
@mode_options
@overlay_option
def config(
    config_path: Path | None, mode: str | None, edition: str | None, overlays: tuple[Path, ...]
) -> None:
    """Print the merged configuration of a mode, as `docker compose config` gives it."""
    cfg = load(config_path)
    selection = select(cfg, mode, edition)
    files = layout.compose_files(cfg, selection, overlays)
    click.echo(find_compose().config(files, layout.project_name(cfg, selection)), nl=False)


@click.command()
@mode_options
@overlay_option
def files(
    config_path: Path | None, mode: str | None, edition: str | None, overlays: tuple[Path, ...]
) -> None:
    """Print the `-f` list of a mode, for plain `docker compose`."""
    cfg = load(config_path)
    selection = select(cfg, mode, edition)
    paths = layout.compose_files(cfg, selection, overlays)
    click.echo(" ".join(f"-f {shlex.quote(str(path))}" for path in paths))


@click.command()
@mode_options
@overlay_option
def env(
    config_path: Path | None, mode: str | None, edition: str | None, overlays: tuple[Path, ...]
) -> None:
    """Print COMPOSE_FILE, COMPOSE_PROJECT_NAME and what the files expect: `eval $(hotmode env)`."""
    cfg = load(config_path)
    selection = select(cfg, mode, edition)
    paths = layout.compose_files(cfg, selection, overlays)
    values = {
        "COMPOSE_FILE": ":".join(str(path) for path in paths),
        "COMPOSE_PROJECT_NAME": layout.project_name(cfg, selection),
    }
    if selection.dev:
        # What hotmode itself hands Compose for dev, so plain `docker compose` merges the same.
        environment = compose_environment()
        for name in ("HOTMODE_HOME", "HOST_UID", "HOST_GID"):
            values[name] = environment[name]
    for name, value in values.items():
        click.echo(f"export {name}={shlex.quote(value)}")
    click.echo(f"# {selection.label}: mode from {selection.mode_source}", err=True)
