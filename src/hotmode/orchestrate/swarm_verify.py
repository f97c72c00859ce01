"""`verify --swarm`: what runs on the Swarm is what was rendered, committed and hardened.

Every service of the rendered stack file is compared with its live spec (image, environment,
mounts, secrets and configs, user, read-only root, capabilities, and every field of
`hotmode.orchestrate.swarm_spec`: command, health check, resources, restart, placement, mode
and replicas, update and rollback configuration): an out-of-band `docker service update` is
drift. Inside every running task, `NoNewPrivs` is read from
the kernel; Swarm has no per-service no-new-privileges, so only the engine's setting gives it,
and a task without it fails unless the service waives HM-S01. The app's tasks are also held to
prod's promise: the image's revision and source digest are HEAD's, no reload, tmpfs at /tmp, no
mount over the code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotmode.compose import docker
from hotmode.compose.docker import DIGEST_LABEL, REVISION_LABEL
from hotmode.compose.render import APP_DIR
from hotmode.compose.verify import _served_files, file_problems
from hotmode.errors import UsageError
from hotmode.orchestrate import stack
from hotmode.orchestrate.swarm_spec import field_drift

_RELOADERS = ("--reload", "watchfiles", "hupper", "watchgod")


def task_problems(
    spec: Mapping[str, Any], labels: Mapping[str, str], revision: str | None, digest: str | None
) -> list[str]:
    """What in a running task's container spec (and its image labels) breaks prod's promise."""
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


def _env_file_keys(paths: list[str]) -> set[str]:
    keys = set()
    for path in paths:
        file = Path(path)
        if not file.is_file():
            continue
        for line in file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                keys.add(line.split("=", 1)[0].removeprefix("export ").strip())
    return keys


def _expected_env(service: Mapping[str, Any]) -> dict[str, str | None]:
    """The rendered environment: `environment` values, and env files' keys (values unread)."""
    expected: dict[str, str | None] = dict.fromkeys(_env_file_keys(service.get("env_file") or []))
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(str(item).partition("=")[::2] for item in environment)
    expected.update({str(k): None if v is None else str(v) for k, v in environment.items()})
    return expected


def _mounts(service: Mapping[str, Any], names: Mapping[str, str]) -> set[tuple[str, str, str]]:
    found = set()
    for volume in service.get("volumes") or []:
        kind = str(volume.get("type"))
        source = str(volume.get("source") or "")
        found.add((kind, names.get(source, source) if kind == "volume" else "", volume["target"]))
    return found


def spec_drift(
    service: Mapping[str, Any], spec: Mapping[str, Any], document: Mapping[str, Any]
) -> list[str]:
    """How a live service's container spec differs from its rendered stack-file service.

    Values of environment variables are never printed: they may be credentials.
    """
    problems = []
    image = str(spec.get("Image") or "").split("@")[0]
    if image != str(service.get("image")):
        problems.append(f"image {image} is not the rendered {service.get('image')}")
    live = dict(str(item).partition("=")[::2] for item in spec.get("Env") or [])
    expected = _expected_env(service)
    for key in sorted(set(live) - set(expected)):
        problems.append(f"environment {key} is set but not in the rendered file")
    for key in sorted(set(expected) - set(live)):
        problems.append(f"environment {key} is rendered but not set")
    for key in sorted(set(expected) & set(live)):
        if expected[key] is not None and live[key] != expected[key]:
            problems.append(f"environment {key} differs from the rendered value")
    names = {
        str(k): str((v or {}).get("name") or k) for k, v in (document.get("volumes") or {}).items()
    }
    rendered = _mounts(service, names)
    running = {
        (str(m.get("Type")), str(m.get("Source") or "") if m.get("Type") == "volume" else "",
         str(m.get("Target")))
        for m in spec.get("Mounts") or []
    }  # fmt: skip
    for kind, source, target in sorted(running - rendered):
        problems.append(f"a {kind} mount {source or ''} at {target} is not in the rendered file")
    for kind, _, target in sorted(rendered - running):
        problems.append(f"the rendered {kind} mount at {target} is missing")
    for key, attribute in (("secrets", "SecretName"), ("configs", "ConfigName")):
        objects = document.get(key) or {}
        wanted = {
            (
                str((objects.get(ref["source"]) or {}).get("name") or ref["source"]),
                str(ref["target"]),
            )
            for ref in service.get(key) or []
        }
        live_refs = {
            (str(ref.get(attribute)), str((ref.get("File") or {}).get("Name")))
            for ref in spec.get(key.capitalize()) or []
        }
        for name, target in sorted(live_refs ^ wanted):
            where = "runs" if (name, target) in live_refs else "is rendered"
            problems.append(f"{key[:-1]} {name} at {target} {where} only")
    user = str(spec.get("User") or "")
    if user != str(service.get("user") or ""):
        problems.append(f"user {user or 'unset'} is not the rendered {service.get('user')}")
    if bool(spec.get("ReadOnly")) != bool(service.get("read_only")):
        problems.append("read_only differs from the rendered file")
    for key, attribute in (("cap_drop", "CapabilityDrop"), ("cap_add", "CapabilityAdd")):
        if sorted(spec.get(attribute) or []) != sorted(service.get(key) or []):
            problems.append(
                f"{key} {spec.get(attribute) or []} is not the rendered {service.get(key)}"
            )
    return problems


def no_new_privs(container: str, host: str | None = None) -> str | None:
    """`NoNewPrivs` of a container's first process (`1`, `0`), or None if it cannot be read.

    Read from this host's /proc when the engine is local, else with `docker exec`; `host` is
    another node's engine (`docker -H`), read only with `docker exec`.
    """
    if host is not None:
        status = docker.docker(
            "-H", host, "exec", container, "cat", "/proc/1/status", check=False
        ).stdout
        return next((line.split(":", 1)[1].strip() for line in status.splitlines()
                     if line.startswith("NoNewPrivs:")), None)  # fmt: skip
    inspected = docker.docker("inspect", "--format", "{{.State.Pid}}", container, check=False)
    status = ""
    pid = inspected.stdout.strip()
    if inspected.returncode == 0 and pid.isdigit() and pid != "0":
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
        except OSError:
            status = ""
    if not status:
        status = docker.docker("exec", container, "cat", "/proc/1/status", check=False).stdout
    for line in status.splitlines():
        if line.startswith("NoNewPrivs:"):
            return line.split(":", 1)[1].strip()
    return None


def privilege_problem(
    container: str, waivers: Mapping[str, str], host: str | None = None
) -> tuple[str, bool] | None:
    """(problem, waived) when a task's process may gain privileges; None when it cannot."""
    value = no_new_privs(container, host)
    if value == "1":
        return None
    what = (
        "no-new-privileges is off inside the task (NoNewPrivs: 0): start every engine with "
        '"no-new-privileges": true in daemon.json'
        if value == "0"
        else "could not read NoNewPrivs inside the task"
    )
    waiver = waivers.get("HM-S01")
    if waiver:
        return f"{what} (waived: {waiver})", True
    return what, False


def live_spec(name: str) -> dict[str, Any] | None:
    """A service's spec (its task template, mode, update and rollback configuration), or None
    if there is no such service."""
    result = docker.docker("service", "inspect", name, check=False)
    if result.returncode != 0:
        return None
    spec: dict[str, Any] = json.loads(result.stdout)[0]["Spec"]
    return spec


@dataclass
class Verified:
    """What `verify --swarm` found: problems, waived ones, and how each task was read."""

    problems: list[str] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)
    # Tasks read from inside (on this engine's node), through another node's engine, and
    # those elsewhere, checked by spec.
    inside: int = 0
    remote: int = 0
    elsewhere: list[str] = field(default_factory=list)
    # What was not read in tasks read through another node's engine.
    unread: list[str] = field(default_factory=list)


def node_engines(given: Mapping[str, str]) -> dict[str, str]:
    """Node ID -> engine, from `--node-engine NODE=HOST` where NODE is an ID (or its start) or
    a host name; a NODE that names no node, or several, is refused."""
    listed = docker.docker("node", "ls", "--format", "{{.ID}} {{.Hostname}}", check=False)
    nodes = [line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line]
    found = {}
    for node, host in given.items():
        matches = [n for n, name in nodes if n.startswith(node) or name == node]
        if len(matches) != 1:
            raise UsageError(
                f"--node-engine {node}: {'no node' if not matches else 'several nodes'} of this "
                "swarm go by that ID or host name; see `docker node ls`"
            )
        found[matches[0]] = host
    return found


def _local_node() -> str:
    return docker.docker("info", "--format", "{{.Swarm.NodeID}}", check=False).stdout.strip()


def verify_stack(
    name: str,
    document: Mapping[str, Any],
    app: str,
    head: str | None,
    digest: str | None,
    committed: Mapping[str, str] | None,
    engines: Mapping[str, str] | None = None,
) -> Verified:
    """Every service of the stack against its rendered form; every running task against prod.

    A task on another node cannot be looked inside from here (its container is that node's
    engine's): its spec and image are checked, and it is listed as such, not passed in silence.
    """
    result = Verified()
    node = _local_node()
    for key, rendered in (document.get("services") or {}).items():
        service = f"{name}_{key}"
        whole = live_spec(service)
        if whole is None:
            result.problems.append(f"{service}: not deployed")
            continue
        spec = whole["TaskTemplate"]["ContainerSpec"]
        result.problems += [f"{service}: {p}" for p in spec_drift(rendered, spec, document)]
        result.problems += [f"{service}: {p}" for p in field_drift(rendered, whole)]
        if stack.is_job(rendered):
            # A job's tasks have run to completion; there is nothing running to look inside.
            continue
        running = [t for t in stack.tasks(service) if t["Status"]["State"] == "running"]
        if not running:
            result.problems.append(f"{service}: no running task")
        waivers = {str(k): str(v) for k, v in (rendered.get("x-hotmode-waivers") or {}).items()}
        for task in running:
            where = f"{service} task {task['ID'][:12]}"
            found: list[str] = []
            if key == app:
                labels = stack.image_labels(task)
                found += task_problems(task["Spec"]["ContainerSpec"], labels, head, digest)
            host = (engines or {}).get(str(task.get("NodeID")))
            if task.get("NodeID") != node and host is not None:
                # Another node's engine, given: its task's NoNewPrivs is read there.
                result.remote += 1
                container = (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
                remote = privilege_problem(container, waivers, host) if container else None
                if remote is not None:
                    (result.waived if remote[1] else found).append(remote[0])
                if key == app:
                    result.unread.append(
                        f"{where} on node {str(task.get('NodeID'))[:12]}: its served files"
                    )
                result.problems += [f"{where}: {p}" for p in found]
                continue
            if task.get("NodeID") != node:
                result.elsewhere.append(
                    f"{where} runs on node {str(task.get('NodeID'))[:12]}: its NoNewPrivs and "
                    "served files were not read (give its engine with --node-engine)"
                )
                result.problems += [f"{where}: {p}" for p in found]
                continue
            result.inside += 1
            container = (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
            if key == app:
                served = _served_files(container) if container else None
                if served is None:
                    found.append("could not read the code inside the task to compare it")
                elif committed is not None:
                    found += file_problems(served, committed)
            privileges = privilege_problem(container, waivers) if container else None
            if privileges is not None:
                (result.waived if privileges[1] else found).append(privileges[0])
            result.problems += [f"{where}: {p}" for p in found]
    return result
