"""`hotmode render --k8s`: manifests that carry every prod promise and validate offline.

Every manifest of every edition is validated against the official schemas of the newest
Kubernetes release `kubernetes-validate` ships (strict: unknown fields fail). Where kubectl is
installed, each overlay is built with its Kustomize and must equal what hotmode says the edition
is, so the patches are proven, not assumed. No cluster runs here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conftest import RunCli
from helpers import commit, git
from hotmode.compose.prod import EnvFile, ProdConfig, merge
from hotmode.config import load_config
from hotmode.errors import UsageError
from hotmode.orchestrate import k8s, units
from hotmode.orchestrate.k8s_policy import Managed

VERSION = kubernetes_validate.latest_version()
# The gateway's database as a StatefulSet; its user is a name, so its uid is given.
GATEWAY = ("--stateful", "postgres=999:999", "--registry", "registry.test:5000",
           "--storage-class", "fast", "--claim-size", "20Gi")  # fmt: skip


def gateway_options(revision: str) -> k8s.K8sOptions:
    """The options `render --k8s *GATEWAY` renders with."""
    return k8s.K8sOptions(
        revision=revision, stateful=frozenset({"postgres"}), users={"postgres": "999:999"},
        ports={"postgres": 5432}, registry="registry.test:5000", storage_class="fast",
        claim_size="20Gi",
    )  # fmt: skip


def validate(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, VERSION, strict=True)


@pytest.fixture
def committed(gateway: Path) -> Path:
    git(gateway, "init", "-q")
    commit(gateway, "the gateway")
    return gateway


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_render_k8s_writes_valid_manifests_for_every_edition(
    committed: Path, run_cli: RunCli
) -> None:
    code, _, err = run_cli("render", "--k8s", cwd=committed)
    assert code == 2 and "--managed postgres=HOST" in err and "--stateful postgres" in err
    code, _, err = run_cli("render", "--k8s", *GATEWAY, cwd=committed)
    assert code == 0, err
    head = git(committed, "rev-parse", "HEAD")
    folder = committed / "deployment" / "k8s"
    resources = sorted((folder / "base").glob("*.yaml"))
    assert {p.name for p in resources} >= {
        "kustomization.yaml",
        "linkedin-gateway.deployment.yaml",
        "linkedin-gateway.service.yaml",
        "linkedin-gateway-env.configmap.yaml",
    }
    for path in resources:
        if path.name != "kustomization.yaml":
            for document in _load_all(path):
                validate(document)
    deployment = _load_all(folder / "base" / "linkedin-gateway.deployment.yaml")[0]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"][k8s.REVISION_ANNOTATION] == head
    container = pod["spec"]["containers"][0]
    assert container["image"] == f"registry.test:5000/linkedin-gateway:{head}"
    kustomization = _load_all(folder / "base" / "kustomization.yaml")[0]
    assert kustomization["images"] == [{"name": "registry.test:5000/linkedin-gateway",
        "newName": "registry.test:5000/linkedin-gateway", "newTag": head}]  # fmt: skip
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"medium": "Memory"}} in pod["spec"]["volumes"]
    # Liveness and the start on the health path, the start period in a startup probe of its
    # own; readiness also reaches the database, so a pod whose database does not answer takes
    # no traffic (and is not restarted for it).
    health = {"httpGet": {"path": "/health", "port": 7778}}
    for probe in ("livenessProbe", "startupProbe"):
        assert {k: container[probe][k] for k in health} == health
    ready = container["readinessProbe"]["exec"]["command"]
    assert ready[:2] == ["python", "-c"] and ready[3:] == [
        "http://127.0.0.1:7778/health",
        "postgres:5432",
    ]
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 20
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 15
    assert all("subPath" not in mount for mount in container["volumeMounts"])
    # One replica: a disruption budget would protect nothing, and there is none.
    assert not (folder / "base" / "linkedin-gateway.poddisruptionbudget.yaml").exists()
    # The database: a StatefulSet whose headless Service is the one it names, on its port,
    # its data in a subdirectory of a claim of the storage class given.
    database = _load_all(folder / "base" / "linkedin-gateway-postgres.statefulset.yaml")[0]
    headless = _load_all(folder / "base" / "postgres.service.yaml")[0]
    assert database["spec"]["serviceName"] == headless["metadata"]["name"] == "postgres"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["ports"][0]["port"] == 5432
    db = database["spec"]["template"]["spec"]["containers"][0]
    assert db["ports"][0]["containerPort"] == 5432
    assert db["image"] == "docker.io/library/postgres:16-bookworm"
    # The claim mounted whole; the database's data in a subfolder it makes itself
    # (tests/k8s/test_k8s_data_path.py starts PostgreSQL on it).
    data = next(m for m in db["volumeMounts"] if m["name"] == "pgdata")
    assert data == {"name": "pgdata", "mountPath": "/var/lib/postgresql/data"}
    db_env = _load_all(folder / "base" / "linkedin-gateway-postgres-env.configmap.yaml")[0]
    assert db_env["data"]["PGDATA"] == "/var/lib/postgresql/data/pgdata"
    assert database["spec"]["template"]["spec"]["securityContext"]["fsGroupChangePolicy"] == (
        "OnRootMismatch"
    )
    assert k8s.REVISION_ANNOTATION not in database["spec"]["template"]["metadata"]["annotations"]
    assert k8s.REVISION_ANNOTATION not in database["metadata"].get("annotations", {})
    claim = database["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "fast"
    assert claim["resources"]["requests"]["storage"] == "20Gi"
    init = _load_all(folder / "base" / "linkedin-gateway-postgres-files.configmap.yaml")[0]
    assert "create table" in next(iter(init["data"].values())).lower()
    # Every edition, as its overlay builds it, validates too.
    config = load_config(committed / "hotmode.toml")
    options = gateway_options(head)
    for edition in config.editions:
        overlay = folder / "overlays" / edition.name / "kustomization.yaml"
        assert overlay.is_file()
        objects = k8s.expected_objects(
            config.name, config.service, merge(config, edition.name), options
        )
        for document in objects:
            validate(document)
    saas = k8s.expected_objects(config.name, config.service, merge(config, "saas"), options)
    configmap = next(d for d in saas if d["kind"] == "ConfigMap")
    assert configmap["data"]["LG_BACKEND_EDITION"] == "saas"
    assert configmap["metadata"]["namespace"] == "linkedin-gateway-saas"
    env_from = next(d for d in saas if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["envFrom"]
    # The edition's settings are required: without the Secret, the pod does not start.
    assert {"secretRef": {"name": "linkedin-gateway-saas-env-prod-saas"}} in env_from


def _normalise(documents: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    return {(d["kind"], d["metadata"]["name"]): _by_name(d) for d in documents}


def _by_name(node: Any) -> Any:
    """Pod volumes and mounts are merged by name (a patch may put its own first): compare them
    as sets, and everything else as it is."""
    if isinstance(node, dict):
        return {
            key: sorted((_by_name(v) for v in value), key=lambda v: v["name"])
            if key in ("volumes", "volumeMounts") and isinstance(value, list)
            else _by_name(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_by_name(v) for v in node]
    return node


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its Kustomize) is absent")
def test_each_overlay_builds_to_its_edition(committed: Path, run_cli: RunCli) -> None:
    # With a job: its Job's template takes the edition's label like every other template.
    toml = committed / "hotmode.toml"
    toml.write_text(toml.read_text() + '\n[jobs.migrate]\ncommand = ["python", "-c", "pass"]\n')
    assert run_cli("render", cwd=committed)[0] == 0
    commit(committed, "a job")
    code, _, err = run_cli("render", "--k8s", *GATEWAY, cwd=committed)
    assert code == 0, err
    config = load_config(committed / "hotmode.toml")
    options = gateway_options(git(committed, "rev-parse", "HEAD"))
    for edition in config.editions:
        overlay = committed / "deployment" / "k8s" / "overlays" / edition.name
        built = subprocess.run(
            ["kubectl", "kustomize", str(overlay)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        documents = [d for d in yaml.safe_load_all(built) if d]
        for document in documents:
            validate(document)
        expected = k8s.expected_objects(
            config.name, config.service, merge(config, edition.name), options
        )
        assert _normalise(documents) == _normalise(expected), edition.name
        assert {d["kind"] for d in documents} >= {"Job", "NetworkPolicy", "StatefulSet"}


def test_render_k8s_is_deterministic_and_keeps_hand_edits(committed: Path, run_cli: RunCli) -> None:
    assert run_cli("render", "--k8s", *GATEWAY, cwd=committed)[0] == 0
    code, out, _ = run_cli("render", "--k8s", *GATEWAY, cwd=committed)
    assert code == 0 and "wrote" not in out and "unchanged" in out
    assert run_cli("render", "--k8s", *GATEWAY, "--check", cwd=committed)[0] == 0
    service = committed / "deployment" / "k8s" / "base" / "linkedin-gateway.service.yaml"
    service.write_text(service.read_text() + "# mine\n")
    code, _, err = run_cli("render", "--k8s", *GATEWAY, cwd=committed)
    assert code == 1 and "kept hand-edited" in err and "linkedin-gateway.service.yaml" in err
    assert service.read_text().endswith("# mine\n")
    assert run_cli("render", "--k8s", *GATEWAY, "--force", cwd=committed)[0] == 0
    assert not service.read_text().endswith("# mine\n")


def test_render_k8s_refuses_a_dirty_tree(committed: Path, run_cli: RunCli) -> None:
    (committed / "backend" / "new.py").write_text("x = 1\n")
    code, _, err = run_cli("render", "--k8s", cwd=committed)
    assert code == 2 and "uncommitted changes" in err and len(err.splitlines()) == 1


def _prod(
    services: dict[str, Any], env_files: dict[str, tuple[EnvFile, ...]] | None = None
) -> ProdConfig:
    return ProdConfig("core", "shop", (), {"services": services}, env_files or {})


def _app(**changes: Any) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": "shop:prod",
        "build": {"context": "."},
        "user": "10001:10001",
        "read_only": True,
        "tmpfs": ["/tmp"],
        "command": ["uvicorn", "shop:app"],
        "environment": {
            "PORT": "8000",
            "SHOP_API_KEY": "not-in-the-manifest",
            "DATABASE_PASSWORD_FILE": "/run/secrets/db",
        },
        "ports": [{"target": 8000, "published": "8000"}],
        "healthcheck": {"test": ["CMD-SHELL", "true"], "interval": "1m30s", "retries": 2},
    }
    service.update(changes)
    return {key: value for key, value in service.items() if value is not None}


OPTIONS = k8s.K8sOptions(revision="0123abc")


def test_credentials_are_secret_references_never_values() -> None:
    objects = k8s.edition_objects(
        "shop", "web", _prod({"web": _app()}, {"web": (EnvFile(".env.prod", True),)}), OPTIONS
    )
    text = yaml.safe_dump_all(objects)
    assert "not-in-the-manifest" not in text
    container = objects[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [
        {
            "name": "SHOP_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "shop-secrets", "key": "SHOP_API_KEY"}},
        }
    ]
    assert {"secretRef": {"name": "shop-env-prod"}} in container["envFrom"]
    # A `*_FILE` variable names where the secret is, not the secret: it stays in the ConfigMap.
    assert objects[1]["data"]["DATABASE_PASSWORD_FILE"] == "/run/secrets/db"  # noqa: S105 - a path
    assert container["readinessProbe"]["periodSeconds"] == 90
    assert container["readinessProbe"]["exec"]["command"] == ["/bin/sh", "-c", "true"]
    for document in objects:
        validate(document)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"user": None}, "services.web.user"),
        ({"user": "0:0"}, "services.web.user"),
        ({"user": "app"}, "services.web.user"),
        ({"read_only": False}, "services.web.read_only"),
        ({"healthcheck": None}, "services.web.healthcheck"),
        ({"volumes": [{"type": "bind", "source": "/srv/code", "target": "/app"}]},
         "services.web.volumes.0"),
    ],
)  # fmt: skip
def test_what_a_manifest_cannot_carry_is_refused_by_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(UsageError, match=key.replace(".", r"\.")):
        k8s.edition_objects("shop", "web", _prod({"web": _app(**changes)}), OPTIONS)


def _postgres() -> dict[str, Any]:
    return {
        "image": "postgres:16-bookworm",
        "user": "999:999",
        "read_only": True,
        "tmpfs": ["/tmp", "/var/run/postgresql"],
        "environment": {"POSTGRES_DB": "shop", "POSTGRES_PASSWORD_FILE": "/run/secrets/db"},
        "secrets": [{"source": "db_password", "target": "db"}],
        "volumes": [{"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"}],
        "ports": [{"target": 5432}],
        "healthcheck": {"test": ["CMD", "pg_isready"], "interval": "5s"},
    }


def test_a_companion_is_a_managed_database_by_default_or_a_statefulset() -> None:
    prod = _prod({"web": _app(), "postgres": _postgres()})
    with pytest.raises(UsageError, match="--managed postgres=HOST"):
        k8s.edition_objects("shop", "web", prod, OPTIONS)
    named = k8s.K8sOptions(revision="0123abc", managed={("postgres", None): Managed("db.internal")})
    service = next(
        d
        for d in k8s.edition_objects("shop", "web", prod, named)
        if d["metadata"]["name"] == "postgres"
    )
    assert service["spec"]["externalName"] == "db.internal"
    stateful = k8s.K8sOptions(revision="0123abc", stateful=frozenset({"postgres"}))
    objects = k8s.edition_objects("shop", "web", prod, stateful)
    for document in objects:
        validate(document)
    workload = next(d for d in objects if d["kind"] == "StatefulSet")
    assert workload["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "pgdata"
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "docker.io/library/postgres:16-bookworm"
    assert container["securityContext"]["runAsUser"] == 999
    assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in container[
        "volumeMounts"
    ]
    headless = next(
        d for d in objects if d["kind"] == "Service" and d["metadata"]["name"] == "postgres"
    )
    assert headless["spec"]["clusterIP"] == "None"
    with pytest.raises(UsageError, match="no companion named 'redis'"):
        k8s.edition_objects("shop", "web", prod, k8s.K8sOptions("x", frozenset({"redis"})))


def test_overlay_patches_are_the_difference_from_the_base() -> None:
    base = {"spec": {"containers": [{"name": "a", "envFrom": [1], "image": "x"}], "keep": 1}}
    target = {"spec": {"containers": [{"name": "a", "envFrom": [1, 2], "image": "x"}]}}
    assert k8s.patch_diff(base, target) == {
        "spec": {"containers": [{"name": "a", "envFrom": [1, 2]}], "keep": None}
    }


@pytest.mark.parametrize(
    ("value", "seconds"), [("10s", 10), ("1m30s", 90), ("500ms", 0.5), (3, 3), ("1h", 3600)]
)
def test_compose_durations(value: Any, seconds: float) -> None:
    assert units.duration_seconds(value) == seconds


def test_quantities() -> None:
    assert units.memory_quantity("536870912") == "512Mi"
    assert units.memory_quantity("1g") == "1Gi"
    assert units.cpu_quantity(0.5) == "500m"
    assert units.cpu_quantity("2.0") == "2"


@pytest.mark.parametrize(
    ("image", "user", "ids"),
    [
        ("postgres:16-bookworm", "postgres", (999, 999)),
        ("docker.io/library/postgres:16", "postgres", (999, 999)),
        ("postgres:16-bookworm", "1234:1234", (1234, 1234)),
        ("postgres:16-alpine", "postgres", None),  # another number there: given, never guessed
        ("org/postgres:16", "postgres", None),  # not the official image
        ("postgres:16", "someone", None),
    ],
)  # fmt: skip
def test_a_named_user_is_numbered_only_from_the_official_image(
    image: str, user: str, ids: tuple[int, int] | None
) -> None:
    from hotmode.orchestrate.k8s_pod import user_ids

    if ids is None:
        with pytest.raises(UsageError, match="numeric uid"):
            user_ids("db", {"image": image, "user": user})
    else:
        assert user_ids("db", {"image": image, "user": user}) == ids
