"""Native `up`/`down`/`switch`/`status`: real processes, real sockets on 127.0.0.1, real git."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from helpers import get_json, git, wait_until
from native_support import Project, pid_alive

pytestmark = pytest.mark.e2e


def test_dev_serves_edits_and_down_leaves_nothing(project: Project) -> None:
    result = project.up("--dev")
    assert result.returncode == 0, result.stderr
    info = get_json(project.port)
    assert info is not None
    assert info["mode"] == "dev"
    assert info["reload"] is True
    assert info["edition"] == "core"
    pid = project.server_pid()

    routes = project.root / "backend" / "app" / "routes.py"
    routes.write_text(routes.read_text().replace('"LinkedIn Gateway"', '"Edited Gateway"'))
    wait_until(lambda: (get_json(project.port) or {}).get("name") == "Edited Gateway", 30)
    assert not list((project.root / "backend").rglob("__pycache__"))

    # status says what runs and, on a line of its own, what a plain `up` would start.
    status = project.hotmode("status", "--native")
    assert status.returncode == 0, status.stderr
    assert "Running now: dev core." in status.stdout
    assert "`hotmode up` would start: prod core (mode from " in status.stdout

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

    status = project.hotmode("status", "--json", "--native")
    rows = json.loads(status.stdout)["modes"]
    running = [row for row in rows if row["running"]]
    assert [(r["mode"], r["edition"]) for r in running] == [("prod", "saas")]
    assert running[0]["running"]["revision"] == head
    assert running[0]["running"]["runner"] == "native"
    assert running[0]["stale"] == ""

    git(project.root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit",
        "-qam", "edit")  # fmt: skip
    rows = json.loads(project.hotmode("status", "--json", "--native").stdout)["modes"]
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


@pytest.mark.parametrize("owner", ["dead", "reused", "copied"])
def test_stale_state_is_reported_then_cleaned_up(project: Project, owner: str) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=10)
    # "reused": the PID is alive, but it is another program (this test run), not the server.
    # "copied": a faithful record of a live process, from another project's folder.
    pid = dead.pid if owner == "dead" else os.getpid()
    folder = "/elsewhere/project" if owner == "copied" else str(project.root)
    state_dir = project.root / ".hotmode"
    state_dir.mkdir(exist_ok=True)
    record = {
        "version": 3, "mode": "prod", "edition": "core", "host": "127.0.0.1",
        "port": project.port, "revision": "x", "mode_source": "--prod",
        "edition_source": "default", "log": "", "started": 0.0, "owner": None,
        "server": {"pid": pid, "start_time": 1, "argv": ["python"], "run_id": "abc",
                   "project": folder},
    }  # fmt: skip
    (state_dir / "state.json").write_text(json.dumps(record))
    status = project.hotmode("status", "--json", "--native")
    assert status.returncode == 0
    assert not any(row["running"] for row in json.loads(status.stdout)["modes"])
    if owner == "copied":
        assert "server belongs to another project folder ('/elsewhere/project')" in status.stderr
    else:
        assert f"the record of prod core is stale: pid {pid}" in status.stderr
    down = project.hotmode("down", "--native")
    assert down.returncode == 0, down.stderr
    assert "nothing was running" in down.stdout
    assert pid_alive(os.getpid())
    assert not (state_dir / "state.json").exists()


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
