"""`hotmode check --k8s`: prod's rules on the manifests, one pass and one failure per rule."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from conftest import RunCli
from helpers import commit, git
from hotmode.compose.prod import ProdConfig
from hotmode.orchestrate import k8s, k8s_audit

GOOD = k8s.edition_objects(
    "shop",
    "web",
    ProdConfig(
        "core",
        "shop",
        (),
        {
            "services": {
                "web": {
                    "image": "shop:prod",
                    "build": {},
                    "user": "10001:10001",
                    "read_only": True,
                    "tmpfs": ["/tmp"],
                    "command": ["uvicorn", "shop:app"],
                    "environment": {"PORT": "8000"},
                    "ports": [{"target": 8000}],
                    "healthcheck": {"test": ["CMD", "true"]},
                    "deploy": {"resources": {"limits": {"cpus": 1, "memory": "256M"}}},
                }
            }
        },
        {},
    ),
    k8s.K8sOptions(revision="abc", registry="registry.test:5000"),
)


def _rules(documents: list[dict[str, Any]]) -> set[str]:
    return {f.rule_id for f in k8s_audit.audit("k8s core", documents, Path("x"))}


def test_the_rendered_manifests_pass() -> None:
    assert _rules(GOOD) == set()


def _container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = documents[0]["spec"]["template"]["spec"]["containers"][0]
    return container


def _pod(documents: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = documents[0]["spec"]["template"]
    return pod


BREAKS = {
    "HM-K01": lambda d: _container(d)["securityContext"].update(runAsUser=0),
    "HM-K02": lambda d: _container(d)["securityContext"].update(readOnlyRootFilesystem=False),
    "HM-K03": lambda d: _container(d)["securityContext"].pop("allowPrivilegeEscalation"),
    "HM-K04": lambda d: _container(d)["args"].append("--reload"),
    "HM-K05": lambda d: _container(d).update(image="registry.test:5000/shop:latest"),
    "HM-K06": lambda d: _container(d).pop("livenessProbe"),
    "HM-K07": lambda d: _container(d).update(env=[{"name": "DB_PASSWORD", "value": "x"}]),
    "HM-K08": lambda d: d[0]["spec"].update(strategy={"type": "Recreate"}),
    "HM-K09": lambda d: d[1]["data"].update(LOG_LEVEL="debug"),
    # What `render --k8s` without --registry gives: a name no node can place.
    "HM-K11": lambda d: _container(d).update(image="shop:abc"),
}


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_each_rule_finds_its_problem(rule: str) -> None:
    documents = copy.deepcopy(GOOD)
    BREAKS[rule](documents)
    assert _rules(documents) == {rule}


def test_hostpath_and_missing_tmp() -> None:
    documents = copy.deepcopy(GOOD)
    _pod(documents)["spec"]["volumes"] = [{"name": "tmp", "hostPath": {"path": "/srv"}}]
    assert _rules(documents) == {"HM-K02", "HM-K04"}


def test_check_k8s_on_the_gateway(gateway: Path, run_cli: RunCli) -> None:
    git(gateway, "init", "-q")
    commit(gateway, "the gateway")
    code, _, err = run_cli("check", "--k8s", cwd=gateway)
    assert code == 2 and "render --k8s" in err
    # The database as a StatefulSet, its uid the one the official image gives `postgres` (no
    # hand-written number): check takes the options render took, and checks that.
    given = ["--stateful", "postgres", "--registry", "registry.test:5000"]
    assert run_cli("render", "--k8s", *given, cwd=gateway)[0] == 0
    code, out, _ = run_cli("check", "--k8s", *given, cwd=gateway)
    assert code == 0 and "2 mode(s) checked, no findings" in out
    # Other options are another render: what is on disk is stale against them.
    code, out, _ = run_cli("check", "--k8s", "--managed", "postgres=db.internal", cwd=gateway)
    assert code == 1 and "HM-K10" in out
    patch = gateway / "deployment" / "k8s" / "overlays" / "saas" / "patches.yaml"
    patch.write_text(patch.read_text() + "# by hand\n")
    code, out, _ = run_cli("check", "--k8s", *given, "--edition", "saas", cwd=gateway)
    assert code == 1 and "HM-K10" in out and "patches.yaml" in out
