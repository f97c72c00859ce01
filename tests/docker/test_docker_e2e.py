"""The gateway on a real Docker engine: prod is the commit, dev serves host edits, switch rolls
back, one mode at a time, and down leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from docker_support import FAILING_HEALTH, Gateway, require_engine
from helpers import get_json, git, run_hotmode, wait_until
from hotmode.compose import docker
from hotmode.errors import StateError, UsageError
from hotmode.modes import Selection

# Generous: the first test builds the base and app images when the cache is cold.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

require_engine()
EDITED = 'GREETING = "edited on the host"'


NEVER_HEALTHY = """\
services:
  backend:
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      retries: 1000
      start_period: 0s
"""


def selection(mode: str, edition: str = "core") -> Selection:
    return Selection(mode, edition, "test", "test")


def edit_greeting(deployed: Gateway) -> None:
    routes = deployed.backend / "app" / "routes.py"
    routes.write_text(routes.read_text().replace('GREETING = "LinkedIn Gateway"', EDITED))


@pytest.mark.parametrize("edition", ["core", "saas"])
def test_prod_serves_the_commit_read_only(deployed: Gateway, edition: str) -> None:
    head = git(deployed.root, "rev-parse", "HEAD")
    running = docker.up(deployed.config, selection("prod", edition))
    assert (running.mode, running.edition, running.revision) == ("prod", edition, head)
    info = get_json(deployed.port)
    assert info is not None
    assert (info["edition"], info["mode"], info["revision"]) == (edition, "prod", head)

    # The app's user may not write its code, and even root may not write where it owns: the
    # root filesystem is read-only.
    assert deployed.exec("touch", "/app/main.py").returncode != 0
    as_root = deployed.exec("--user", "0", "touch", "/etc/hotmode-probe")
    assert "Read-only file system" in as_root.stderr

    edit_greeting(deployed)
    assert get_json(deployed.port) == info
    assert EDITED not in deployed.exec("cat", "/app/app/routes.py").stdout

    verified = run_hotmode(deployed.root, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"serves {head}" in verified.stdout

    new_head = deployed.commit("a new greeting")
    drift = run_hotmode(deployed.root, "verify")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    assert f"is not HEAD {new_head}" in drift.stdout
    assert "source digest" in drift.stdout
    assert "files in the container differ from HEAD: app/routes.py" in drift.stdout

    assert list(docker.down(deployed.config)) == [running.project]
    assert docker.running(deployed.config) is None


def test_prod_refuses_a_dirty_tree_and_verify_needs_a_container(deployed: Gateway) -> None:
    edit_greeting(deployed)
    with pytest.raises(UsageError, match=r"uncommitted changes \(backend/app/routes.py, "):
        docker.up(deployed.config, selection("prod"))
    assert docker.running(deployed.config) is None
    nothing = run_hotmode(deployed.root, "verify")
    assert nothing.returncode == 1
    assert "- no container of linkedin-gateway is running" in nothing.stdout


def test_up_names_the_process_holding_the_port(deployed: Gateway) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", deployed.port))
        holder.listen()
        with pytest.raises(StateError, match=f"port {deployed.port} is held by pid {os.getpid()}"):
            docker.up(deployed.config, selection("prod"))
    assert docker.running(deployed.config) is None


@pytest.mark.parametrize("edition", ["core", "saas"])
def test_dev_serves_host_edits_and_leaves_the_tree_clean(deployed: Gateway, edition: str) -> None:
    running = docker.up(deployed.config, selection("dev", edition))
    assert (running.mode, running.edition) == ("dev", edition)
    info = get_json(deployed.port)
    assert info is not None
    assert (info["edition"], info["mode"], info["reload"]) == (edition, "dev", True)

    edit_greeting(deployed)
    wait_until(lambda: (get_json(deployed.port) or {}).get("name") == "edited on the host", 15)
    # The learned module list lands in the cache volume, for a warm zygote at the next start.
    wait_until(lambda: "hotmode-" in deployed.exec("ls", "/var/cache/hotmode/pycache").stdout, 15)

    if edition == "core":
        # A requirements change rebuilds the dev image: nothing is installed at start.
        before = docker.inspect_one(running.container)["Image"]
        requirements = deployed.backend / "requirements" / "base.txt"
        requirements.write_text(requirements.read_text() + "# changed\n")
        rebuilt = docker.up(deployed.config, selection("dev", edition))
        assert docker.inspect_one(rebuilt.container)["Image"] != before

    docker.down(deployed.config)
    tree = [deployed.backend, *deployed.backend.rglob("*")]
    assert [p for p in tree if p.lstat().st_uid == 0] == []
    assert [p for p in tree if p.name == "__pycache__"] == []


def test_switch_refuses_a_second_mode_and_rolls_back(deployed: Gateway, tmp_path: Path) -> None:
    prod = docker.up(deployed.config, selection("prod"))

    with pytest.raises(StateError, match=f"prod core \\(container {prod.container}, port"):
        docker.up(deployed.config, selection("dev"))

    failing = tmp_path / "failing.yml"
    failing.write_text(FAILING_HEALTH)
    with pytest.raises(StateError, match=r"dev core did not become healthy.*rolled back"):
        docker.switch(deployed.config, selection("dev"), overlays=(failing,))
    back = docker.running_all(deployed.config)
    assert [(r.project, r.container) for r in back] == [(prod.project, prod.container)]
    assert (get_json(deployed.port) or {}).get("mode") == "prod"

    to_dev = docker.switch(deployed.config, selection("dev"))
    assert to_dev.previous is not None
    assert (to_dev.previous.mode, to_dev.current.mode) == ("prod", "dev")
    assert (get_json(deployed.port) or {}).get("mode") == "dev"
    to_prod = docker.switch(deployed.config, selection("prod"))
    assert to_prod.current.mode == "prod"
    assert (get_json(deployed.port) or {}).get("mode") == "prod"
    assert list(docker.down(deployed.config)) == [to_prod.current.project]


def test_the_cli_runs_a_mode_in_docker_and_says_which(deployed: Gateway) -> None:
    # With an engine reachable, `up` uses Docker; status, logs and down follow it there.
    up = run_hotmode(deployed.root, "up", "--dev", "--edition", "saas")
    assert up.returncode == 0, up.stderr
    assert "dev saas (container linkedin-gateway-dev-saas" in up.stdout
    assert "is up in Docker" in up.stdout
    assert (get_json(deployed.port) or {}).get("edition") == "saas"

    status = run_hotmode(deployed.root, "status", "--json")
    assert status.returncode == 0, status.stderr
    rows = [row for row in json.loads(status.stdout)["modes"] if row["running"]]
    assert [(row["mode"], row["edition"]) for row in rows] == [("dev", "saas")]
    assert rows[0]["running"]["runner"] == "docker"
    assert rows[0]["stale"] == ""
    text = run_hotmode(deployed.root, "status")
    assert "container linkedin-gateway-dev-saas" in text.stdout

    logs = run_hotmode(deployed.root, "logs", "--no-follow")
    assert logs.returncode == 0, logs.stderr
    assert "hotmode: serving main:app" in logs.stdout + logs.stderr

    down = run_hotmode(deployed.root, "down")
    assert down.returncode == 0, down.stderr
    # Every container it stopped is named, the app's own among them.
    stopped = re.search(r"stopped linkedin-gateway-dev-saas in Docker \(containers ([^)]*)\)",
                        down.stdout)  # fmt: skip
    assert stopped is not None and "linkedin-gateway-dev-saas" in stopped.group(1), down.stdout
    assert docker.running(deployed.config) is None
    after = json.loads(run_hotmode(deployed.root, "status", "--json").stdout)["modes"]
    assert not any(row["running"] for row in after)


def test_ctrl_c_during_a_docker_switch_brings_the_old_container_back(
    deployed: Gateway, tmp_path: Path
) -> None:
    prod = docker.up(deployed.config, selection("prod"))
    waiting = tmp_path / "never-healthy.yml"
    waiting.write_text(NEVER_HEALTHY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTMODE_", "HOT_RELOAD"))}
    switching = subprocess.Popen(
        [sys.executable, "-m", "hotmode", "switch", "--dev", "--overlay", str(waiting)],
        cwd=deployed.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Interrupt once the dev container runs (and waits for a health that never comes).
        wait_until(lambda: any(r.mode == "dev" for r in docker.running_all(deployed.config)), 300)
        switching.send_signal(signal.SIGINT)
        _, err = switching.communicate(timeout=120)
    finally:
        if switching.poll() is None:
            switching.kill()
            switching.communicate()
    assert switching.returncode == 130, err
    assert f"interrupted; rolled back: prod core (container {prod.container}" in err
    back = docker.running_all(deployed.config)
    assert [(r.project, r.container) for r in back] == [(prod.project, prod.container)]
    assert (get_json(deployed.port) or {}).get("mode") == "prod"
