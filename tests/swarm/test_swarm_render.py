"""`render --swarm` and `check --swarm`: nothing Swarm would lose is lost in silence.

Pure tests of the translation (a merged prod configuration in, the stack file out), the Swarm
rules one by one, the task-spec checks of `verify --swarm`, and the command on the gateway.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import RunCli
from helpers import commit, git
from hotmode.compose.prod import EnvFile, ProdConfig
from hotmode.errors import UsageError
from hotmode.orchestrate.swarm import monitor_seconds, stack_document
from hotmode.orchestrate.swarm_audit import stack_findings
from hotmode.orchestrate.swarm_verify import task_problems


def _service(**changes: Any) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": "shop:prod",
        "build": {"context": "/src"},
        "container_name": "shop",
        "user": "10001:10001",
        "read_only": True,
        "tmpfs": ["/tmp"],
        "security_opt": ["no-new-privileges:true"],
        "cap_drop": ["ALL"],
        "restart": "unless-stopped",
        "command": ["uvicorn", "shop:app"],
        "ports": [{"target": 8000, "published": "8000", "host_ip": "127.0.0.1"}],
        "healthcheck": {"test": ["CMD", "true"], "interval": "2s", "start_period": "10s"},
        "deploy": {"resources": {"limits": {"cpus": 1, "memory": "536870912"}}},
    }
    service.update(changes)
    return {k: v for k, v in service.items() if v is not None}


def _stack(
    service: dict[str, Any], *, host: bool = True, env_files: tuple[EnvFile, ...] = ()
) -> tuple[dict[str, Any], list[str]]:
    prod = ProdConfig("core", "shop", (), {"services": {"web": service}}, {"web": env_files})
    stack = stack_document(
        prod, stack="st", revision="abc123", host_network=host, deployment=Path("/nowhere")
    )
    return stack.document, stack.notes


def test_what_swarm_drops_is_translated_and_said() -> None:
    document, notes = _stack(_service())
    web = document["services"]["web"]
    assert web["image"] == "shop:abc123"
    assert {"type": "tmpfs", "target": "/tmp"} in web["volumes"]
    for dropped in ("tmpfs", "container_name", "restart", "security_opt", "build", "ports"):
        assert dropped not in web
    assert web["networks"] == ["hostnet"]
    assert document["networks"] == {"hostnet": {"external": True, "name": "host"}}
    deploy = web["deploy"]
    assert deploy["restart_policy"]["condition"] == "any"
    update = deploy["update_config"]
    assert update["failure_action"] == "rollback" and update["order"] == "stop-first"
    # 10 s start period + 2 s x (3 retries + 1) + 5 s margin.
    assert update["monitor"] == "23s" == f"{monitor_seconds(web)}s"
    assert deploy["rollback_config"]["order"] == "stop-first"
    assert deploy["resources"] == {"limits": {"cpus": "1", "memory": "536870912"}}
    assert deploy["labels"] == {"org.opencontainers.image.revision": "abc123"}
    text = " ".join(notes)
    assert "no-new-privileges has no per-service form on Swarm" in text
    assert "daemon.json" in text and "container_name: dropped" in text


def test_ingress_publishes_on_every_interface_so_one_address_is_refused() -> None:
    with pytest.raises(UsageError, match=r"services\.web\.ports\.0 binds 127\.0\.0\.1"):
        _stack(_service(), host=False)
    document, _ = _stack(_service(ports=[{"target": 8000, "published": "8000"}]), host=False)
    web = document["services"]["web"]
    assert web["ports"] == [{"target": 8000, "protocol": "tcp", "mode": "ingress",
                             "published": 8000}]  # fmt: skip
    assert web["deploy"]["update_config"]["order"] == "start-first"
    assert "networks" not in document


def test_extension_keys_are_kept_for_check() -> None:
    document, _ = _stack(_service(**{"x-hotmode-waivers": {"CL-0019": "why"}}))
    assert document["services"]["web"]["x-hotmode-waivers"] == {"CL-0019": "why"}


def test_network_mode_host_becomes_the_host_network() -> None:
    document, notes = _stack(_service(network_mode="host"), host=False)
    assert document["services"]["web"]["networks"] == ["hostnet"]
    assert any("network_mode: host" in note for note in notes)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"privileged": True}, "services.web.privileged"),
        ({"devices": ["/dev/x"]}, "services.web.devices"),
        ({"security_opt": ["seccomp:unconfined"]}, "services.web.security_opt"),
        ({"network_mode": "bridge"}, "services.web.network_mode"),
        ({"image": None}, "services.web.image"),
        ({"volumes": [{"type": "npipe", "source": "x", "target": "/x"}]}, "services.web.volumes.0"),
    ],
)
def test_what_swarm_cannot_carry_is_refused_by_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(UsageError, match=key.replace(".", r"\.")):
        _stack(_service(**changes))


def test_env_files_stay_references(tmp_path: Path) -> None:
    (tmp_path / ".env.prod").write_text("SHOP_TOKEN=not-in-the-stack-file\n")
    prod = ProdConfig(
        "core", "shop", (), {"services": {"web": _service()}},
        {"web": (EnvFile(".env.prod", True), EnvFile(".env.optional", False))},
    )  # fmt: skip
    stack = stack_document(prod, stack="st", revision="abc", host_network=True, deployment=tmp_path)
    assert stack.document["services"]["web"]["env_file"] == [str(tmp_path / ".env.prod")]
    assert "not-in-the-stack-file" not in yaml.safe_dump(stack.document)
    assert any(".env.optional is optional and absent" in note for note in stack.notes)
    missing = ProdConfig(
        "core", "shop", (), {"services": {"web": _service()}}, {"web": (EnvFile(".env.x", True),)}
    )
    with pytest.raises(UsageError, match=r"\.env\.x does not exist"):
        stack_document(missing, stack="st", revision="abc", host_network=True, deployment=tmp_path)


def _rules(tmp_path: Path, service: dict[str, Any], extra: str = "") -> set[str]:
    path = tmp_path / "docker-stack.yml"
    path.write_text(yaml.safe_dump({"services": {"web": service}}) + extra)
    return {finding.rule_id for finding in stack_findings(path, "swarm")}


def test_the_rendered_stack_file_only_says_no_new_privileges(tmp_path: Path) -> None:
    document, _ = _stack(_service())
    assert _rules(tmp_path, document["services"]["web"]) == {"HM-S01"}


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (lambda s: s.update(tmpfs=["/tmp"]), "HM-S02"),
        (lambda s: s.update(restart="always"), "HM-S03"),
        (lambda s: s["deploy"]["update_config"].update(failure_action="pause"), "HM-S04"),
        (lambda s: s["deploy"]["update_config"].update(monitor="5s"), "HM-S04"),
        (lambda s: s.pop("healthcheck"), "HM-S04"),
        (lambda s: s.update(image="shop:latest"), "HM-S05"),
        (lambda s: s.update(user="${APP_UID}"), "HM-S06"),
        (lambda s: s.update(ports=["127.0.0.1:80:80"]), "HM-S08"),
    ],
)
def test_each_swarm_rule_finds_its_loss(tmp_path: Path, change: Any, rule: str) -> None:
    document, _ = _stack(_service())
    service = document["services"]["web"]
    change(service)
    assert _rules(tmp_path, service) == {"HM-S01", rule}


SPEC = {
    "Image": "shop:abc@sha256:0",
    "User": "10001:10001",
    "ReadOnly": True,
    "CapabilityDrop": ["ALL"],
    "Args": ["uvicorn", "shop:app"],
    "Mounts": [
        {"Type": "tmpfs", "Target": "/tmp"},
        {"Type": "volume", "Source": "logs", "Target": "/app/logs"},
        {"Type": "bind", "Source": "/srv/.env", "Target": "/app/.env", "ReadOnly": True},
    ],
}
LABELS = {"org.opencontainers.image.revision": "abc", "hotmode.source-digest": "git-tree:1"}


def test_a_hardened_task_of_head_has_no_problems() -> None:
    assert task_problems(SPEC, LABELS, "abc", "git-tree:1") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"ReadOnly": False}, "root filesystem is writable"),
        ({"User": "0"}, "runs as root"),
        ({"CapabilityDrop": []}, "default capabilities"),
        ({"Args": ["uvicorn", "--reload"]}, "reloads"),
        ({"Mounts": []}, "no tmpfs at /tmp"),
        ({"Mounts": [*SPEC["Mounts"], {"Type": "bind", "Source": "/src", "Target": "/app"}]},
         "over the code"),
    ],
)  # fmt: skip
def test_each_task_problem(change: dict[str, Any], expected: str) -> None:
    problems = task_problems({**SPEC, **change}, LABELS, "abc", "git-tree:1")
    assert len(problems) == 1 and expected in problems[0]


def test_a_task_of_another_revision() -> None:
    problems = task_problems(SPEC, LABELS, "def", "git-tree:2")
    assert problems == [
        "image revision abc is not HEAD def",
        "image source digest git-tree:1 is not the committed source's git-tree:2",
    ]


def test_render_swarm_resolves_the_deployment_env(gateway: Path, run_cli: RunCli) -> None:
    (gateway / "deployment" / ".env").write_text("PORT=7999\nHOTMODE_BIND=0.0.0.0\n")
    git(gateway, "init", "-q")
    head = commit(gateway, "the gateway")
    code, _, err = run_cli("render", "--swarm", cwd=gateway)
    assert code == 0, err
    path = gateway / "deployment" / "docker-stack.yml"
    text = path.read_text()
    assert "${" not in text and "'7999'" in text and f"linkedin-gateway:{head}" in text
    document = yaml.safe_load(text)
    assert document["services"]["backend"]["ports"][0]["published"] == 7999
    # Published through ingress on every interface: the expected shape, so check passes.
    code, out, _ = run_cli("check", "--swarm", "--show-waived", cwd=gateway)
    assert code == 0, out
    assert "CL-0005" in out and "ingress publishes on every interface" in out
    (gateway / "deployment" / ".env").write_text("PORT=7999\n")
    code, _, err = run_cli("render", "--swarm", cwd=gateway)
    assert code == 2 and "services.backend.ports.0 binds 127.0.0.1" in err
    code, _, err = run_cli("render", "--swarm", "--host-network", cwd=gateway)
    assert code == 0, err
    if shutil.which("docker"):
        # Docker's own loader (client side, no engine) takes the file as it is.
        assert "type: tmpfs" in _loaded(path)
    code, out, _ = run_cli("check", "--swarm", cwd=gateway)
    assert code == 0, out
    assert "HM-S01" in out
    text = path.read_text()
    path.write_text(text.replace("read_only: true", "read_only: false"))
    code, out, _ = run_cli("check", "--swarm", cwd=gateway)
    assert code == 1 and "HM-S07" in out and "HM-P04" in out
    code, _, err = run_cli("render", "--swarm", "--host-network", cwd=gateway)
    assert code == 1 and "kept hand-edited" in err


def test_deploy_needs_an_engine_flag(gateway: Path, run_cli: RunCli) -> None:
    code, _, err = run_cli("deploy", cwd=gateway)
    assert code == 2 and "--swarm" in err


def test_a_declared_job_is_a_replicated_job_of_the_apps_image(
    gateway: Path, run_cli: RunCli
) -> None:
    toml = gateway / "hotmode.toml"
    toml.write_text(toml.read_text() + '\n[jobs.migrate]\ncommand = ["python", "-m", "migrate"]\n')
    assert run_cli("render", cwd=gateway)[0] == 0
    (gateway / "deployment" / ".env").write_text("PORT=7999\n")
    git(gateway, "init", "-q")
    head = commit(gateway, "the gateway, with a migration")
    code, _, err = run_cli("render", "--swarm", "--host-network", cwd=gateway)
    assert code == 0, err
    path = gateway / "deployment" / "docker-stack.yml"
    document = yaml.safe_load(path.read_text())
    job = document["services"]["migrate"]
    assert job["image"] == document["services"]["backend"]["image"] == f"linkedin-gateway:{head}"
    assert job["deploy"]["mode"] == "replicated-job" and job["deploy"]["replicas"] == 1
    assert job["deploy"]["restart_policy"] == {"condition": "none"}
    assert "update_config" not in job["deploy"] and "placement" not in job["deploy"]
    assert "pull_policy" not in job and "healthcheck" not in job
    assert "migrate: keeps its data" not in path.read_text()
    code, out, _ = run_cli("check", "--swarm", cwd=gateway)
    assert code == 0, out
    if shutil.which("docker"):
        assert "mode: replicated-job" in _loaded(path)


def _loaded(path: Path) -> str:
    """The stack file as Docker's own loader (client side, no engine) reads it."""
    loaded = subprocess.run(
        ["docker", "stack", "config", "--compose-file", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    return loaded.stdout
