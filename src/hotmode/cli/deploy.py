"""`render --k8s | --swarm` and `deploy --swarm`: prod beyond one Compose host.

hotmode renders for the orchestrator and deploys through its own tool; the logic lives in
`hotmode.orchestrate`, this module only parses, calls and prints.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from hotmode import source
from hotmode.audit.model import Report
from hotmode.cli.options import config_option, load
from hotmode.config import Config
from hotmode.errors import AuditFailed, StateError, UsageError

if TYPE_CHECKING:
    from hotmode.orchestrate.swarm import Target

F = TypeVar("F", bound=Callable[..., Any])


def k8s_companion_options() -> list[Callable[[F], F]]:
    """How each companion lives in a cluster: `render --k8s` and `check --k8s` take the same."""
    return [
        click.option(
            "--stateful", multiple=True, metavar="NAME[=UID:GID]",
            help="With --k8s: this companion as a StatefulSet (UID:GID if its user is a name).",
        ),
        click.option(
            "--managed", multiple=True, metavar="NAME[@EDITION]=DNS[:PORT]",
            help="With --k8s: this companion is a managed database at DNS name (and port), "
            "in every edition or in EDITION.",
        ),
        click.option(
            "--storage-class", default=None, metavar="NAME",
            help="With --k8s: the storage class of the StatefulSets' claims.",
        ),
        click.option(
            "--claim-size", default=None, metavar="SIZE",
            help="With --k8s: the size of each StatefulSet claim (default 1Gi), e.g. 20Gi.",
        ),
    ]  # fmt: skip


def k8s_options(
    config: Config,
    *,
    allow_dirty: bool,
    stateful: tuple[str, ...],
    managed: tuple[str, ...],
    registry: str | None,
    storage_class: str | None,
    claim_size: str | None = None,
) -> Any:
    """The Kubernetes render's options from the command line's."""
    from hotmode.orchestrate import k8s as kube
    from hotmode.orchestrate.k8s_pod import CLAIM_SIZE
    from hotmode.orchestrate.k8s_policy import parse_managed

    if claim_size is not None and not _QUANTITY.match(claim_size):
        raise UsageError(f"--claim-size {claim_size!r} is not a size; e.g. 20Gi or 500Mi")
    managed_by = parse_managed(managed)
    editions = {edition.name for edition in config.editions}
    for name, edition in managed_by:
        if edition is not None and edition not in editions:
            raise UsageError(
                f"--managed {name}@{edition}: no edition {edition!r}; the editions are "
                + ", ".join(sorted(editions))
            )

    users = {}
    for given in stateful:
        name, _, user = given.partition("=")
        if user:
            users[name] = user
    return kube.K8sOptions(
        revision=revision(config, allow_dirty),
        stateful=frozenset(given.partition("=")[0] for given in stateful),
        managed=managed_by,
        users=users,
        ports={c.name: c.prod.port for c in config.services if c.prod.port},
        registry=registry,
        storage_class=storage_class,
        claim_size=claim_size or CLAIM_SIZE,
    )


def k8s_check_options(func: F) -> F:
    """`check --k8s`: the companion options of `render --k8s`, and the registry."""
    options = [
        *k8s_companion_options(),
        click.option(
            "--registry", default=None, metavar="HOST:PORT", help="With --k8s: as rendered."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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
            "--stack", "stack_name", default=None, metavar="NAME",
            help="With --swarm: the stack, which names its volumes, secrets and configs.",
        ),
        click.option(
            "--registry", default=None, metavar="HOST:PORT",
            help="The registry the built image is pushed to and pulled from.",
        ),
        *k8s_companion_options(),
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


_QUANTITY = re.compile(r"^[1-9][0-9]*(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9._/-]+)?$")


def swarm_target(
    edition: str | None, stack_name: str | None, host_network: bool, registry: str | None
) -> Target:
    """The Swarm render's target, its stack name and registry checked."""
    if stack_name is not None and not _NAME.match(stack_name):
        raise UsageError(
            f"--stack {stack_name!r} is not a stack name: letters, digits, '_', '.', '-'"
        )
    if registry is not None and not _REGISTRY.match(registry):
        raise UsageError(f"--registry {registry!r} is not HOST[:PORT][/PATH], e.g. 10.9.0.1:5000")
    from hotmode.orchestrate.swarm import Target

    return Target(edition, stack_name, host_network, registry)


def render_orchestrator(
    config: Config,
    *,
    check: bool,
    force: bool,
    k8s: bool,
    swarm: bool,
    swarm_edition: str | None,
    host_network: bool,
    stack_name: str | None,
    registry: str | None,
    stateful: tuple[str, ...],
    managed: tuple[str, ...],
    storage_class: str | None,
    allow_dirty: bool,
    claim_size: str | None = None,
) -> None:
    """Render (or with `check`, compare) the Kubernetes manifests or the Swarm stack file."""
    from hotmode.compose.render import remove_leftovers, stale_files, write_files

    if k8s and swarm:
        raise UsageError("--k8s and --swarm render different files; give one")
    if k8s:
        from hotmode.orchestrate import k8s as kube

        options = k8s_options(
            config, allow_dirty=allow_dirty, stateful=stateful, managed=managed,
            registry=registry, storage_class=storage_class, claim_size=claim_size,
        )  # fmt: skip
        rendered = kube.render_files(config, options)
        leftovers = kube.leftover_files(config, rendered)
    else:
        from hotmode.orchestrate import swarm as stack

        target = swarm_target(swarm_edition, stack_name, host_network, registry)
        rendered = stack.render_files(config, target, allow_dirty=allow_dirty)
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
    config: Config,
    *,
    k8s: bool,
    edition: str | None,
    stateful: tuple[str, ...] = (),
    managed: tuple[str, ...] = (),
    registry: str | None = None,
    storage_class: str | None = None,
    claim_size: str | None = None,
) -> Report:
    """`check --k8s | --swarm`: the prod rules on what the orchestrator is given."""
    from hotmode.audit.model import Stack

    if k8s:
        from hotmode.compose.prod import merge
        from hotmode.compose.render import stale_files
        from hotmode.orchestrate import k8s as kube
        from hotmode.orchestrate import k8s_audit

        options = k8s_options(
            config, allow_dirty=True, stateful=stateful, managed=managed,
            registry=registry, storage_class=storage_class, claim_size=claim_size,
        )  # fmt: skip
        folder = config.deployment / kube.FOLDER
        if not folder.is_dir():
            raise UsageError(f"{folder} does not exist; run `hotmode render --k8s` first")
        rendered = kube.render_files(config, options)
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
    from hotmode.orchestrate import stack, swarm, swarm_audit

    path = config.deployment / swarm.STACK_FILE
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    # Compared with what the same render would give now: its edition, stack and networking.
    target = swarm.rendered_target(text) or swarm.Target()
    if edition is not None:
        target = dataclasses.replace(target, edition=edition)
    found = stack.stale(config, target) if text else []
    return swarm_audit.audit_report(config, found)


@click.command()
@config_option
@click.option("--swarm", is_flag=True, help="Deploy to the Docker Swarm the engine manages.")
@click.option("--edition", default=None, metavar="NAME", help="The edition (default: declared).")
@click.option("--stack", "stack_name", default=None, metavar="NAME", help="The stack's name.")
@click.option("--host-network", is_flag=True, help="Host networking, no ingress (one host, tests).")
@click.option(
    "--registry", default=None, metavar="HOST:PORT", help="Push the image there; nodes pull it."
)
@click.option("--allow-dirty", is_flag=True, help="Deploy an uncommitted tree (marked -dirty).")
@click.option("--force", is_flag=True, help="Overwrite a hand-edited stack file.")
def deploy(
    config_path: Path | None,
    swarm: bool,
    edition: str | None,
    stack_name: str | None,
    host_network: bool,
    registry: str | None,
    allow_dirty: bool,
    force: bool,
) -> None:
    """Build, render and deploy prod to Docker Swarm; exit 0 only when the new revision serves.

    `docker stack deploy` exits 0 even after Swarm rolled the update back: hotmode waits for each
    service's update state and reads the revision its running task serves instead (exit 1 on a
    rollback, with the failing task's error, health output and last log line).
    """
    from hotmode.orchestrate import stack

    if not swarm:
        raise UsageError("deploy needs an engine: --swarm (Kubernetes: `hotmode render --k8s`)")
    config = load(config_path)
    target = swarm_target(edition, stack_name, host_network, registry)
    name = stack_name or config.name
    click.echo(f"deploying {config.name} to Swarm stack {name} ...", err=True)
    done = stack.deploy(config, target, allow_dirty=allow_dirty, force=force)
    for other in done.others:
        click.echo(f"{other.service}: {other.state}", err=True)
    failed = [other for other in done.others if other.failed]
    if done.reason:
        serving = done.running_revision or "nothing"
        raise AuditFailed(f"rolled back: {done.reason}; {done.service} serves {serving}")
    if failed:
        raise AuditFailed(f"{failed[0].service} {failed[0].state}: {failed[0].reason}")
    if not done.serves_new:
        raise AuditFailed(
            f"{done.service} serves {done.running_revision or 'nothing'}, not {done.revision} "
            f"(update state {done.state}); see `hotmode status --swarm`"
        )
    if done.outages:
        slots = ", ".join(f"slot {o.slot} on node {o.node} {o.seconds:.2f}s" for o in done.outages)
        total = sum(o.seconds for o in done.outages)
        click.echo(
            f"host network: this update was stop-first, each slot without an answer on its "
            f"node's port from the old task's stop to the new one's first passing healthcheck: "
            f"{slots}; total {total:.2f}s",
            err=True,
        )
    click.echo(f"deployed: {done.service} serves {done.revision} (update {done.state})")


def _stack_services(config: Config, stack_name: str | None) -> tuple[str, dict[str, Any]]:
    """The stack's name and its rendered stack file's document (every service it runs)."""
    import yaml

    from hotmode.orchestrate import swarm

    path = config.deployment / swarm.STACK_FILE
    if not path.is_file():
        raise UsageError(f"{path} does not exist; deploy with `hotmode deploy --swarm`")
    text = path.read_text(encoding="utf-8")
    rendered = swarm.rendered_target(text)
    name = stack_name or (rendered.stack if rendered else None) or config.name
    document: dict[str, Any] = yaml.safe_load(text) or {}
    return name, document


def swarm_status(config: Config, stack_name: str | None) -> None:
    """`status --swarm`: each service's update state, then its tasks, health and revision."""
    from hotmode.orchestrate import stack

    name, document = _stack_services(config, stack_name)
    services = [f"{name}_{service}" for service in document.get("services") or {}]
    stack.require_manager()
    found = stack.inspect_services(services)
    if not found:
        raise StateError(f"no Swarm service of stack {name}; deploy with `hotmode deploy --swarm`")
    for service in services:
        if service not in found:
            click.echo(f"{service}: not deployed")
            continue
        update = (found[service].get("UpdateStatus") or {}).get("State", "none")
        image = str(found[service]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]).split("@")[0]
        serving = stack.running_revision(service) or image
        click.echo(f"{service}: update {update}, serving {serving}")
        for task in stack.tasks(service):
            status = task["Status"]
            state = stack.container_state(task) if status["State"] == "running" else None
            health = (state.get("Health") or {}).get("Status", "none") if state else "-"
            revision = stack.task_revision(task) or "-"
            error = f"  {status['Err']}" if status.get("Err") else ""
            click.echo(
                f"  {task['ID'][:12]}  {status['State']:<9} desired {task['DesiredState']:<9} "
                f"health {health:<9} {revision[:12]}{error}"
            )


def swarm_verify(
    config: Config, stack_name: str | None, node_engines: tuple[str, ...] = ()
) -> None:
    """`verify --swarm`: every service is as rendered, hardened, and the app's tasks are HEAD."""
    from hotmode.orchestrate import stack, swarm_verify

    engines = {}
    for given in node_engines:
        node, _, host = given.partition("=")
        if not node or not host:
            raise UsageError(
                f"--node-engine {given!r} is not NODE=HOST, e.g. worker-1=ssh://worker-1"
            )
        engines[node] = host
    name, document = _stack_services(config, stack_name)
    stack.require_manager()
    head = source.revision(config.source)
    result = swarm_verify.verify_stack(
        name, document, config.service, head,
        source.source_digest(config.source), source.committed_blobs(config.source),
        engines=swarm_verify.node_engines(engines),
    )  # fmt: skip
    for note in result.waived:
        click.echo(f"- waived: {note}")
    for note in result.elsewhere:
        click.echo(f"- checked by its spec only: {note}")
    for note in result.unread:
        click.echo(f"- not read: {note}")
    if result.problems:
        for problem in result.problems:
            click.echo(f"- {problem}")
        raise AuditFailed(
            f"stack {name} is not what was rendered: {len(result.problems)} problem(s)"
        )
    remote = f"; {len(result.elsewhere)} on other nodes by spec" if result.elsewhere else ""
    if result.remote:
        remote = f"; {result.remote} through other nodes' engines{remote}"
    click.echo(
        f"verified: stack {name} ({result.inside} task(s) read inside{remote}) is as rendered; "
        f"{config.service} serves {head}, read-only, non-root, no reload, tmpfs /tmp; "
        "no-new-privileges in every task read"
    )
