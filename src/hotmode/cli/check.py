"""`hotmode check`: lint each mode's merged configuration; exit 1 on findings at `--fail-on`.

Without `-f` the modes come from the declaration (`--dev/--prod`, `--edition`, or `--all`);
with `-f FILE ...` any Compose file set is checked, in the mode `--dev/--prod` names (else the
one the files' names say, `docker-compose.dev.yml` being dev's; else prod), so files hotmode did
not render can be audited too; `--app` names the app's service when the shape of the files does
not say it (see `audit.roles`). Exit codes: 0 nothing at or above `--fail-on` (default medium), 1
findings at or above it, 2 input that cannot be checked.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from hotmode.audit import checker, report
from hotmode.audit.model import Severity
from hotmode.cli.deploy import k8s_check_options
from hotmode.cli.options import load, mode_options, select
from hotmode.errors import UsageError
from hotmode.modes import all_selections


@click.command()
@mode_options
@click.option(
    "--all", "every", is_flag=True, help="Every mode x edition (with --dev/--prod: its editions)."
)
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Check these Compose files (repeatable, in -f order) instead of the declaration's.",
)
@click.option(
    "--app",
    "apps",
    multiple=True,
    metavar="SERVICE",
    help="The app's service (repeatable); without it, the declaration's, or weighed from evidence.",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["low", "medium", "high"]),
    default="medium",
    show_default=True,
    help="Exit 1 if a finding is at or above this severity.",
)
@click.option("--show-waived", is_flag=True, help="Also list waived findings (text format).")
@click.option("--rules", "list_rules", is_flag=True, help="List hotmode's rules and exit.")
@click.option("--k8s", is_flag=True, help="Check the Kubernetes manifests (render --k8s).")
@click.option("--swarm", is_flag=True, help="Check the Swarm stack file (render --swarm).")
@k8s_check_options
def check(
    config_path: Path | None,
    mode: str | None,
    edition: str | None,
    every: bool,
    files: tuple[Path, ...],
    apps: tuple[str, ...],
    output: str,
    fail_on: str,
    show_waived: bool,
    list_rules: bool,
    k8s: bool,
    swarm: bool,
    **companions: Any,
) -> int:
    """Lint each mode's merged configuration: hotmode's mode rules and compose-lint's."""
    if list_rules:
        click.echo(report.catalogue(), nl=False)
        return 0
    if k8s or swarm:
        from hotmode.cli.deploy import orchestrator_report

        if swarm and any(companions.values()):
            raise UsageError("--stateful, --managed, --registry, --storage-class go with --k8s")
        result = orchestrator_report(load(config_path), k8s=k8s, edition=edition, **companions)
    elif files:
        if every or edition:
            raise UsageError("-f checks the files given, in one mode; drop --all and --edition")
        if mode is None:
            from hotmode.adopt.old import named_mode

            mode = named_mode(files) or "prod"
        result = checker.check([checker.file_stack(files, mode, apps)])
    else:
        config = load(config_path)
        if every:
            selections = [
                s
                for s in all_selections(config)
                if (mode is None or s.mode == mode) and (edition is None or s.edition == edition)
            ]
        else:
            selections = [select(config, mode, edition)]
        stacks = checker.declared_stacks(config, selections)
        if apps:
            stacks = [replace(stack, apps=apps) for stack in stacks]
        result = checker.check(stacks)
    threshold = Severity.parse(fail_on)
    base = Path.cwd()
    if output == "json":
        click.echo(report.to_json(result, threshold, base), nl=False)
    elif output == "sarif":
        click.echo(report.to_sarif(result, base), nl=False)
    else:
        click.echo(report.text(result, threshold, base, show_waived=show_waived), nl=False)
    return 1 if result.failing(threshold) else 0
