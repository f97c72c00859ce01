"""SIGKILL of a first `up` and of `switch` at several points, with a real PostgreSQL run as a local
process: `down` leaves nothing of the project running, the next `up` serves, and the data written
before is intact. An `initdb` cut short heals on the next `up`; `status` says a dead database is
dead. Real processes and sockets on 127.0.0.1; no Docker engine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from companion_support import Project, needs_postgres
from helpers import get_json, scrubbed_env, wait_until
from hotmode import procs

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    needs_postgres,
]


def marked(root: Path) -> list[tuple[int, tuple[str, ...]]]:
    """Every process whose environment carries this project's marker: servers, databases,
    their children, an `initdb` and its bootstrap backend."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        environ = procs.read_environ(pid)
        if environ and environ.get(procs.PROJECT_VARIABLE) == str(root):
            stat = procs.read_stat(pid)
            if procs.alive(stat):
                found.append((pid, procs.read_argv(pid) or ()))
    return found


def running(root: Path, program: str, mode: str = "") -> bool:
    """A marked `program` runs (on `mode`'s data folder, if given)."""
    return any(
        argv and Path(argv[0]).name == program and mode in " ".join(argv)
        for _, argv in marked(root)
    )


def start(project: Project, *args: str) -> subprocess.Popen[bytes]:
    env = scrubbed_env(("HOTMODE_", "HOT_RELOAD", "DOCKER_"))
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    return subprocess.Popen(
        [sys.executable, "-m", "hotmode", *args, "--native", "--port", str(project.port)],
        cwd=project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_when(process: subprocess.Popen[bytes], point: Callable[[], bool]) -> None:
    """SIGKILL `process` (hotmode itself, not what it started) once `point` holds."""
    try:
        wait_until(lambda: point() or process.poll() is not None, 90)
        assert process.poll() is None, "the command finished before the point was reached"
    finally:
        process.kill()
        process.wait(timeout=10)


def down_leaves_nothing(project: Project) -> str:
    down = project.hotmode("down", "--native")
    assert down.returncode == 0, down.stderr
    wait_until(lambda: not marked(project.root), 15)
    return down.stdout


FIRST_UP_POINTS: dict[str, Callable[[Path], bool]] = {
    # initdb under way, its data folder already written to.
    "initdb": lambda root: (
        running(root, "initdb")
        and (root / ".hotmode" / "data" / "dev-core" / "postgres" / "PG_VERSION").exists()
    ),
    "postgres": lambda root: running(root, "postgres"),
    "app": lambda root: (root / ".hotmode" / "state.json").exists(),
}


@pytest.mark.parametrize("point", FIRST_UP_POINTS)
def test_a_first_up_killed_at_any_point_heals(pg_project: Project, point: str) -> None:
    project = pg_project
    up = start(project, "up", "--detach", "--dev")
    kill_when(up, lambda: FIRST_UP_POINTS[point](project.root))
    if point == "initdb":
        # As if the machine lost power: initdb dies too, its data folder half-written.
        # One may end between the listing and its kill (initdb's backend, when initdb dies).
        for pid, _ in marked(project.root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    stopped = down_leaves_nothing(project)
    if point != "initdb":
        assert "hotmode: stopped postgres (pid " in stopped, stopped

    again = project.up("--dev")
    data = project.root / ".hotmode" / "data" / "dev-core"
    if point == "initdb":
        # Moved aside, never deleted, and said.
        assert "was left half-initialised by an interrupted start" in again.stdout, again.stdout
        assert [p.name for p in data.iterdir() if p.name.startswith("postgres.interrupted-")]
    info = get_json(project.port)
    assert info is not None and info["database"] == {"backend": "postgresql", "reachable": True}
    project.add_key("after the interruption")
    assert project.keys() == ["after the interruption"]


SWITCH_POINTS: dict[str, Callable[[Path], bool]] = {
    "postgres": lambda root: running(root, "postgres", "prod-core"),
    "app": lambda root: '"mode": "prod"' in _text(root / ".hotmode" / "state.json"),
}


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@pytest.mark.parametrize("point", SWITCH_POINTS)
def test_a_switch_killed_at_any_point_leaves_nothing_and_keeps_the_data(
    pg_project: Project, point: str
) -> None:
    project = pg_project
    project.up("--dev")
    project.add_key("written in dev")
    switching = start(project, "switch", "--prod")
    kill_when(switching, lambda: SWITCH_POINTS[point](project.root))
    stopped = down_leaves_nothing(project)
    assert "hotmode: stopped postgres (pid " in stopped, stopped

    project.up("--dev")
    assert project.keys() == ["written in dev"]

    # The database dies under the app: status says so instead of listing a dead PID.
    record = json.loads((project.root / ".hotmode" / "companions.json").read_text())
    postmaster = record["companions"][0]["process"]["pid"]
    os.kill(postmaster, signal.SIGKILL)
    wait_until(lambda: not procs.alive(procs.read_stat(postmaster)), 10)
    status = project.hotmode("status", "--json", "--native")
    services = [
        r["running"]["services"] for r in json.loads(status.stdout)["modes"] if r["running"]
    ]
    assert [s["running"] for s in services[0]] == [False]
    assert services[0][0]["detail"].startswith("stopped unexpectedly (pid ")
    down = project.hotmode("down", "--native")
    assert f"postgres had stopped unexpectedly (pid {postmaster})" in down.stderr
