"""The parts of a live Swarm service that its rendered stack-file service decides, side by side.

`docker stack deploy` turns each stack-file key into a field of the service's spec (Docker's
`cli/compose/convert`): `command` is `ContainerSpec.Args`, a duration is nanoseconds, `cpus` is
`NanoCPUs`, `deploy.replicas` is `Mode.Replicated.Replicas`, and so on. `spec_fields` does that
conversion for every field hotmode renders that a hand change could alter (the task's command
and health check, its stop, resources, restart policy and placement, the service's mode and
replicas, its update and rollback configuration); `field_drift` names each field whose live value
is not the rendered one. Absent, zero and empty are one value, as the API omits them alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from hotmode.orchestrate.units import duration_seconds

_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_CONTAINER = ("TaskTemplate", "ContainerSpec")
_HEALTH = (*_CONTAINER, "Healthcheck")


def _nanoseconds(value: Any) -> int | None:
    return None if value in (None, "") else int(Decimal(str(duration_seconds(value))) * 10**9)


def _bytes(value: Any) -> int | None:
    if value in (None, ""):
        return None
    found = _MEMORY.match(str(value).strip())
    if found is None:
        return None
    return int(Decimal(found[1]) * 1024 ** _POWERS[found[2].lower()])


def _cpus(value: Any) -> int | None:
    return None if value in (None, "") else int(Decimal(str(value)) * 10**9)


def _test(value: Any) -> list[str] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        return ["CMD-SHELL", value]
    return [str(part) for part in value]


def _update(prefix: str, config: Mapping[str, Any] | None) -> Iterator[tuple[tuple[str, ...], Any]]:
    config = config or {}
    yield (prefix, "Parallelism"), config.get("parallelism")
    yield (prefix, "FailureAction"), config.get("failure_action")
    yield (prefix, "Monitor"), _nanoseconds(config.get("monitor"))
    yield (prefix, "MaxFailureRatio"), config.get("max_failure_ratio")
    yield (prefix, "Order"), config.get("order")
    yield (prefix, "Delay"), _nanoseconds(config.get("delay"))


def _mode(deploy: Mapping[str, Any]) -> dict[str, Any]:
    mode = str(deploy.get("mode") or "replicated")
    replicas = int(deploy.get("replicas") or 1)
    if mode == "global":
        return {"Global": {}}
    if mode == "replicated-job":
        return {"ReplicatedJob": {"MaxConcurrent": replicas, "TotalCompletions": replicas}}
    if mode == "global-job":
        return {"GlobalJob": {}}
    return {"Replicated": {"Replicas": replicas}}


def spec_fields(service: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """Each field path of a service's spec and the value the rendered `service` gives it."""
    deploy = service.get("deploy") or {}
    check = service.get("healthcheck") or {}
    limits = (deploy.get("resources") or {}).get("limits") or {}
    reservations = (deploy.get("resources") or {}).get("reservations") or {}
    restart = deploy.get("restart_policy") or {}
    placement = deploy.get("placement") or {}
    fields: dict[tuple[str, ...], Any] = {
        (*_CONTAINER, "Command"): service.get("entrypoint"),
        (*_CONTAINER, "Args"): service.get("command"),
        (*_HEALTH, "Test"): _test(check.get("test")),
        (*_HEALTH, "Interval"): _nanoseconds(check.get("interval")),
        (*_HEALTH, "Timeout"): _nanoseconds(check.get("timeout")),
        (*_HEALTH, "StartPeriod"): _nanoseconds(check.get("start_period")),
        (*_HEALTH, "Retries"): check.get("retries"),
        (*_CONTAINER, "StopGracePeriod"): _nanoseconds(service.get("stop_grace_period")),
        (*_CONTAINER, "StopSignal"): service.get("stop_signal"),
        (*_CONTAINER, "Hostname"): service.get("hostname"),
        (*_CONTAINER, "Dir"): service.get("working_dir"),
        ("TaskTemplate", "Resources", "Limits", "NanoCPUs"): _cpus(limits.get("cpus")),
        ("TaskTemplate", "Resources", "Limits", "MemoryBytes"): _bytes(limits.get("memory")),
        ("TaskTemplate", "Resources", "Reservations", "NanoCPUs"): _cpus(reservations.get("cpus")),
        ("TaskTemplate", "Resources", "Reservations", "MemoryBytes"): _bytes(
            reservations.get("memory")
        ),
        ("TaskTemplate", "RestartPolicy", "Condition"): restart.get("condition"),
        ("TaskTemplate", "RestartPolicy", "Delay"): _nanoseconds(restart.get("delay")),
        ("TaskTemplate", "RestartPolicy", "Window"): _nanoseconds(restart.get("window")),
        ("TaskTemplate", "RestartPolicy", "MaxAttempts"): restart.get("max_attempts"),
        ("TaskTemplate", "Placement", "Constraints"): sorted(placement.get("constraints") or []),
        ("TaskTemplate", "Placement", "MaxReplicas"): placement.get("max_replicas_per_node"),
        ("Mode",): _mode(deploy),
    }
    if "-job" not in str(deploy.get("mode") or ""):
        fields.update(_update("UpdateConfig", deploy.get("update_config")))
        fields.update(_update("RollbackConfig", deploy.get("rollback_config")))
    return fields


# What Swarm keeps when the stack file leaves a field out (swarmkit's defaults, as
# `docker service inspect` shows them).
_DEFAULTS: dict[tuple[str, ...], Any] = {
    (*_CONTAINER, "StopGracePeriod"): 10 * 10**9,
    ("TaskTemplate", "RestartPolicy", "Delay"): 5 * 10**9,
}


def _read(spec: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = spec
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _same(rendered: Any, live: Any, path: tuple[str, ...]) -> bool:
    empty: tuple[Any, ...] = (None, 0, "", [], {})
    if rendered in empty and live in empty:
        return True
    if path[-1] == "Constraints":
        return bool(sorted(live or []) == rendered)
    if isinstance(rendered, list) and isinstance(live, list):
        return [str(v) for v in rendered] == [str(v) for v in live]
    if isinstance(rendered, int | float) and isinstance(live, int | float):
        return float(rendered) == float(live)
    return bool(rendered == live)


def field_drift(service: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    """Each field of the live service `spec` (`docker service inspect`'s `Spec`) that is not
    what the rendered `service` gives it, named by its path."""
    problems = []
    for path, rendered in spec_fields(service).items():
        live = _read(spec, path)
        if rendered is None:
            rendered = _DEFAULTS.get(path)
        if not _same(rendered, live, path):
            shown = ".".join(path[1:] if path[0] == "TaskTemplate" else path)
            problems.append(f"{shown} is {_show(live)}, not the rendered {_show(rendered)}")
    return problems


def _show(value: Any) -> str:
    text = "unset" if value in (None, "", [], {}) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
