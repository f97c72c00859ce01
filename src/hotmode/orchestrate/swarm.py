"""Docker Swarm: the prod configuration as a stack file that Swarm honours, and its losses.

`stack_document` is pure: an edition's prod services, merged by Compose with the deployment
`.env` resolved (`docker stack deploy` reads no `.env`), in; the stack file out. What Swarm would
drop in silence is translated (`tmpfs` to tmpfs mounts, `restart` to `deploy.restart_policy`);
what it ignores with a warning and has no equivalent for is either dropped and said in the file
(`build`, `container_name`, `depends_on`, `no-new-privileges`) or refused with the key. The
image is `<name>:<revision>`, so every update is a change of the stack file, never out of band
(see shared/notes/swarm-on-one-machine.md).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotmode import source
from hotmode.compose.jobs import job_names
from hotmode.compose.prod import ProdConfig, merge
from hotmode.compose.render import with_header
from hotmode.config import Config
from hotmode.errors import UsageError
from hotmode.orchestrate.swarm_objects import bind_configs, object_name, secret_definitions
from hotmode.orchestrate.units import duration_seconds

STACK_FILE = "docker-stack.yml"
REVISION_LABEL = "org.opencontainers.image.revision"
NO_NEW_PRIVILEGES = (
    "no-new-privileges has no per-service form on Swarm: set it for the whole engine, "
    '"no-new-privileges": true in /etc/docker/daemon.json (dockerd --no-new-privileges) on '
    "every node"
)
# Keys Swarm honours as they are.
_KEPT = (
    "command", "entrypoint", "environment", "healthcheck", "labels", "logging", "user",
    "read_only", "cap_drop", "cap_add", "stop_grace_period", "stop_signal", "working_dir",
    "hostname", "extra_hosts", "init", "ulimits", "sysctls",
)  # fmt: skip
# Keys hotmode translates or drops on purpose, saying so in the file.
_HANDLED = {
    "image", "build", "container_name", "restart", "tmpfs", "security_opt", "volumes",
    "ports", "networks", "deploy", "depends_on", "secrets", "network_mode", "pull_policy",
}  # fmt: skip
HOST_NETWORK_OUTAGE = (
    "host network: one task holds the port, so each update is stop-first and refuses "
    "connections from the old task's stop until the new one is healthy (`deploy` says how long)"
)


@dataclass
class Stack:
    """The stack file's document and the notes it carries about what was translated."""

    document: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _where(service: str, *keys: str | int) -> str:
    return ".".join(["services", service, *(str(k) for k in keys)])


def _seconds(value: Any, default: float) -> float:
    return duration_seconds(value) if value not in (None, "") else default


def monitor_seconds(service: Mapping[str, Any]) -> int:
    """How long Swarm watches a new task before it calls the update done.

    Long enough for the healthcheck to pass after its start period; a task that is not healthy
    by then rolls the update back.
    """
    check = service.get("healthcheck") or {}
    start = _seconds(check.get("start_period"), 0)
    interval = _seconds(check.get("interval"), 30)
    retries = int(check.get("retries") or 3)
    return math.ceil(start + interval * (retries + 1) + 5)


def built_image(image: str, revision: str, registry: str | None) -> str:
    """`[registry/]<repository>:<revision>`: what `deploy --swarm` builds, pushes and runs."""
    last = image.rsplit("/", 1)[-1]
    repository = image.rsplit(":", 1)[0] if ":" in last else image
    return f"{registry.rstrip('/') + '/' if registry else ''}{repository}:{revision}"


def _image(name: str, service: Mapping[str, Any], revision: str, registry: str | None) -> str:
    image = str(service.get("image") or "")
    if not image:
        raise UsageError(f"{_where(name, 'image')} is missing; Swarm runs images by name")
    if "build" not in service:
        return image
    return built_image(image, revision, registry)


def _volumes(
    name: str, service: Mapping[str, Any], configs: list[tuple[str, Path, str]]
) -> list[dict[str, Any]]:
    """The mounts Swarm carries; each read-only bind's files are added to `configs`."""
    volumes: list[dict[str, Any]] = []
    for index, volume in enumerate(service.get("volumes") or []):
        kind = volume.get("type")
        if kind not in ("volume", "bind", "tmpfs"):
            raise UsageError(f"{_where(name, 'volumes', index)} is a {kind} mount; Swarm has none")
        if kind == "bind":
            for key, path, target in bind_configs(name, volume, _where(name, "volumes", index)):
                taken = {k for k, _, _ in configs}
                unique = key if key not in taken else f"{key}_{len(taken)}"
                configs.append((unique, path, target))
            continue
        entry = {k: v for k, v in volume.items() if k in ("type", "source", "target", "read_only")}
        if kind == "tmpfs" and volume.get("tmpfs"):
            entry["tmpfs"] = (
                {"size": volume["tmpfs"].get("size")} if volume["tmpfs"].get("size") else {}
            )
            entry = {k: v for k, v in entry.items() if v != {}}
        volumes.append(entry)
    tmpfs = service.get("tmpfs") or []
    for target in tmpfs if isinstance(tmpfs, list) else [tmpfs]:
        # `tmpfs: [/tmp]` is dropped by `stack deploy` without a word; the mount form is kept.
        volumes.append({"type": "tmpfs", "target": str(target).split(":")[0]})
    return volumes


def _ports(name: str, service: Mapping[str, Any], host_network: bool) -> list[dict[str, Any]]:
    ports = []
    for index, port in enumerate(service.get("ports") or []):
        if host_network:
            continue
        address = port.get("host_ip") or ""
        if address not in ("", "0.0.0.0", "::"):  # noqa: S104 - the address, compared as text
            raise UsageError(
                f"{_where(name, 'ports', index)} binds {address}; Swarm publishes on every "
                "interface: set HOTMODE_BIND=0.0.0.0 in deployment/.env, or render with "
                "--host-network"
            )
        entry: dict[str, Any] = {"target": int(port["target"]), "protocol": port.get("protocol")
                                 or "tcp", "mode": port.get("mode") or "ingress"}  # fmt: skip
        if port.get("published"):
            entry["published"] = int(str(port["published"]).split("-")[0])
        ports.append(entry)
    return ports


def stateful(service: Mapping[str, Any]) -> bool:
    """A service that is not built here and keeps data in a named volume: a database's shape."""
    return "build" not in service and any(
        (v or {}).get("type") == "volume" for v in service.get("volumes") or []
    )


def data_label(stack: str, name: str) -> str:
    """The node label that pins a stateful service to the node holding its local volume."""
    return f"hotmode.{stack}.{name}"


def _deploy(
    stack: str, name: str, service: Mapping[str, Any], host_network: bool
) -> dict[str, Any]:
    given = dict(service.get("deploy") or {})
    given.pop("placement", None) if not (given.get("placement") or {}) else None
    if stateful(service) and "placement" not in given:
        # A local volume lives on one node: the task must come back to it.
        given["placement"] = {"constraints": [f"node.labels.{data_label(stack, name)} == true"]}
    restart = str(service.get("restart") or "")
    condition = "on-failure" if restart.startswith("on-failure") else "any"
    if restart == "no":
        condition = "none"
    monitor = f"{monitor_seconds(service)}s"
    # With host networking one task holds the port, and two servers must never share a data
    # folder: the old task stops before the new one starts. Otherwise the new one starts first
    # and takes traffic only once healthy.
    order = "stop-first" if host_network or stateful(service) else "start-first"
    deploy: dict[str, Any] = {
        "mode": given.pop("mode", "replicated"),
        "replicas": int(given.pop("replicas", 1) or 1),
        "restart_policy": given.pop("restart_policy", None)
        or {"condition": condition, "delay": "5s", "window": "30s"},
        "update_config": given.pop("update_config", None)
        or {
            "parallelism": 1,
            "order": order,
            "failure_action": "rollback",
            "monitor": monitor,
            "max_failure_ratio": 0,
        },
        "rollback_config": given.pop("rollback_config", None)
        or {"parallelism": 1, "order": "stop-first", "failure_action": "pause", "monitor": monitor},
    }
    resources = given.pop("resources", None)
    if resources:
        cleaned = {}
        for kind in ("limits", "reservations"):
            values = {k: str(v) for k, v in (resources.get(kind) or {}).items() if k in (
                "cpus", "memory") and v not in (None, "")}  # fmt: skip
            if values:
                cleaned[kind] = values
        deploy["resources"] = cleaned
    deploy.update(given)
    return deploy


def service_document(
    name: str,
    service: Mapping[str, Any],
    *,
    stack: str,
    revision: str,
    registry: str | None,
    env_files: list[str],
    host_network: bool,
    notes: list[str],
    configs: list[tuple[str, Path, str]],
    job: bool = False,
) -> dict[str, Any]:
    """One service of the stack file; refuses (by key) what Swarm cannot carry."""
    for key in service:
        # `x-` keys are annotations for tools (hotmode's waivers), kept for `check --swarm`.
        if key not in _KEPT and key not in _HANDLED and not str(key).startswith("x-"):
            raise UsageError(
                f"{_where(name, key)}: Swarm ignores this key and hotmode has no translation; "
                "remove it from the prod configuration"
            )
    for option in service.get("security_opt") or []:
        if not str(option).startswith("no-new-privileges"):
            raise UsageError(f"{_where(name, 'security_opt')}: {option} has no Swarm form")
    if service.get("security_opt"):
        notes.append(f"{name}: {NO_NEW_PRIVILEGES}")
    if service.get("network_mode") not in (None, "host"):
        raise UsageError(f"{_where(name, 'network_mode')}: Swarm has no network_mode")
    if service.get("network_mode") == "host":
        # `network_mode: host` is ignored by stack deploy; the host network is joined by name.
        host_network = True
        notes.append(f"{name}: network_mode: host is the external network `host`")
    out: dict[str, Any] = {"image": _image(name, service, revision, registry)}
    for key in [*_KEPT, *sorted(k for k in service if str(k).startswith("x-"))]:
        if key in service and service[key] not in (None, [], {}):
            out[key] = service[key]
    if env_files:
        out["env_file"] = env_files
    own: list[tuple[str, Path, str]] = []
    volumes = _volumes(name, service, own)
    if volumes:
        out["volumes"] = volumes
    if own:
        out["configs"] = [
            {"source": key, "target": target, "mode": 0o444} for key, _, target in own
        ]
        configs += own
        notes.append(f"{name}: read-only bind mounts are Swarm configs, one per file")
    ports = _ports(name, service, host_network)
    if ports:
        out["ports"] = ports
    secrets = service.get("secrets")
    if secrets:
        out["secrets"] = [
            {k: v for k, v in s.items() if k in ("source", "target", "uid", "gid", "mode")}
            for s in secrets
        ]
    if host_network:
        out["networks"] = ["hostnet"]
    out["deploy"] = _deploy(stack, name, service, host_network)
    if stateful(service) and not job:
        notes.append(
            f"{name}: keeps its data in a local volume: pinned to the node labelled "
            f"{data_label(stack, name)}=true (deploy labels the deploying node if none is)"
        )
    if "build" in service:
        out["deploy"]["labels"] = {REVISION_LABEL: revision}
        notes.append(f"{name}: build: is done by `hotmode deploy --swarm` first ({out['image']})")
    for key, what in (
        ("container_name", "Swarm names the tasks"),
        ("depends_on", "Swarm restarts a task until what it needs answers"),
    ):
        if service.get(key):
            notes.append(f"{name}: {key}: dropped, {what}")
    if service.get("restart"):
        notes.append(f"{name}: restart: {service['restart']} is deploy.restart_policy")
    if service.get("tmpfs"):
        notes.append(f"{name}: tmpfs: is a tmpfs mount (stack deploy drops the short form)")
    return out


def job_document(
    name: str, out: dict[str, Any], image: str, revision: str, notes: list[str]
) -> dict[str, Any]:
    """A declared job as a `replicated-job`: the app's image, run once to completion, never
    restarted (a failed migration is reported, not retried over a half-changed database)."""
    out["image"] = image
    resources = out["deploy"].get("resources")
    out["deploy"] = {
        "mode": "replicated-job",
        "replicas": 1,
        "restart_policy": {"condition": "none"},
        **({"resources": resources} if resources else {}),
        "labels": {REVISION_LABEL: revision},
    }
    notes.append(
        f"{name}: a job, run to completion by `hotmode deploy --swarm` after the companions "
        "and before the app's update; a failed job stops the deploy"
    )
    return out


def stack_document(
    prod: ProdConfig,
    *,
    stack: str,
    revision: str,
    host_network: bool,
    deployment: Path,
    registry: str | None = None,
) -> Stack:
    """The stack file of an edition's prod configuration, its names following `stack`."""
    notes: list[str] = []
    configs: list[tuple[str, Path, str]] = []
    services = {}
    jobs = job_names(prod.services)
    waiters = {job: name for name, service in prod.services.items()
               for job in job_names({name: service})}  # fmt: skip
    for name, service in sorted(prod.services.items()):
        env_files = []
        for reference in prod.env_files.get(name, ()):
            path = deployment / reference.path
            if path.is_file():
                env_files.append(str(path))
            elif reference.required:
                raise UsageError(f"{path} does not exist and {_where(name, 'env_file')} needs it")
            else:
                notes.append(f"{name}: env_file {reference.path} is optional and absent: left out")
        services[name] = service_document(
            name, service, stack=stack, revision=revision, registry=registry, env_files=env_files,
            host_network=host_network, notes=notes, configs=configs, job=name in jobs,
        )  # fmt: skip
        if name in jobs:
            waiter = waiters[name]
            image = _image(waiter, prod.services[waiter], revision, registry)
            services[name] = job_document(name, services[name], image, revision, notes)
    document: dict[str, Any] = {"version": "3.9", "services": services}
    volumes = {
        # An external volume keeps the name it was given; the stack's own follow the stack.
        str(k): {"external": True, "name": v.get("name", k)}
        if (v or {}).get("external")
        else {"name": f"{stack}_{k}"}
        for k, v in (prod.merged.get("volumes") or {}).items()
    }
    if volumes:
        document["volumes"] = volumes
        notes.append("named volumes survive `docker stack rm`; remove them by name")
    secrets = prod.merged.get("secrets") or {}
    if secrets:
        document["secrets"] = secret_definitions(stack, secrets, notes)
        notes.append("secrets and configs are named by their content: a changed file is rotated")
    if configs:
        document["configs"] = {
            key: {"file": str(path), "name": object_name(stack, key, path)}
            for key, path, _ in configs
        }
    if any("hostnet" in (s.get("networks") or []) for s in services.values()):
        document["networks"] = {"hostnet": {"external": True, "name": "host"}}
        notes.append(HOST_NETWORK_OUTAGE)
    return Stack(document, notes)


@dataclass(frozen=True)
class Target:
    """Where a stack file is for: its edition, stack name, networking and image registry."""

    edition: str | None = None
    stack: str | None = None
    host_network: bool = False
    registry: str | None = None

    def flags(self) -> str:
        """The `render --swarm` options that give this target again."""
        return "".join(
            [
                f" --edition {self.edition}" if self.edition else "",
                f" --stack {self.stack}" if self.stack else "",
                " --host-network" if self.host_network else "",
                f" --registry {self.registry}" if self.registry else "",
            ]
        )


_TARGET_LINE = re.compile(
    r"^# Swarm stack (?P<stack>\S+) for prod (?P<edition>[\w.-]+)(?P<host> \(host network\))?"
    r"(?:, images from (?P<registry>\S+))?:",
    re.MULTILINE,
)


def rendered_target(text: str) -> Target | None:
    """The target a rendered stack file's header names, or None if it names none."""
    found = _TARGET_LINE.search(text[:2000])
    if found is None:
        return None
    return Target(found["edition"], found["stack"], bool(found["host"]), found["registry"] or None)


def _body(stack: Stack, edition: str, name: str, target: Target) -> str:
    lines = [
        f"# Swarm stack {name} for prod {edition}{' (host network)' if target.host_network else ''}"
        f"{', images from ' + target.registry if target.registry else ''}: "
        "`hotmode deploy --swarm` deploys it.",
        "# Variables are resolved from deployment/.env: `docker stack deploy` does not read it.",
        *(f"# - {note}" for note in sorted(set(stack.notes))),
    ]
    text = yaml.safe_dump(stack.document, sort_keys=False, default_flow_style=False, width=100)
    return "\n".join(lines) + "\n" + text


def build_environment(config: Config, *, allow_dirty: bool) -> dict[str, str]:
    """The revision and source digest the build and the stack file carry."""
    return {
        "HOTMODE_REVISION": source.build_revision(
            config.source, config.deployment / "Dockerfile", allow_dirty=allow_dirty
        ),
        "HOTMODE_SOURCE_DIGEST": source.source_digest(config.source) or "unknown",
    }


def render_files(config: Config, target: Target, *, allow_dirty: bool) -> dict[Path, str]:
    """`deployment/docker-stack.yml` for an edition, with hotmode's header."""
    chosen = config.edition(target.edition) if target.edition else config.default_edition
    env = build_environment(config, allow_dirty=allow_dirty)
    prod = merge(config, chosen.name, site=True, env=env)
    name = target.stack or config.name
    stack = stack_document(
        prod,
        stack=name,
        revision=env["HOTMODE_REVISION"],
        host_network=target.host_network,
        deployment=config.deployment,
        registry=target.registry,
    )
    declaration = os.path.relpath(config.path, config.root)
    # The defaults left out, so that a target read back from the header renders the same.
    given = dataclasses.replace(
        target,
        edition=None if chosen.name == config.default_edition.name else chosen.name,
        stack=None if name == config.name else name,
    )
    command = "hotmode render --swarm" + given.flags()
    body = _body(stack, chosen.name, name, target)
    return {config.deployment / STACK_FILE: with_header(body, declaration, command)}
