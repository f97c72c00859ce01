"""`up --native` with the gateway's PostgreSQL: a real local postgres process, its data kept per
mode across down/up and switch, the embedded SQLite when no PostgreSQL can run, and the error when
nothing can. Real processes and sockets on 127.0.0.1; no Docker engine (DOCKER_HOST unset)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import EXAMPLE
from helpers import commit, free_port, get_json, git

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

HAS_POSTGRES = bool(shutil.which("initdb", path="/usr/lib/postgresql/15/bin:/usr/local/bin"))
NATIVE = "\n[services.postgres.native]\n"


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()

    def hotmode(self, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
        # No engine: the companion runs as a process, or embedded, never in Docker here.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HOTMODE_", "HOT_RELOAD", "DOCKER_"))}  # fmt: skip
        env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
        if path is not None:
            env["PATH"] = path
        return subprocess.run(
            [sys.executable, "-m", "hotmode", *args], cwd=self.root, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.hotmode("up", "--native", "--detach", "--port", str(self.port), *args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def keys(self) -> list[str]:
        document = get_json(self.port, "/api/v1/api-keys") or {}
        return [str(k["name"]) for k in document["keys"]]  # type: ignore[union-attr]

    def add_key(self, name: str) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/api-keys", method="POST",
            data=json.dumps({"name": name}).encode(), headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1
            assert response.status == 201


@pytest.fixture
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
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


def postgres_pids() -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = stat.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"postgres") and b"-D" in argv:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.skipif(not HAS_POSTGRES and os.environ.get("CI") != "true",
                    reason="Debian's postgresql package is not installed")  # fmt: skip
def test_postgres_runs_as_a_process_and_keeps_each_modes_data(project: Project) -> None:
    before = postgres_pids()
    up = project.up("--dev")
    assert "hotmode: postgres pid " in up.stdout
    assert f"{project.root / '.hotmode' / 'data' / 'dev-core' / 'postgres'}" in up.stdout
    info = get_json(project.port)
    assert info is not None and info["database"] == {"backend": "postgresql", "reachable": True}
    project.add_key("written in dev")
    data = project.root / ".hotmode" / "data" / "dev-core" / "postgres"
    if os.getuid() == 0:
        assert data.stat().st_uid != 0  # postgres refuses root; it runs as its own user

    # down stops the database too, and keeps its data; up finds the row again.
    assert project.hotmode("down", "--native").returncode == 0
    assert postgres_pids() == before
    project.up("--dev")
    assert project.keys() == ["written in dev"]

    # prod has its own data: it never sees the dev row; back in dev, the row is there.
    switched = project.hotmode("switch", "--prod", "--native", "--port", str(project.port))
    assert switched.returncode == 0, switched.stderr
    assert (get_json(project.port) or {}).get("mode") == "prod"
    assert project.keys() == []
    back = project.hotmode("switch", "--dev", "--native", "--port", str(project.port))
    assert back.returncode == 0, back.stderr
    assert project.keys() == ["written in dev"]

    # Only --volumes deletes data, naming it; without a terminal it needs --yes.
    assert project.hotmode("down", "--native").returncode == 0
    refused = project.hotmode("down", "--native", "--volumes")
    assert refused.returncode == 2 and data.is_dir()
    assert "confirm with --yes" in refused.stderr
    deleted = project.hotmode("down", "--native", "--volumes", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert f"folder {data}" in deleted.stdout
    assert not data.exists()


def test_without_postgres_the_declared_embedded_sqlite_is_used_and_said(project: Project) -> None:
    declaration = project.root / "hotmode.toml"
    text = declaration.read_text()
    declaration.write_text(text[: text.index(NATIVE)])  # no native command declared
    commit(project.root, "no native postgres")

    up = project.up("--dev")

    said = [line for line in up.stdout.splitlines() if "embedded default" in line]
    assert len(said) == 1 and said[0].startswith("hotmode: postgres: no Docker engine"), up.stdout
    info = get_json(project.port)
    assert info is not None and info["database"] == {"backend": "sqlite", "reachable": True}
    project.add_key("embedded")
    assert project.keys() == ["embedded"]
    assert (
        project.root / ".hotmode" / "data" / "dev-core" / "postgres" / "gateway.sqlite3"
    ).is_file()


def test_with_no_way_to_run_the_database_up_names_it_and_both_ways_out(project: Project) -> None:
    declaration = project.root / "hotmode.toml"
    text = declaration.read_text()
    text = text.replace('"/usr/lib/postgresql/*/bin"', '"/nonexistent"')
    text = "\n".join(line for line in text.splitlines() if not line.startswith("embedded ="))
    declaration.write_text(text + "\n")
    commit(project.root, "no embedded default")

    result = project.hotmode("up", "--native", "--detach", "--port", str(project.port),
                             path="/usr/bin:/bin")  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "hotmode: error: postgres cannot run: no Docker engine answers, and it has no native "
        "command here; start Docker, or install `postgres`"
    )
    assert get_json(project.port) is None


@pytest.mark.skipif(os.getuid() != 0 or not HAS_POSTGRES, reason="only root drops to postgres")
def test_a_data_folder_postgres_cannot_reach_is_named_with_the_fix(tmp_path: Path) -> None:
    # pytest's temporary folders are private to root: the postgres user cannot pass through.
    root = tmp_path / "gateway"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns(".hotmode", "logs", "__pycache__", ".env")
    )
    git(root, "init", "-q")
    commit(root, "the gateway")
    project = Project(root)

    result = project.hotmode("up", "--native", "--detach", "--port", str(project.port))

    assert result.returncode == 1
    assert "postgres runs as user postgres, who cannot reach" in result.stderr
    assert "is private; allow passing through it (chmod o+x " in result.stderr
    assert get_json(project.port) is None
    assert not (root / ".hotmode" / "companions.json").exists()
