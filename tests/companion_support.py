"""The native companion tests' fixture: a committed copy of the gateway, its PostgreSQL run as a
local process (no Docker engine: DOCKER_HOST names no socket), in a folder the `postgres` user
can reach. A plugin module, not tests/companions/conftest.py: tests import the top conftest by
name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import add_key, commit, free_port, get_json, git, scrubbed_env

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "linkedin-gateway"

HAS_POSTGRES = bool(shutil.which("initdb", path="/usr/lib/postgresql/15/bin:/usr/local/bin"))
# CI installs it (Makefile): there, a missing PostgreSQL fails instead of skipping.
needs_postgres = pytest.mark.skipif(
    not HAS_POSTGRES and os.environ.get("CI") != "true",
    reason="Debian's postgresql package is not installed",
)
NATIVE = "\n[services.postgres.native]\n"


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()

    def hotmode(
        self, *args: str, path: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        # No engine: the companion runs as a process, or embedded, never in Docker here.
        given = scrubbed_env(("HOTMODE_", "HOT_RELOAD", "DOCKER_"))
        given["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
        if path is not None:
            given["PATH"] = path
        given.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "hotmode", *args], cwd=self.root, env=given,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.hotmode("up", "--native", "--detach", "--port", str(self.port), *args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def app_service(self) -> str:
        from hotmode.config import load_config

        return load_config(self.root / "hotmode.toml").service

    def keys(self) -> list[str]:
        document = get_json(self.port, "/api/v1/api-keys") or {}
        return [str(k["name"]) for k in document["keys"]]  # type: ignore[union-attr]

    def add_key(self, name: str) -> None:
        add_key(self.port, name)


@pytest.fixture
def pg_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    # postgres runs as the unprivileged `postgres` user, which must reach the data folder:
    # pytest's own temporary folders are private to their owner.
    base = Path(os.environ.get("TMPDIR", "/tmp"))
    root = Path(subprocess.check_output(["mktemp", "-d", str(base / "hotmode-native.XXXXXX")],
                                        text=True).strip()) / "gateway"  # fmt: skip
    root.parent.chmod(0o755)
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns(".hotmode", "logs", "__pycache__", ".env")
    )
    git(root, "init", "-q")
    commit(root, "the gateway")
    proj = Project(root)
    yield proj
    down = proj.hotmode("down", "--native")
    for log in (root / ".hotmode").glob("*.log"):
        print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
    shutil.rmtree(root.parent, ignore_errors=True)
    assert down.returncode == 0, down.stderr


def postgres_pids(root: Path) -> set[int]:
    """PostgreSQL servers on a data folder of the project at `root` (others' are not counted:
    other suites on this machine run their own)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = stat.read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv[0].endswith(b"postgres")
            and b"-D" in argv
            and str(root).encode() in b" ".join(argv)
        ):
            found.add(int(stat.parent.name))
    return found
