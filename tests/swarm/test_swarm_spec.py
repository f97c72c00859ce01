"""`verify --swarm` compares the whole service: each field a stack file decides, as Swarm keeps
it (the spec below is the form `docker service inspect` gives), one pass and one hand change
per field the issue found unchecked. The real swarm tests run the same hand changes live."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import RunCli
from helpers import commit, git
from hotmode.orchestrate.swarm_spec import field_drift

RENDERED: dict[str, Any] = {
    "image": "registry.test/shop:abc",
    "command": ["uvicorn", "main:app", "--port", "8000"],
    "healthcheck": {"test": ["CMD", "python", "-c", "check()"], "interval": "1s",
                    "timeout": "5s", "retries": 3, "start_period": "5s"},
    "stop_grace_period": "10s",
    "deploy": {
        "mode": "replicated", "replicas": 2,
        "restart_policy": {"condition": "any", "delay": "5s", "window": "30s"},
        "update_config": {"parallelism": 1, "order": "stop-first", "failure_action": "rollback",
                          "monitor": "14s", "max_failure_ratio": 0},
        "rollback_config": {"parallelism": 1, "order": "stop-first", "failure_action": "pause",
                            "monitor": "14s"},
        "resources": {"limits": {"cpus": "1.0", "memory": "536870912"}},
        "placement": {"constraints": ["node.labels.hotmode.shop.db == true"],
                      "max_replicas_per_node": 1},
    },
}  # fmt: skip
SECOND = 1_000_000_000
LIVE: dict[str, Any] = {
    "TaskTemplate": {
        "ContainerSpec": {
            "Image": "registry.test/shop:abc",
            "Args": ["uvicorn", "main:app", "--port", "8000"],
            "Healthcheck": {"Test": ["CMD", "python", "-c", "check()"], "Interval": SECOND,
                            "Timeout": 5 * SECOND, "StartPeriod": 5 * SECOND, "Retries": 3},
            "StopGracePeriod": 10 * SECOND,
        },
        "Resources": {"Limits": {"NanoCPUs": SECOND, "MemoryBytes": 536870912}},
        "RestartPolicy": {"Condition": "any", "Delay": 5 * SECOND, "MaxAttempts": 0,
                          "Window": 30 * SECOND},
        "Placement": {"Constraints": ["node.labels.hotmode.shop.db == true"], "MaxReplicas": 1},
    },
    "Mode": {"Replicated": {"Replicas": 2}},
    "UpdateConfig": {"Parallelism": 1, "FailureAction": "rollback", "Monitor": 14 * SECOND,
                     "MaxFailureRatio": 0, "Order": "stop-first"},
    "RollbackConfig": {"Parallelism": 1, "FailureAction": "pause", "Monitor": 14 * SECOND,
                       "MaxFailureRatio": 0, "Order": "stop-first"},
}  # fmt: skip


def test_the_live_service_as_rendered_has_no_drift() -> None:
    assert field_drift(RENDERED, LIVE) == []


def _container(spec: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = spec["TaskTemplate"]["ContainerSpec"]
    return container


HAND_CHANGES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "the command's arguments": (lambda s: _container(s)["Args"].append("--reload"),
                                "ContainerSpec.Args is"),
    "the health command": (lambda s: _container(s)["Healthcheck"].update(Test=["CMD", "true"]),
                           "ContainerSpec.Healthcheck.Test is ['CMD', 'true']"),
    "the memory limit": (lambda s: s["TaskTemplate"]["Resources"]["Limits"].update(
        MemoryBytes=314572800), "Resources.Limits.MemoryBytes is 314572800, not the rendered "
                                "536870912"),
    "the CPU limit": (lambda s: s["TaskTemplate"]["Resources"]["Limits"].pop("NanoCPUs"),
                      "Resources.Limits.NanoCPUs is unset, not the rendered 1000000000"),
    "the update failure action": (lambda s: s["UpdateConfig"].update(FailureAction="pause"),
                                  "UpdateConfig.FailureAction is pause, not the rendered rollback"),
    "the replicas": (lambda s: s["Mode"]["Replicated"].update(Replicas=5),
                     "Mode is {'Replicated': {'Replicas': 5}}"),
    "the placement constraint": (lambda s: s["TaskTemplate"]["Placement"].pop("Constraints"),
                                 "Placement.Constraints is unset"),
    "the restart policy": (lambda s: s["TaskTemplate"]["RestartPolicy"].update(Condition="none"),
                           "RestartPolicy.Condition is none"),
    "the rollback's monitor": (lambda s: s["RollbackConfig"].update(Monitor=SECOND),
                               "RollbackConfig.Monitor is 1000000000"),
}  # fmt: skip


@pytest.mark.parametrize("change", sorted(HAND_CHANGES))
def test_each_hand_change_is_named(change: str) -> None:
    live = copy.deepcopy(LIVE)
    apply, named = HAND_CHANGES[change]
    apply(live)
    found = field_drift(RENDERED, live)
    assert len(found) == 1 and found[0].startswith(named), found


def test_a_job_is_compared_by_its_mode_not_by_an_update_config() -> None:
    job = {"image": "shop:abc", "command": ["python", "-m", "migrate"],
           "deploy": {"mode": "replicated-job", "replicas": 1,
                      "restart_policy": {"condition": "none"}}}  # fmt: skip
    # What Swarm fills in where the file says nothing: a 10 s stop, a 5 s restart delay.
    live = {"TaskTemplate": {"ContainerSpec": {"Args": ["python", "-m", "migrate"],
                                               "StopGracePeriod": 10 * SECOND},
                             "RestartPolicy": {"Condition": "none", "MaxAttempts": 0,
                                               "Delay": 5 * SECOND}},
            "Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}}  # fmt: skip
    assert field_drift(job, live) == []
    live["Mode"] = {"Replicated": {"Replicas": 1}}
    assert [p.split(" is ")[0] for p in field_drift(job, live)] == ["Mode"]


def test_status_and_verify_name_an_unreachable_manager(gateway: Path, run_cli: RunCli) -> None:
    git(gateway, "init", "-q")
    commit(gateway, "the gateway")
    (gateway / "deployment" / "docker-stack.yml").write_text("services:\n  backend: {}\n")
    for command in ("status", "verify"):
        code, out, err = run_cli(command, "--swarm", env={"DOCKER_HOST": "unix:///nonexistent.sock"},
                                 cwd=gateway)  # fmt: skip
        assert code != 0 and "cannot reach the Swarm manager's engine" in err, (out, err)
        assert "not deployed" not in out
