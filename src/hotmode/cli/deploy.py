"""`render --k8s | --swarm` and `deploy --swarm`: prod beyond one Compose host.

hotmode renders for the orchestrator and deploys through its own tool; the logic lives in
`hotmode.orchestrate`, this module only parses, calls and prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hotmode import source
from hotmode.audit.model import Report
from hotmode.cli.options import config_option, load
from hotmode.config import Config
from hotmode.errors import AuditFailed, StateError, UsageError

F = TypeVar("F", bound=Callable[..., Any])


def orchestrator_options(func: F) -> F:
    """The options `render` takes for Kubernetes and Swarm."""
    options = [
        click.option("--k8s", is_flag=True, help="Render Kubernetes manifests (deployment/k8s/)."),
        click.option("--swarm", is_flag=True, help="Render the Swarm stack file."),
        click.option(
            "--host-network", is_flag=True,
            help="With --swarm: host networking, no ingress (one host, loopback tests).",
        ),
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
    host_network: bool,
    stateful: tuple[str, ...],
    managed: tuple[str, ...],
    allow_dirty: bool,
) -> None:
    """Render (or with `check`, compare) the Kubernetes manifests or the Swarm stack file."""
    from hotmode.compose.render import remove_leftovers, stale_files, write_files

    if k8s and swarm:
        raise UsageError("--k8s and --swarm render different files; give one")
    if k8s:
        from hotmode.orchestrate import k8s as kube

        options = kube.K8sOptions(
            revision=revision(config, allow_dirty),
            stateful=frozenset(stateful),
            managed=_managed(managed),
        )
        rendered = kube.render_files(config, options)
        leftovers = kube.leftover_files(config, rendered)
    else:
        from hotmode.orchestrate import swarm as stack

        rendered = stack.render_files(
            config, swarm_edition, allow_dirty=allow_dirty, host_network=host_network
        )
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


def orchestrator_report(
    config: Config, *, k8s: bool, edition: str | None, host_network: bool = False
) -> Report:
    """`check --k8s | --swarm`: the prod rules on what the orchestrator is given."""
    from hotmode.audit.model import Stack

    if k8s:
        from hotmode.compose.prod import merge
        from hotmode.compose.render import stale_files
        from hotmode.orchestrate import k8s as kube
        from hotmode.orchestrate import k8s_audit

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
    import re

    from hotmode.orchestrate import stack, swarm, swarm_audit

    path = config.deployment / swarm.STACK_FILE
    header = path.read_text(encoding="utf-8")[:1000] if path.is_file() else ""
    # Compared with what the same render would give now: its edition and networking.
    rendered_for = re.search(r"^# Swarm stack for prod ([\w.-]+)", header, re.MULTILINE)
    found = (
        stack.stale(
            config,
            edition or (rendered_for.group(1) if rendered_for else None),
            "--host-network" in header,
        )
        if header
        else []
    )
    return swarm_audit.audit_report(config, found)


@click.command()
@config_option
@click.option("--swarm", is_flag=True, help="Deploy to the Docker Swarm the engine manages.")
@click.option("--edition", default=None, metavar="NAME", help="The edition (default: declared).")
@click.option("--stack", "stack_name", default=None, metavar="NAME", help="The stack's name.")
@click.option("--host-network", is_flag=True, help="Host networking, no ingress (one host, tests).")
@click.option("--allow-dirty", is_flag=True, help="Deploy an uncommitted tree (marked -dirty).")
@click.option("--force", is_flag=True, help="Overwrite a hand-edited stack file.")
def deploy(
    config_path: Path | None,
    swarm: bool,
    edition: str | None,
    stack_name: str | None,
    host_network: bool,
    allow_dirty: bool,
    force: bool,
) -> None:
    """Build, render and deploy prod to Docker Swarm; exit 0 only when the new revision serves.

    `docker stack deploy` exits 0 even after Swarm rolled the update back: hotmode reads the
    service's update state and the revision its running task serves instead (exit 1 on a
    rollback, with the task's reason).
    """
    from hotmode.orchestrate import stack

    if not swarm:
        raise UsageError("deploy needs an engine: --swarm (Kubernetes: `hotmode render --k8s`)")
    config = load(config_path)
    name = stack_name or config.name
    click.echo(f"deploying {config.name} to Swarm stack {name} ...", err=True)
    done = stack.deploy(
        config, edition, name, host_network=host_network, allow_dirty=allow_dirty, force=force
    )
    if done.reason:
        serving = done.running_revision or "nothing"
        raise AuditFailed(f"rolled back: {done.reason}; {done.service} serves {serving}")
    if not done.serves_new:
        raise AuditFailed(
            f"{done.service} serves {done.running_revision or 'nothing'}, not {done.revision} "
            f"(update state {done.state}); see `hotmode status --swarm`"
        )
    click.echo(f"deployed: {done.service} serves {done.revision} (update {done.state})")


def swarm_status(config: Config, stack_name: str | None) -> None:
    """`status --swarm`: the service's tasks, their state and health, revision, update state."""
    from hotmode.compose import docker
    from hotmode.orchestrate import stack

    name = stack.service_name(stack_name or config.name, config)
    service = docker.docker("service", "inspect", name, check=False)
    if service.returncode != 0:
        raise StateError(f"no Swarm service {name}; deploy with `hotmode deploy --swarm`")
    update = (json.loads(service.stdout)[0].get("UpdateStatus") or {}).get("State", "none")
    click.echo(f"{name}: update {update}, serving {stack.running_revision(name) or 'nothing'}")
    for task in stack.tasks(name):
        status = task["Status"]
        container = (status.get("ContainerStatus") or {}).get("ContainerID")
        health = "-"
        if container and status["State"] == "running":
            inspected = docker.docker("inspect", container, check=False)
            if inspected.returncode == 0:
                state = json.loads(inspected.stdout)[0]["State"]
                health = (state.get("Health") or {}).get("Status", "none")
        revision = stack.task_revision(task) or "?"
        error = f"  {status['Err']}" if status.get("Err") else ""
        click.echo(
            f"  {task['ID'][:12]}  {status['State']:<9} desired {task['DesiredState']:<9} "
            f"health {health:<9} {revision[:12]}{error}"
        )


def swarm_verify(config: Config, stack_name: str | None) -> None:
    """`verify --swarm`: the running tasks are HEAD, read from the service and task specs."""
    from hotmode.compose.verify import _served_files, file_problems
    from hotmode.orchestrate import stack

    name = stack.service_name(stack_name or config.name, config)
    running = [t for t in stack.tasks(name) if t["Status"]["State"] == "running"]
    if not running:
        raise AuditFailed(f"no running task of {name}; deploy with `hotmode deploy --swarm`")
    head = source.revision(config.source)
    digest = source.source_digest(config.source)
    committed = source.committed_blobs(config.source)
    problems = []
    for task in running:
        spec = task["Spec"]["ContainerSpec"]
        found = stack.task_problems(spec, stack.image_labels(task), head, digest)
        container = (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
        served = _served_files(container) if container else None
        if served is None:
            found.append("could not read the code inside the task to compare it")
        elif committed is not None:
            found += file_problems(served, committed)
        problems += [f"task {task['ID'][:12]}: {p}" for p in found]
    if problems:
        for problem in problems:
            click.echo(f"- {problem}")
        raise AuditFailed(f"{name} is not the commit: {len(problems)} problem(s) above")
    click.echo(
        f"verified: {name} ({len(running)} task(s)) serves {head}, read-only, non-root, "
        "no reload, tmpfs /tmp"
    )
