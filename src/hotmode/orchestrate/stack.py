"""Deploying the Swarm stack and judging it by what runs, never by `stack deploy`'s exit code.

`docker stack deploy --detach=false` exits 0 even after Swarm rolled an update back; the truth is
the service's `UpdateStatus.State` and the revision its running tasks serve. `deploy` builds the
images first (with the revision and source-digest labels), refreshes the stack file, deploys, and
returns a `Deployed` that says which; `tasks` and `problems` serve `status` and `verify`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotmode.compose import docker, layout
from hotmode.compose.docker import DIGEST_LABEL, REVISION_LABEL
from hotmode.compose.engine import find_compose
from hotmode.compose.render import stale_files, write_files
from hotmode.config import Config
from hotmode.errors import AuditFailed, ComposeError, StateError
from hotmode.modes import Selection
from hotmode.orchestrate.swarm import STACK_FILE, build_environment, render_files

DEPLOY_TIMEOUT = 900
_ROLLED_BACK = {"rollback_started", "rollback_paused", "rollback_completed", "paused"}


@dataclass(frozen=True)
class Deployed:
    """The outcome of a deploy: the revision asked for and what the service runs now."""

    service: str
    revision: str
    state: str
    running_revision: str | None
    reason: str = ""

    @property
    def serves_new(self) -> bool:
        return self.running_revision == self.revision and self.state not in _ROLLED_BACK


def service_name(stack: str, config: Config) -> str:
    return f"{stack}_{config.service}"


def build(config: Config, edition: str, env: Mapping[str, str]) -> list[str]:
    """Build every service with `build:` as `<name>:<revision>` with Compose; the tags built.

    Compose builds (not `docker build`, whose legacy builder writes its temporary Dockerfile's
    name into the served `.dockerignore`), tagged through a throw-away overlay so that the
    `:prod` tag a Compose prod on the same engine runs is left alone.
    """
    selection = Selection("prod", edition, "deploy", "deploy")
    files = layout.compose_files(config, selection)
    project = layout.project_name(config, selection)
    compose = find_compose()
    merged = compose.run(files, project, "config", "--format", "json", env=env)
    services = json.loads(merged.stdout).get("services") or {}
    tags = {}
    for name, service in sorted(services.items()):
        if service.get("build"):
            image = str(service.get("image") or name)
            repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
            tags[name] = f"{repository}:{env['HOTMODE_REVISION']}"
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
    return sorted(tags.values())


def _inspect_service(name: str) -> dict[str, Any] | None:
    result = docker.docker("service", "inspect", name, check=False)
    if result.returncode != 0:
        return None
    documents: list[dict[str, Any]] = json.loads(result.stdout)
    return documents[0] if documents else None


def tasks(name: str) -> list[dict[str, Any]]:
    """The service's tasks, newest first, as `docker inspect` gives them."""
    ids = docker.docker("service", "ps", "--quiet", "--no-trunc", name, check=False).stdout.split()
    if not ids:
        return []
    found: list[dict[str, Any]] = json.loads(docker.docker("inspect", *ids).stdout)
    return sorted(found, key=lambda t: str(t.get("UpdatedAt")), reverse=True)


def image_labels(task: Mapping[str, Any]) -> dict[str, str]:
    """The labels of the image a task runs (none if the image is gone)."""
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


def _failure(name: str) -> str:
    """Why the newest failed task failed: Swarm's error and the last line its process wrote."""
    for task in tasks(name):
        status = task.get("Status") or {}
        if not (status.get("Err") or status.get("State") in ("failed", "rejected")):
            continue
        message = str(status.get("Err") or status.get("Message") or status.get("State"))
        container = (status.get("ContainerStatus") or {}).get("ContainerID")
        if container:
            logs = docker.docker("logs", "--tail", "20", container, check=False)
            # A crash's traceback ends on stderr; its last line names the exception.
            text = logs.stderr.strip() or logs.stdout.strip()
            if text:
                message += f": {text.splitlines()[-1].strip()[:160]}"
        return message
    return ""


def deploy(
    config: Config,
    edition: str | None,
    stack: str,
    *,
    host_network: bool,
    allow_dirty: bool,
    force: bool = False,
) -> Deployed:
    """Build, refresh the stack file, `docker stack deploy`, then judge by what runs."""
    chosen = config.edition(edition) if edition else config.default_edition
    env = build_environment(config, allow_dirty=allow_dirty)
    rendered = render_files(config, chosen.name, allow_dirty=allow_dirty, host_network=host_network)
    report = write_files(rendered, force=force)
    if report.kept:
        raise AuditFailed(
            f"kept hand-edited {report.kept[0]}; move the change into {config.path.name}, "
            "or rerun with --force to overwrite"
        )
    build(config, chosen.name, env)
    stack_file = config.deployment / STACK_FILE
    result = docker.docker(
        "stack", "deploy", "--resolve-image", "never", "--detach=false",
        "--compose-file", str(stack_file), stack,
        timeout=DEPLOY_TIMEOUT, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise StateError(f"docker stack deploy failed: {lines[-1] if lines else 'no message'}")
    name = service_name(stack, config)
    spec = _inspect_service(name)
    if spec is None:
        raise StateError(f"service {name} is not there after `docker stack deploy`")
    update = spec.get("UpdateStatus") or {}
    state = str(update.get("State") or "created")
    reason = ""
    if state in _ROLLED_BACK:
        reason = _failure(name) or str(update.get("Message") or state)
    return Deployed(name, env["HOTMODE_REVISION"], state, running_revision(name), reason)


def stale(config: Config, edition: str | None, host_network: bool) -> list[Path]:
    """The stack file, if it is not what would be rendered now."""
    return stale_files(render_files(config, edition, allow_dirty=True, host_network=host_network))


_RELOADERS = ("--reload", "watchfiles", "hupper", "watchgod")


def task_problems(
    spec: Mapping[str, Any], labels: Mapping[str, str], revision: str | None, digest: str | None
) -> list[str]:
    """What in a running task's container spec (and its image labels) breaks prod's promise."""
    from hotmode.compose.render import APP_DIR

    problems = []
    running = labels.get(REVISION_LABEL, "")
    if revision is None:
        problems.append("the source is not in a git repository, so no commit can be proven")
    elif running != revision:
        problems.append(f"image revision {running or 'missing'} is not HEAD {revision}")
    if digest is not None and labels.get(DIGEST_LABEL) != digest:
        problems.append(
            f"image source digest {labels.get(DIGEST_LABEL) or 'missing'} is not the committed "
            f"source's {digest}"
        )
    if not spec.get("ReadOnly"):
        problems.append("the root filesystem is writable (read_only is not set)")
    user = str(spec.get("User") or "")
    if user.split(":")[0] in ("", "0", "root"):
        problems.append(f"the task runs as root (user {user or 'unset'})")
    if "ALL" not in (spec.get("CapabilityDrop") or []):
        problems.append("the task keeps the default capabilities (cap_drop: [ALL])")
    argv = [*(spec.get("Command") or []), *(spec.get("Args") or [])]
    if any(word in arg for arg in argv for word in _RELOADERS):
        problems.append(f"the command reloads ({' '.join(argv)})")
    mounts = spec.get("Mounts") or []
    if not any(m.get("Type") == "tmpfs" and m.get("Target") == "/tmp" for m in mounts):  # noqa: S108
        problems.append("no tmpfs at /tmp (Swarm drops `tmpfs: [/tmp]`; use the mount form)")
    for mount in mounts:
        target = str(mount.get("Target", ""))
        over_code = target == APP_DIR or target.startswith(f"{APP_DIR}/")
        allowed = (target == f"{APP_DIR}/logs" and mount.get("Type") == "volume") or (
            target == f"{APP_DIR}/.env" and mount.get("Type") == "bind" and mount.get("ReadOnly")
        )
        if over_code and not allowed:
            problems.append(f"a {mount.get('Type')} mount ({mount.get('Source')}) is over the code")
    return problems
