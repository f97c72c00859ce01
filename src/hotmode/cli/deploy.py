"""`render --k8s | --swarm` and `deploy --swarm`: prod beyond one Compose host.

hotmode renders for the orchestrator and deploys through its own tool; the logic lives in
`hotmode.k8s` and `hotmode.compose.swarm`, this module only parses, calls and prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hotmode import source
from hotmode.audit.model import Report
from hotmode.config import Config
from hotmode.errors import AuditFailed, UsageError

F = TypeVar("F", bound=Callable[..., Any])


def orchestrator_options(func: F) -> F:
    """The options `render` takes for Kubernetes and Swarm."""
    options = [
        click.option("--k8s", is_flag=True, help="Render Kubernetes manifests (deployment/k8s/)."),
        click.option("--swarm", is_flag=True, help="Render the Swarm stack file."),
        click.option(
            "--edition", "swarm_edition", default=None, metavar="NAME",
            help="With --swarm: the edition (default: declared).",
        ),
        click.option(
            "--stateful", multiple=True, metavar="NAME",
            help="With --k8s: render this companion as a StatefulSet, not a managed database.",
        ),
        click.option(
            "--managed", multiple=True, metavar="NAME=HOST",
            help="With --k8s: the managed database's host for a companion.",
        ),
        click.option(
            "--allow-dirty", is_flag=True,
            help="Render for an uncommitted tree (the revision is marked -dirty).",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def revision(config: Config, allow_dirty: bool) -> str:
    """The revision an orchestrator's image is tagged with: HEAD, refused if dirty."""
    return source.build_revision(
        config.source, config.deployment / "Dockerfile", allow_dirty=allow_dirty
    )


def _managed(pairs: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, _, host = pair.partition("=")
        if not name or not host:
            raise UsageError(
                f"--managed {pair!r} is not NAME=HOST; e.g. --managed postgres=db.internal"
            )
        found[name] = host
    return found


def render_orchestrator(
    config: Config,
    *,
    check: bool,
    force: bool,
    k8s: bool,
    swarm: bool,
    swarm_edition: str | None,
    stateful: tuple[str, ...],
    managed: tuple[str, ...],
    allow_dirty: bool,
) -> None:
    """Render (or with `check`, compare) the Kubernetes manifests or the Swarm stack file."""
    from hotmode.compose.render import remove_leftovers, stale_files, write_files

    if k8s and swarm:
        raise UsageError("--k8s and --swarm render different files; give one")
    if k8s:
        from hotmode import k8s as kube

        options = kube.K8sOptions(
            revision=revision(config, allow_dirty),
            stateful=frozenset(stateful),
            managed=_managed(managed),
        )
        rendered = kube.render_files(config, options)
        leftovers = kube.leftover_files(config, rendered)
    else:
        from hotmode.compose import swarm as stack

        rendered = stack.render_files(config, swarm_edition, allow_dirty=allow_dirty)
        leftovers = []
    if check:
        stale = stale_files(rendered) + leftovers
        if stale:
            names = ", ".join(_rel(path) for path in stale)
            flag = "--k8s" if k8s else "--swarm"
            raise AuditFailed(f"rendered files are stale: {names}; run `hotmode render {flag}`")
        click.echo(f"{len(rendered)} rendered files are up to date")
        return
    report = write_files(rendered, force=force)
    removed = remove_leftovers(leftovers, force=force)
    for path in removed.removed:
        click.echo(f"removed   {_rel(path)} (no longer rendered)")
    for path in report.written:
        click.echo(f"wrote     {_rel(path)}")
    for path in report.unchanged:
        click.echo(f"unchanged {_rel(path)}")
    kept = report.kept + removed.kept
    if kept:
        names = ", ".join(_rel(path) for path in kept)
        raise AuditFailed(
            f"kept hand-edited {names}; move the change into {config.path.name} "
            "and rerun, or rerun with --force to overwrite"
        )


def orchestrator_report(config: Config, *, k8s: bool, edition: str | None) -> Report:
    """`check --k8s | --swarm`: the prod rules on what the orchestrator is given."""
    from hotmode.audit.model import Stack

    if k8s:
        from hotmode import k8s as kube
        from hotmode import k8s_audit
        from hotmode.compose.prod import merge
        from hotmode.compose.render import stale_files

        options = kube.K8sOptions(revision=revision(config, allow_dirty=True))
        rendered = kube.render_files(config, options)
        folder = config.deployment / kube.FOLDER
        if not folder.is_dir():
            raise UsageError(f"{folder} does not exist; run `hotmode render --k8s` first")
        stale = stale_files(rendered) + kube.leftover_files(config, rendered)
        stacks, findings = [], []
        for declared in config.editions:
            if edition is not None and declared.name != edition:
                continue
            objects = kube.expected_objects(
                config.name, config.service, merge(config, declared.name), options
            )
            overlay = folder / "overlays" / declared.name
            label = f"k8s {declared.name}"
            stacks.append(Stack(label=label, mode="prod", files=(overlay,)))
            findings += k8s_audit.audit(label, objects, overlay, stale)
            stale = []
        if not stacks:
            config.edition(edition or "")
        return Report(tuple(stacks), tuple(findings))
    from hotmode.compose import swarm as stack

    return stack.audit_report(config, edition)
