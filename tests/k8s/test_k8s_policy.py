"""What a cluster needs around the workloads: managed databases by DNS name and port, jobs as
Jobs, budgets and spread that mean something, a closed network, Pod Security, Secrets said
with the command that creates them, and pods that roll when their settings change."""

from __future__ import annotations

import http.server
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conftest import RunCli
from helpers import commit, git
from hotmode.compose.prod import ProdConfig
from hotmode.errors import UsageError
from hotmode.orchestrate import k8s
from hotmode.orchestrate.k8s_policy import CHECKSUM_ANNOTATION, Managed, parse_managed

VERSION = kubernetes_validate.latest_version()


def _app(**changes: Any) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": "shop:prod",
        "build": {"context": "."},
        "user": "10001:10001",
        "read_only": True,
        "tmpfs": ["/tmp"],
        "command": ["uvicorn", "shop:app"],
        "environment": {"PORT": "8000", "DATABASE_URL": "postgresql://shop@postgres:5432/shop"},
        "ports": [{"target": 8000}],
        "healthcheck": {"test": ["CMD", "curl", "-f", "http://127.0.0.1:8000/health"]},
    }
    service.update(changes)
    return service


def _migrate() -> dict[str, Any]:
    job = {k: v for k, v in _app().items() if k not in ("build", "ports", "healthcheck")}
    return {**job, "command": ["python", "-m", "shop.migrate"], "restart": "no"}


def _prod(edition: str = "core", **services: Any) -> ProdConfig:
    return ProdConfig(edition, f"shop-{edition}", (), {"services": services}, {})


def _objects(prod: ProdConfig, **options: Any) -> list[dict[str, Any]]:
    given = {"revision": "0123abcdef4567", "registry": "registry.test", **options}
    objects = k8s.edition_objects("shop", "web", prod, k8s.K8sOptions(**given))
    for document in objects:
        kubernetes_validate.validate(document, VERSION, strict=True)
    return objects


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    return next(d for d in objects if d["kind"] == kind and name in (None, d["metadata"]["name"]))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("postgres=10.0.0.5", "is an address"),
        ("postgres=db.internal:5432:1", "not a DNS name"),
        ("postgres=postgres://db.internal/shop", "not a DNS name"),
        ("postgres=user@db.internal", "not a DNS name"),
        ("postgres=DB_Internal", "not a DNS name"),
        ("postgres=db.internal:0", "not a port"),
        ("postgres", "not NAME[@EDITION]=DNS[:PORT]"),
        ("postgres@=db.internal", "not NAME[@EDITION]=DNS[:PORT]"),
    ],
)
def test_a_managed_database_is_a_dns_name_and_a_port(given: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_managed([given])


def test_managed_per_edition_with_its_port_reaching_the_app() -> None:
    managed = parse_managed(["postgres=db.internal", "postgres@saas=db-saas.internal.:6432"])
    assert managed == {("postgres", None): Managed("db.internal"),
                       ("postgres", "saas"): Managed("db-saas.internal", 6432)}  # fmt: skip
    options = {"managed": managed, "ports": {"postgres": 5432}}
    for edition, host, url in (
        ("core", "db.internal", "postgresql://shop@postgres:5432/shop"),
        ("saas", "db-saas.internal", "postgresql://shop@postgres:6432/shop"),
    ):
        objects = _objects(_prod(edition, web=_app(), postgres={"image": "postgres:16"}), **options)
        assert _one(objects, "Service", "postgres")["spec"]["externalName"] == host
        assert _one(objects, "ConfigMap", "shop-env")["data"]["DATABASE_URL"] == url
        # Readiness reaches the database where the app's settings say it is.
        ready = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        assert ready["readinessProbe"]["exec"]["command"][-1] == f"postgres:{url[27:31]}"
        assert "httpGet" in ready["livenessProbe"]


def test_the_cli_refuses_a_url_as_a_managed_host_in_one_line(
    gateway: Path, run_cli: RunCli
) -> None:
    git(gateway, "init", "-q")
    commit(gateway, "the gateway")
    code, _, err = run_cli("render", "--k8s", "--managed", "postgres=10.1.2.3", cwd=gateway)
    assert code == 2 and "is an address" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("render", "--k8s", "--managed", "postgres@gold=db.x", cwd=gateway)
    assert code == 2 and "no edition 'gold'" in err
    code, _, err = run_cli("render", "--k8s", "--stateful", "postgres", "--claim-size", "lots",
                           cwd=gateway)  # fmt: skip
    assert code == 2 and "--claim-size 'lots' is not a size" in err
    # An edition without a home for its database is named.
    code, _, err = run_cli("render", "--k8s", "--managed", "postgres@core=db.x", cwd=gateway)
    assert code == 2 and "edition saas" in err


def test_replicas_get_a_budget_and_spread_one_gets_neither() -> None:
    one = _objects(_prod(web=_app()))
    assert not [d for d in one if d["kind"] == "PodDisruptionBudget"]
    assert "affinity" not in _one(one, "Deployment")["spec"]["template"]["spec"]
    three = _objects(_prod(web=_app(deploy={"replicas": 3})))
    budget = _one(three, "PodDisruptionBudget")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {
        "app.kubernetes.io/name": "shop", "app.kubernetes.io/component": "web"}}}  # fmt: skip
    pod = _one(three, "Deployment")["spec"]["template"]["spec"]
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"


def test_the_network_is_closed_but_for_the_app_and_its_companions() -> None:
    database = {
        "image": "postgres:16", "user": "999:999", "read_only": True, "tmpfs": ["/tmp"],
        "ports": [{"target": 5432}], "healthcheck": {"test": ["CMD", "pg_isready"]},
        "volumes": [{"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"}],
    }  # fmt: skip
    objects = _objects(_prod(web=_app(), postgres=database), stateful=frozenset({"postgres"}))
    policies = {d["metadata"]["name"]: d["spec"] for d in objects if d["kind"] == "NetworkPolicy"}
    assert policies["shop-default-deny"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    assert policies["shop"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]
    clients = policies["shop-clients"]
    reach = clients["egress"][1]
    assert reach["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert reach["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "postgres"
    # The database takes connections from the app's pods only, and those carry the label.
    guarded = policies["shop-postgres"]
    assert guarded["ingress"][0]["from"][0]["podSelector"] == clients["podSelector"]
    app_labels = _one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert clients["podSelector"]["matchLabels"].items() <= app_labels.items()


def test_the_namespace_is_held_to_the_restricted_pod_security_level() -> None:
    namespace = k8s.expected_objects("shop", "web", _prod(web=_app()), k8s.K8sOptions("abc"))[0]
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_a_changed_configmap_rolls_the_pods() -> None:
    before = _one(_objects(_prod(web=_app())), "Deployment")
    changed = _app()
    changed["environment"] = {**changed["environment"], "FEATURE": "on"}
    after = _one(_objects(_prod(web=changed)), "Deployment")
    old = before["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION]
    new = after["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION]
    assert old != new


def test_a_job_is_a_job_of_the_apps_image_and_environment_never_a_companion() -> None:
    app = _app(depends_on={"migrate": {"condition": "service_completed_successfully"},
                           "postgres": {"condition": "service_healthy"}})  # fmt: skip
    prod = _prod(web=app, migrate=_migrate(), postgres={"image": "postgres:16"})
    # Only the database needs a home; with it managed, the job renders as a Job.
    with pytest.raises(UsageError, match="the postgres companion needs a home"):
        _objects(prod)
    objects = _objects(
        prod, managed={("postgres", None): Managed("db.internal")}, ports={"postgres": 5432}
    )
    assert [d["metadata"]["name"] for d in objects if d["kind"] == "Service"] == [
        "shop",
        "postgres",
    ]
    job = _one(objects, "Job")
    assert job["metadata"]["name"] == "shop-migrate-0123abcdef45"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    deployment = _one(objects, "Deployment")
    assert container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["image"] == "registry.test/shop:0123abcdef4567"
    assert container["args"] == ["python", "-m", "shop.migrate"]
    assert container["envFrom"][0] == {"configMapRef": {"name": "shop-migrate-env"}}
    assert _one(objects, "ConfigMap", "shop-migrate-env")["data"]["DATABASE_URL"].endswith("/shop")
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"]["hotmode.dev/client"] == "true"
    # Its pods are not the Deployment's (a ReplicaSet would adopt them otherwise).
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()
    assert deployment["metadata"]["labels"]["hotmode.dev/after-jobs"] == "true"


def test_the_overlay_says_how_to_create_its_secrets_and_to_apply_after_jobs(
    gateway: Path, run_cli: RunCli
) -> None:
    toml = gateway / "hotmode.toml"
    toml.write_text(toml.read_text() + '\n[jobs.migrate]\ncommand = ["python", "-c", "pass"]\n')
    assert run_cli("render", cwd=gateway)[0] == 0
    git(gateway, "init", "-q")
    commit(gateway, "the gateway")
    code, _, err = run_cli("render", "--k8s", "--stateful", "postgres", "--registry", "r.test",
                           cwd=gateway)  # fmt: skip
    assert code == 0, err
    text = (gateway / "deployment" / "k8s" / "overlays" / "saas" / "kustomization.yaml").read_text()
    namespace = "linkedin-gateway-saas"
    assert (f"kubectl -n {namespace} create secret generic linkedin-gateway-saas-db-password "
            "--from-file=db_password=secrets/db_password") in text  # fmt: skip
    assert (f"kubectl -n {namespace} create secret generic linkedin-gateway-saas-env-prod-saas "
            "--from-env-file=.env.prod.saas") in text  # fmt: skip
    assert "-l 'hotmode.dev/after-jobs!=true'" in text
    head = git(gateway, "rev-parse", "HEAD")[:12]
    assert (
        f"wait --for=condition=complete --timeout=30m job/linkedin-gateway-migrate-{head}" in text
    )
    assert str(gateway) not in text
    documents = [
        yaml.safe_load(p.read_text()) for p in (gateway / "deployment/k8s/base").glob("*.job.yaml")
    ]
    assert len(documents) == 1
    code, out, _ = run_cli("check", "--k8s", "--stateful", "postgres", "--registry", "r.test",
                           cwd=gateway)  # fmt: skip
    assert code == 0, out


def test_the_readiness_command_fails_while_a_companion_does_not_answer() -> None:
    """The rendered readiness command, run for real against sockets on 127.0.0.1: it passes
    when the health path and the companion answer, and fails when the companion does not."""
    objects = _objects(_prod(web=_app(), postgres={"image": "postgres:16"}),
                       managed={("postgres", None): Managed("db.internal")},
                       ports={"postgres": 5432})  # fmt: skip
    container = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    command = container["readinessProbe"]["exec"]["command"]
    assert command[0] == "python" and command[-1] == "postgres:5432"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    database = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        for target, code in ((f"127.0.0.1:{database.getsockname()[1]}", 0),
                             (f"127.0.0.1:{closed_port}", 1)):  # fmt: skip
            argv = [sys.executable, *command[1:3], url, target]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            assert result.returncode == code, result.stderr
    finally:
        server.shutdown()
        server.server_close()
        database.close()
