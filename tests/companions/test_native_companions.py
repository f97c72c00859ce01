"""`up --native` with the gateway's PostgreSQL: a real local postgres process, its data kept per
mode across down/up and switch, the embedded SQLite when no PostgreSQL can run, and the error when
nothing can. Real processes and sockets on 127.0.0.1; no Docker engine (DOCKER_HOST unset)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from companion_support import HAS_POSTGRES, NATIVE, Project, postgres_pids
from conftest import EXAMPLE
from helpers import commit, get_json, git

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.mark.skipif(not HAS_POSTGRES and os.environ.get("CI") != "true",
                    reason="Debian's postgresql package is not installed")  # fmt: skip
def test_postgres_runs_as_a_process_and_keeps_each_modes_data(pg_project: Project) -> None:
    up = pg_project.up("--dev")
    assert "hotmode: postgres pid " in up.stdout
    assert f"{pg_project.root / '.hotmode' / 'data' / 'dev-core' / 'postgres'}" in up.stdout
    info = get_json(pg_project.port)
    assert info is not None and info["database"] == {"backend": "postgresql", "reachable": True}
    pg_project.add_key("written in dev")
    data = pg_project.root / ".hotmode" / "data" / "dev-core" / "postgres"
    if os.getuid() == 0:
        assert data.stat().st_uid != 0  # postgres refuses root; it runs as its own user

    # down stops the database too, and keeps its data; up finds the row again.
    assert pg_project.hotmode("down", "--native").returncode == 0
    assert postgres_pids(pg_project.root) == set()
    pg_project.up("--dev")
    assert pg_project.keys() == ["written in dev"]

    # prod has its own data: it never sees the dev row; back in dev, the row is there.
    switched = pg_project.hotmode("switch", "--prod", "--native", "--port", str(pg_project.port))
    assert switched.returncode == 0, switched.stderr
    assert (get_json(pg_project.port) or {}).get("mode") == "prod"
    assert pg_project.keys() == []
    back = pg_project.hotmode("switch", "--dev", "--native", "--port", str(pg_project.port))
    assert back.returncode == 0, back.stderr
    assert pg_project.keys() == ["written in dev"]

    # Only --volumes deletes data, naming it; without a terminal it needs --yes.
    assert pg_project.hotmode("down", "--native").returncode == 0
    refused = pg_project.hotmode("down", "--native", "--volumes")
    assert refused.returncode == 2 and data.is_dir()
    assert "confirm with --yes" in refused.stderr
    deleted = pg_project.hotmode("down", "--native", "--volumes", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert f"folder {data}" in deleted.stdout
    assert not data.exists()


def test_without_postgres_the_declared_embedded_sqlite_is_used_and_said(
    pg_project: Project,
) -> None:
    declaration = pg_project.root / "hotmode.toml"
    text = declaration.read_text()
    declaration.write_text(text[: text.index(NATIVE)])  # no native command declared
    commit(pg_project.root, "no native postgres")

    up = pg_project.up("--dev")

    said = [line for line in up.stdout.splitlines() if "embedded default" in line]
    assert len(said) == 1 and said[0].startswith("hotmode: postgres: no Docker engine"), up.stdout
    info = get_json(pg_project.port)
    assert info is not None and info["database"] == {"backend": "sqlite", "reachable": True}
    pg_project.add_key("embedded")
    assert pg_project.keys() == ["embedded"]
    assert (
        pg_project.root / ".hotmode" / "data" / "dev-core" / "postgres" / "gateway.sqlite3"
    ).is_file()


def test_with_no_way_to_run_the_database_up_names_it_and_both_ways_out(pg_project: Project) -> None:
    declaration = pg_project.root / "hotmode.toml"
    text = declaration.read_text()
    text = text.replace('"/usr/lib/postgresql/*/bin"', '"/nonexistent"')
    text = "\n".join(line for line in text.splitlines() if not line.startswith("embedded ="))
    declaration.write_text(text + "\n")
    commit(pg_project.root, "no embedded default")

    result = pg_project.hotmode("up", "--native", "--detach", "--port", str(pg_project.port),
                             path="/usr/bin:/bin")  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "hotmode: error: postgres cannot run: no Docker engine answers, and it has no native "
        "command here; start Docker, or install `postgres`"
    )
    assert get_json(pg_project.port) is None


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
