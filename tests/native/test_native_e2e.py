"""Native `up`/`down`/`switch`/`status`: real processes, real sockets on 127.0.0.1, real git."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import free_port, get_json, git, run_hotmode, wait_until

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "linkedin-gateway"


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Project:
    """A committed copy of the gateway, and a way to run `hotmode` in it."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port

    def hotmode(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        # No engine: the gateway's database must not start in Docker (tests/companions covers it).
        no_engine = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
        return run_hotmode(self.root, *args, timeout=timeout, env_extra=no_engine)

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.hotmode("up", "--native", "--detach", "--port", str(self.port), *args)
        return result

    def state(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.root / ".hotmode" / "state.json").read_text())
        return data


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "gateway"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns(".hotmode", "logs", "__pycache__", ".env")
    )
    # The app's lifecycle, on its embedded database: PostgreSQL as a process is tests/companions'.
    declaration = root / "hotmode.toml"
    text = declaration.read_text()
    declaration.write_text(text[: text.index("\n[services.postgres.native]")] + "\n")
    git(root, "init", "-q")
    git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "add", "-A")
    git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "init")
    proj = Project(root, free_port())
    yield proj
    result = proj.hotmode("down", "--native")
    if result.returncode != 0:
        print(result.stdout, result.stderr)
    for log in (root / ".hotmode").glob("*.log"):
        print(f"--- {log.name}\n{log.read_text()}")


def test_dev_serves_edits_and_down_leaves_nothing(project: Project) -> None:
    result = project.up("--dev")
    assert result.returncode == 0, result.stderr
    info = get_json(project.port)
    assert info is not None
    assert info["mode"] == "dev"
    assert info["reload"] is True
    assert info["edition"] == "core"
    pid = int(str(project.state()["pid"]))

    routes = project.root / "backend" / "app" / "routes.py"
    routes.write_text(routes.read_text().replace('"LinkedIn Gateway"', '"Edited Gateway"'))
    wait_until(lambda: (get_json(project.port) or {}).get("name") == "Edited Gateway", 30)
    assert not list((project.root / "backend").rglob("__pycache__"))

    down = project.hotmode("down", "--native")
    assert down.returncode == 0, down.stderr
    assert "stopped dev core" in down.stdout
    wait_until(lambda: not pid_alive(pid), 5)
    assert get_json(project.port) is None
    assert not (project.root / ".hotmode" / "state.json").exists()


def test_prod_serves_the_commit_read_only(project: Project) -> None:
    result = project.up("--prod", "--edition", "saas")
    assert result.returncode == 0, result.stderr
    info = get_json(project.port)
    assert info is not None
    head = git(project.root, "rev-parse", "HEAD")
    assert info == {**info, "mode": "prod", "edition": "saas", "reload": False, "revision": head}
    assert head in result.stdout

    snapshot = project.root / ".hotmode" / "snapshots" / head
    for path in [snapshot, *snapshot.rglob("*")]:
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), path

    routes = project.root / "backend" / "app" / "routes.py"
    routes.write_text(routes.read_text().replace('"LinkedIn Gateway"', '"Edited Gateway"'))
    time.sleep(1.0)  # give a (wrong) reloader time to act; nothing should change
    assert (get_json(project.port) or {}).get("name") == "LinkedIn Gateway"

    status = project.hotmode("status", "--json")
    rows = json.loads(status.stdout)["modes"]
    running = [row for row in rows if row["running"]]
    assert [(r["mode"], r["edition"]) for r in running] == [("prod", "saas")]
    assert running[0]["running"]["revision"] == head
    assert running[0]["running"]["runner"] == "native"
    assert running[0]["stale"] == ""

    git(project.root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit",
        "-qam", "edit")  # fmt: skip
    rows = json.loads(project.hotmode("status", "--json").stdout)["modes"]
    assert [row["stale"] for row in rows if row["running"]] == ["HEAD moved"]
    assert (get_json(project.port) or {}).get("revision") == head


def test_second_up_refuses_and_names_the_first(project: Project) -> None:
    assert project.up("--prod").returncode == 0
    second = project.up("--dev")
    assert second.returncode == 1
    assert "prod core is already running" in second.stderr
    assert "hotmode down" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1


def test_port_held_by_another_process_is_named(project: Project) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, time\n"
            f"s = socket.socket(); s.bind(('127.0.0.1', {project.port})); s.listen()\n"
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        result = project.up("--dev")
        assert result.returncode == 1
        assert f"pid {holder.pid}" in result.stderr
        assert not (project.root / ".hotmode" / "state.json").exists()
    finally:
        holder.kill()
        holder.communicate(timeout=5)


@pytest.mark.parametrize("owner", ["dead", "reused"])
def test_stale_state_is_cleaned_up(project: Project, owner: str) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=10)
    # "reused": the PID is alive, but it is another program (this test run), not the server.
    pid = dead.pid if owner == "dead" else os.getpid()
    state_dir = project.root / ".hotmode"
    state_dir.mkdir(exist_ok=True)
    record = {
        "mode": "prod", "edition": "core", "pid": pid, "host": "127.0.0.1",
        "port": project.port, "revision": "x", "mode_source": "--prod",
        "edition_source": "default", "log": "", "started": 0.0, "command": [],
    }  # fmt: skip
    (state_dir / "state.json").write_text(json.dumps(record))
    status = project.hotmode("status", "--json")
    assert status.returncode == 0
    assert not any(row["running"] for row in json.loads(status.stdout)["modes"])
    assert not (state_dir / "state.json").exists()


def test_foreground_up_stops_cleanly_on_sigterm(project: Project) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTMODE_", "HOT_RELOAD"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "hotmode", "up", "--native", "--prod", "--port", str(project.port)],
        cwd=project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: get_json(project.port, "/health"), 30)
        server = int(str(project.state()["pid"]))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 143
        assert not pid_alive(server)
        assert not (project.root / ".hotmode" / "state.json").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def test_switch_from_prod_to_dev(project: Project) -> None:
    assert project.up("--prod").returncode == 0
    switched = project.hotmode("switch", "--native", "--dev", "--port", str(project.port))
    assert switched.returncode == 0, switched.stderr
    assert "stopped prod core" in switched.stdout
    assert (get_json(project.port) or {}).get("mode") == "dev"


def test_prod_outside_git_needs_allow_uncommitted(project: Project) -> None:
    shutil.rmtree(project.root / ".git")
    refused = project.up("--prod")
    assert refused.returncode == 2
    assert "--allow-uncommitted" in refused.stderr
    allowed = project.up("--prod", "--allow-uncommitted")
    assert allowed.returncode == 0, allowed.stderr
    assert (get_json(project.port) or {}).get("revision") == "uncommitted"
