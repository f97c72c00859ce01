"""The native lifecycle tests' fixture: a committed copy of the gateway on a port of its own.

A plugin module, not tests/native/conftest.py: tests import the top conftest by name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from helpers import commit, free_port, git, run_hotmode
from hotmode import procs

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "linkedin-gateway"


def pid_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class Project:
    """A committed copy of the gateway, and a way to run `hotmode` in it."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port

    def hotmode(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return run_hotmode(self.root, *args, timeout=timeout)

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.hotmode("up", "--native", "--detach", "--port", str(self.port), *args)
        return result

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / ".hotmode" / "state.json").read_text())
        return data

    def server_pid(self) -> int:
        return int(self.state()["server"]["pid"])

    def commit(self, message: str) -> str:
        return commit(self.root, message)

    def edit(self, old: str, new: str) -> None:
        """Replace text in the gateway's routes."""
        routes = self.root / "backend" / "app" / "routes.py"
        routes.write_text(routes.read_text().replace(old, new))


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "gateway"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns(".hotmode", "logs", "__pycache__", ".env")
    )
    # The app's lifecycle alone: its database (Docker, a process, embedded) is tests/companions'
    # and tests/docker's. Undeclared, the gateway keeps its own SQLite beside the copy.
    declaration = root / "hotmode.toml"
    text = declaration.read_text()
    declaration.write_text(text[: text.index("\n[services.postgres]")] + "\n")
    (root / "deployment" / ".env").write_text(f"GATEWAY_DATA_DIR={tmp_path / 'gateway-db'}\n")
    git(root, "init", "-q")
    commit(root, "init")
    proj = Project(root, free_port())
    yield proj
    result = proj.hotmode("down", "--native")
    if result.returncode != 0:
        print(result.stdout, result.stderr)
    for log in (root / ".hotmode" / "runs").glob("*.log"):
        print(f"--- {log.name}\n{log.read_text()}")
    # Nothing this project started outlives `down`: no server, recorded or not.
    left = procs.find_marked(root)
    for server in left:
        procs.stop(server, 5, own_session=True)
    assert not left, f"processes left running after down: {left}"
