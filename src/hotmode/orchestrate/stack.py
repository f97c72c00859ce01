"""Deploying the Swarm stack and judging it by what runs, never by `stack deploy`'s exit code.

`docker stack deploy` exits 0 even after Swarm rolled an update back; the truth is each service's
`UpdateStatus.State` and the revision its running tasks serve. `deploy` builds the images first
(with the revision and source-digest labels), pushes them when a registry is given, refreshes the
stack file, deploys detached, then polls every service until Swarm gives its verdict, and returns
a `Deployed` that says what happened: which revision serves, why a rollback happened (Swarm's
error, the failing health probe's output, the task's last log line), and on the host network how
long the stop-first update refused connections.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from hotmode.compose import docker, layout
from hotmode.compose.docker import REVISION_LABEL
from hotmode.compose.engine import find_compose
from hotmode.compose.render import stale_files, write_files
from hotmode.config import Config
from hotmode.errors import AuditFailed, ComposeError, StateError
from hotmode.modes import Selection
from hotmode.orchestrate.swarm import (
    STACK_FILE,
    Target,
    build_environment,
    built_image,
    monitor_seconds,
    render_files,
)

DEPLOY_TIMEOUT = 900
_ROLLED_BACK = {"rollback_started", "rollback_paused", "rollback_completed", "paused"}
_VERDICTS = {"completed", "paused", "rollback_paused", "rollback_completed"}
# How often Swarm's state is read while an update runs.
_POLL = 0.5
# Slack on top of Swarm's own monitor window, for a loaded machine.
_SLACK = 60.0


@dataclass(frozen=True)
class Verdict:
    """One service after a deploy: Swarm's update state (or `created`, `unchanged`), and why."""

    service: str
    state: str
    reason: str = ""
    # The task Swarm's update message blamed while the update ran, if any.
    blamed: str = ""

    @property
    def failed(self) -> bool:
        return self.state in _ROLLED_BACK or self.state == "failed"


@dataclass(frozen=True)
class Deployed:
    """The outcome of a deploy: the revision asked for and what the services run now."""

    service: str
    revision: str
    state: str
    running_revision: str | None
    reason: str = ""
    # On the host network: per slot, from the old task's stop to the new one's first health.
    outages: tuple[Outage, ...] = ()
    others: tuple[Verdict, ...] = field(default_factory=tuple)

    @property
    def serves_new(self) -> bool:
        return self.running_revision == self.revision and self.state not in _ROLLED_BACK


def service_name(stack: str, config: Config) -> str:
    return f"{stack}_{config.service}"


def build(
    config: Config, edition: str, env: Mapping[str, str], registry: str | None = None
) -> list[str]:
    """Build every service with `build:` as `[registry/]<name>:<revision>`; the tags built.

    Compose builds (not `docker build`, whose legacy builder writes its temporary Dockerfile's
    name into the served `.dockerignore`), tagged through a throw-away overlay so that the
    `:prod` tag a Compose prod on the same engine runs is left alone. With a registry, each tag
    is pushed, so that every node can pull it.
    """
    selection = Selection("prod", edition, "deploy", "deploy")
    files = layout.compose_files(config, selection)
    project = layout.project_name(config, selection)
    compose = find_compose()
    merged = compose.run(files, project, "config", "--format", "json", env=env)
    services = json.loads(merged.stdout).get("services") or {}
    tags = {
        name: built_image(str(service.get("image") or name), env["HOTMODE_REVISION"], registry)
        for name, service in sorted(services.items())
        if service.get("build")
    }
    if not tags:
        return []
    overlay = {"services": {name: {"image": tag} for name, tag in tags.items()}}
    with tempfile.TemporaryDirectory(prefix="hotmode-swarm-") as folder:
        path = Path(folder) / "compose.tags.yml"
        path.write_text(json.dumps(overlay), encoding="utf-8")
        try:
            compose.run(
                [*files, path], project, "build", *sorted(tags), env=env, timeout=DEPLOY_TIMEOUT
            )
        except ComposeError as exc:
            raise StateError(f"building for Swarm failed: {exc}") from exc
    if registry:
        for tag in sorted(tags.values()):
            pushed = docker.docker("push", "--quiet", tag, timeout=DEPLOY_TIMEOUT, check=False)
            if pushed.returncode != 0:
                lines = (pushed.stderr or pushed.stdout).strip().splitlines()
                raise StateError(
                    f"pushing {tag} failed: {lines[-1] if lines else 'no message'}; is the "
                    f"registry {registry} up, and does this engine trust it?"
                )
    return sorted(tags.values())


def require_manager() -> None:
    """Raise `StateError` naming the problem when the engine asked is not a reachable Swarm
    manager: an engine that does not answer is not a stack that is "not deployed"."""
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    result = docker.docker(
        "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        timeout=30, check=False,
    )  # fmt: skip
    lines = (result.stderr or "").strip().splitlines()
    if result.returncode != 0 or not result.stdout.strip():
        raise StateError(
            f"cannot reach the Swarm manager's engine at {where}: "
            f"{lines[-1] if lines else 'no answer'}; start it, or point DOCKER_HOST at a manager"
        )
    state, _, control = result.stdout.strip().partition(" ")
    if state != "active" or control != "true":
        raise StateError(
            f"the engine at {where} is not a Swarm manager (swarm {state or 'inactive'}); "
            "point DOCKER_HOST at a manager"
        )


def inspect_services(names: list[str]) -> dict[str, dict[str, Any]]:
    """`docker service inspect` of those services that exist, by name."""
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        result = docker.docker("service", "inspect", name, check=False)
        if result.returncode == 0:
            documents: list[dict[str, Any]] = json.loads(result.stdout)
            if documents:
                found[name] = documents[0]
    return found


def tasks(name: str) -> list[dict[str, Any]]:
    """The service's tasks, newest first, as `docker inspect` gives them."""
    ids = docker.docker("service", "ps", "--quiet", "--no-trunc", name, check=False).stdout.split()
    if not ids:
        return []
    # Swarm prunes old tasks at any moment: one gone between the listing and this read is
    # skipped (`docker inspect` still prints the others).
    result = docker.docker("inspect", "--type", "task", *ids, check=False)
    found: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return sorted(found, key=lambda t: str(t.get("UpdatedAt")), reverse=True)


def image_labels(task: Mapping[str, Any]) -> dict[str, str]:
    """The labels of the image a task runs (none if the image is not on this engine)."""
    image = str(task["Spec"]["ContainerSpec"]["Image"]).split("@")[0]
    result = docker.docker("image", "inspect", image, check=False)
    if result.returncode != 0:
        return {}
    labels: dict[str, str] = json.loads(result.stdout)[0]["Config"].get("Labels") or {}
    return labels


def task_revision(task: Mapping[str, Any]) -> str | None:
    """The revision label of the image a task runs."""
    return image_labels(task).get(REVISION_LABEL)


def running_revision(name: str) -> str | None:
    """The revision the running task serves, or None if no task runs."""
    running = [t for t in tasks(name) if t["Status"]["State"] == "running"]
    return task_revision(running[0]) if running else None


def container_state(task: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `State` of a task's container, if it is on this engine."""
    container = (task.get("Status", {}).get("ContainerStatus") or {}).get("ContainerID")
    if not container:
        return None
    result = docker.docker("inspect", container, check=False)
    if result.returncode != 0:
        return None
    state: dict[str, Any] = json.loads(result.stdout)[0]["State"]
    return state


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def task_logs(task_id: str, lines: int = 20) -> subprocess.CompletedProcess[str]:
    """The task's last output lines, through the manager, on whichever node it ran
    (`docker logs` reaches only this engine's containers: "No such container" elsewhere)."""
    return docker.docker(
        "service", "logs", "--raw", "--no-task-ids", "--tail", str(lines), task_id,
        timeout=30, check=False,
    )  # fmt: skip


def blamed_task(update: Mapping[str, Any]) -> str | None:
    """The task Swarm's update message blames ("... failure or early termination of task ID");
    the message is replaced once the rollback completes, so it is read while it runs."""
    found = re.search(r"\btask ([a-z0-9]{10,})", str(update.get("Message") or ""))
    return found.group(1) if found else None


def _ran(task: Mapping[str, Any]) -> bool:
    """A task that had a container (it ran, and failed): not a rejection for want of a node."""
    return bool(((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID"))


def failure(name: str, image: str | None = None, blamed: str | None = None) -> str:
    """Why the newest failed task (of `image`, if given) failed.

    Swarm's error, the output of its last failing health probe (read where its engine is this
    one; said as unread on another node) and the last line its process wrote, read through the
    manager wherever it ran (a crash's traceback ends with the exception). A task that ran is
    preferred to one rejected for want of a node, which says only that the slot was taken.
    """
    pool = [
        t for t in tasks(name)
        if not image or str(t["Spec"]["ContainerSpec"]["Image"]).split("@")[0] == image
    ]  # fmt: skip
    failed = [t for t in pool if (t.get("Status") or {}).get("Err")
              or (t.get("Status") or {}).get("State") in ("failed", "rejected")]  # fmt: skip
    named = [t for t in pool if blamed and str(t["ID"]).startswith(blamed)]
    # A task that never became healthy is stopped by the rollback without an error of its own:
    # the one Swarm's update message named comes first.
    failed = named or failed
    if not failed:
        return ""
    task = next((t for t in failed if _ran(t)), failed[0])
    status = task.get("Status") or {}
    node = str(task.get("NodeID") or "")[:12]
    what = status.get("Err") or (
        f"did not become healthy before the rollback stopped it ({status.get('State')})"
        if _ran(task) else status.get("State")
    )  # fmt: skip
    parts = [f"task {task['ID'][:12]} on node {node}: {what}"]
    state = container_state(task)
    probes = [p for p in ((state or {}).get("Health") or {}).get("Log") or [] if p]
    failing = [p for p in probes if p.get("ExitCode") != 0]
    if failing:
        output = _last_line(str(failing[-1].get("Output") or ""))
        parts.append(f"health: {output or 'exit ' + str(failing[-1].get('ExitCode'))}")
    elif _ran(task) and state is None and "non-zero exit" not in str(status.get("Err")):
        parts.append(f"health: its probe's output is on node {node}'s engine, not read here")
    if _ran(task):
        logs = task_logs(str(task["ID"]))
        line = _last_line(logs.stdout) or _last_line(logs.stderr)
        if line and logs.returncode == 0:
            parts.append(f"last log line: {line}")
    return "; ".join(parts)


def _moment(text: str) -> datetime:
    """Docker's RFC 3339 timestamp (nanoseconds, `Z`) as a datetime."""
    head, _, rest = text.partition(".")
    digits = "".join(c for c in rest if c.isdigit())
    zone = rest[len(digits) :] or "Z"
    return datetime.fromisoformat(f"{head}.{(digits + '000000')[:6]}{zone.replace('Z', '+00:00')}")


@dataclass(frozen=True)
class Outage:
    """One slot's gap in a stop-first update: the node it ran on and the seconds it was dark."""

    slot: int
    node: str
    seconds: float


def outages(name: str) -> tuple[Outage, ...]:
    """Per slot, from the old task's stop to the new task's first health (Swarm's `running`).

    On the host network an update is stop-first: nothing answers on that node's port in
    between. Slots are replaced one after the other, each on its own node, so each has its own
    gap; none is the whole story alone. Empty when there was no replacement to measure.
    """
    found = tasks(name)
    gaps = []
    for new in (t for t in found if t["Status"]["State"] == "running"):
        old = [
            t for t in found
            if t.get("Slot") == new.get("Slot") and t["ID"] != new["ID"]
            and t["Status"]["State"] in ("shutdown", "complete")
            and _moment(t["Status"]["Timestamp"]) <= _moment(new["Status"]["Timestamp"])
        ]  # fmt: skip
        if not old:
            continue
        stopped = max(_moment(t["Status"]["Timestamp"]) for t in old)
        seconds = max(0.0, (_moment(new["Status"]["Timestamp"]) - stopped).total_seconds())
        gaps.append(Outage(int(new.get("Slot") or 0), str(new.get("NodeID") or "")[:12], seconds))
    return tuple(sorted(gaps, key=lambda gap: gap.slot))


def _converged(name: str, replicas: int) -> bool:
    running = [t for t in tasks(name) if t["Status"]["State"] == "running"]
    return len(running) >= replicas


def _template(service: Mapping[str, Any]) -> Any:
    spec = service.get("Spec") or {}
    return spec.get("TaskTemplate"), (spec.get("Mode") or {})


def wait_for_verdicts(
    before: Mapping[str, Mapping[str, Any]], document: Mapping[str, Any], stack: str
) -> dict[str, Verdict]:
    """Poll each service of the stack until Swarm has decided about it.

    A service whose task template changed waits for a new update state (`completed`, or a
    rollback); a new one, for its tasks to run (healthy, when it has a healthcheck); an
    unchanged one is done. Each service has its own monitor window plus slack as deadline.
    """
    services = {f"{stack}_{name}": s for name, s in (document.get("services") or {}).items()}
    start = time.monotonic()
    deadlines = {
        name: start + (DEPLOY_TIMEOUT if is_job(service) else 2 * monitor_seconds(service))
        + _SLACK for name, service in services.items()
    }  # fmt: skip
    verdicts: dict[str, Verdict] = {}
    rolling_back: set[str] = set()
    blamed: dict[str, str] = {}
    while len(verdicts) < len(services):
        now = inspect_services([n for n in services if n not in verdicts])
        for name, service in services.items():
            if name in verdicts:
                continue
            current = now.get(name)
            if current is None:
                verdicts[name] = Verdict(name, "failed", "the service is not there after deploy")
                continue
            update = current.get("UpdateStatus") or {}
            previous = before.get(name)
            replicas = int((service.get("deploy") or {}).get("replicas") or 1)
            late = time.monotonic() > deadlines[name]
            if is_job(service):
                found = _job_verdict(name, current)
                if found is not None:
                    verdicts[name] = found
            elif previous is not None and update and update != previous.get("UpdateStatus"):
                state = str(update.get("State"))
                blamed[name] = blamed_task(update) or blamed.get(name, "")
                if state == "rollback_started" and name not in rolling_back:
                    # The rollback is watched like the update was: exit 1 only once it is done.
                    rolling_back.add(name)
                    deadlines[name] = max(deadlines[name], time.monotonic()
                                          + 2 * monitor_seconds(service) + _SLACK)  # fmt: skip
                # Swarm may say `completed` (or `rollback_completed`) while the task it
                # started is still passing its first healthcheck: wait until it runs.
                settled = state not in ("completed", "rollback_completed")
                if state in _VERDICTS and (settled or late or _converged(name, replicas)):
                    verdicts[name] = Verdict(name, state, blamed=blamed.get(name, ""))
            elif previous is not None and _template(previous) == _template(current):
                if _converged(name, replicas):
                    verdicts[name] = Verdict(name, "unchanged")
            elif previous is None and _converged(name, replicas):
                verdicts[name] = Verdict(name, "created")
            if name not in verdicts and late:
                verdicts[name] = Verdict(name, "failed", "no verdict from Swarm in time")
        if len(verdicts) < len(services):
            time.sleep(_POLL)
    return verdicts


def is_job(service: Mapping[str, Any]) -> bool:
    """A stack service that runs to completion (`replicated-job`, `global-job`)."""
    return str((service.get("deploy") or {}).get("mode") or "").endswith("-job")


def _job_verdict(name: str, current: Mapping[str, Any]) -> Verdict | None:
    """`completed` once every task of the job's current run has exited 0, `failed` as soon as
    one has not; None while it runs."""
    iteration = ((current.get("JobStatus") or {}).get("JobIteration") or {}).get("Index")
    found = [t for t in tasks(name) if (t.get("JobIteration") or {}).get("Index") == iteration]
    states = [str(t["Status"]["State"]) for t in found]
    if any(state in ("failed", "rejected", "shutdown", "orphaned") for state in states):
        return Verdict(name, "failed")
    if states and all(state == "complete" for state in states):
        return Verdict(name, "completed")
    return None


def _stack_deploy(path: Path, stack: str, registry: str | None) -> None:
    result = docker.docker(
        "stack", "deploy", "--resolve-image", "never", "--detach=true",
        *(["--with-registry-auth"] if registry else []),
        "--compose-file", str(path), stack,
        timeout=DEPLOY_TIMEOUT, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise StateError(f"docker stack deploy failed: {lines[-1] if lines else 'no message'}")


def _released(service: Mapping[str, Any]) -> bool:
    """A service built here (its image carries the revision): the app, and its jobs."""
    return REVISION_LABEL in ((service.get("deploy") or {}).get("labels") or {})


def run_jobs(document: Mapping[str, Any], stack: str, registry: str | None) -> None:
    """Before the app's update: the companions as rendered, then every job to completion.

    Each step is the stack file with fewer services (`stack deploy` without `--prune` leaves
    the others as they are). A companion that does not come up, or a job that does not exit 0,
    stops the deploy there, named, with its cause; the app is left as it was.
    """
    services = document.get("services") or {}
    jobs = sorted(name for name, service in services.items() if is_job(service))
    if not jobs:
        return
    companions = sorted(name for name, service in services.items() if not _released(service))
    for step, names in (("companion", companions), ("job", [*companions, *jobs])):
        part = {**document, "services": {name: services[name] for name in names}}
        keys = [f"{stack}_{name}" for name in names]
        before = inspect_services(keys)
        with tempfile.TemporaryDirectory(prefix="hotmode-swarm-") as folder:
            path = Path(folder) / f"{step}s.yml"
            path.write_text(yaml.safe_dump(part, sort_keys=False), encoding="utf-8")
            _stack_deploy(path, stack, registry)
        verdicts = wait_for_verdicts(before, part, stack)
        for key in keys:
            verdict = verdicts[key]
            if verdict.failed and (step == "job") == (key.removeprefix(f"{stack}_") in jobs):
                why = failure(key) or verdict.reason or verdict.state
                name = key.removeprefix(f"{stack}_")
                raise AuditFailed(f"{step} {name} failed: {why}; the app was not updated")


def _label_data_nodes(document: Mapping[str, Any]) -> None:
    """Label the deploying node for every stateful service that no node is labelled for yet."""
    for service in (document.get("services") or {}).values():
        placement = (service.get("deploy") or {}).get("placement") or {}
        for constraint in placement.get("constraints") or []:
            key, _, value = str(constraint).partition("==")
            key = key.strip()
            if not key.startswith("node.labels.hotmode."):
                continue
            label = f"{key.removeprefix('node.labels.')}={value.strip()}"
            listed = docker.docker("node", "ls", "--quiet", "--filter", f"node.label={label}")
            if not listed.stdout.split():
                node = docker.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
                docker.docker("node", "update", "--label-add", label, node)


def deploy(
    config: Config,
    target: Target,
    *,
    allow_dirty: bool,
    force: bool = False,
) -> Deployed:
    """Build (and push), refresh the stack file, `docker stack deploy`, then wait for Swarm."""
    chosen = config.edition(target.edition) if target.edition else config.default_edition
    stack = target.stack or config.name
    env = build_environment(config, allow_dirty=allow_dirty)
    rendered = render_files(config, target, allow_dirty=allow_dirty)
    report = write_files(rendered, force=force)
    if report.kept:
        raise AuditFailed(
            f"kept hand-edited {report.kept[0]}; move the change into {config.path.name}, "
            "or rerun with --force to overwrite"
        )
    build(config, chosen.name, env, target.registry)
    stack_file = config.deployment / STACK_FILE
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    names = [f"{stack}_{name}" for name in document.get("services") or {}]
    before = inspect_services(names)
    _label_data_nodes(document)
    run_jobs(document, stack, target.registry)
    before = inspect_services(names)
    _stack_deploy(stack_file, stack, target.registry)
    verdicts = wait_for_verdicts(before, document, stack)
    name = service_name(stack, config)
    images = {f"{stack}_{n}": str(s.get("image")) for n, s in document["services"].items()}
    for key, verdict in verdicts.items():
        if verdict.failed:
            why = failure(key, images.get(key), verdict.blamed or None) or verdict.reason
            verdicts[key] = Verdict(key, verdict.state, why or verdict.state)
    app = verdicts.get(name) or Verdict(name, "failed", f"no service {name} in the stack file")
    gaps: tuple[Outage, ...] = ()
    if app.state == "completed" and "hostnet" in (
        document["services"].get(config.service) or {}
    ).get("networks", []):
        gaps = outages(name)
    return Deployed(
        name,
        env["HOTMODE_REVISION"],
        app.state,
        running_revision(name),
        app.reason if app.failed else "",
        gaps,
        tuple(v for k, v in sorted(verdicts.items()) if k != name),
    )


def stale(config: Config, target: Target) -> list[Path]:
    """The stack file, if it is not what would be rendered now."""
    return stale_files(render_files(config, target, allow_dirty=True))
