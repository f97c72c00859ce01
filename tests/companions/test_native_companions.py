"""`up --native` with the gateway's PostgreSQL: a real local postgres process, its data kept per
mode across down/up and switch, the embedded SQLite when no PostgreSQL can run, and the error when
nothing can. Real processes and sockets on 127.0.0.1; no Docker engine (DOCKER_HOST unset)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from companion_support import HAS_POSTGRES, NATIVE, Project, needs_postgres, postgres_pids
from conftest import EXAMPLE
from helpers import commit, get_json, git

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@needs_postgres
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

    # Its log natively by its name; an unknown name is refused in one line.
    log = pg_project.hotmode("logs", "--native", "--no-follow", "--service", "postgres")
    assert log.returncode == 0, log.stderr
    assert "database system is ready to accept connections" in log.stdout
    assert "Uvicorn running" not in log.stdout  # the app's log is not it
    unknown = pg_project.hotmode("logs", "--native", "--no-follow", "--service", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "hotmode: error: --service 'nope' is not a service of linkedin-gateway; use "
        f"{pg_project.app_service()}, postgres"
    ]

    # down names everything it stopped, the database too, and keeps its data; up finds the row.
    down = pg_project.hotmode("down", "--native")
    assert down.returncode == 0, down.stderr
    assert "hotmode: stopped dev core (pid " in down.stdout
    assert "hotmode: stopped postgres (pid " in down.stdout
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


def _private_copy(tmp_path: Path) -> Project:
    """The gateway, committed, in a folder only root can pass through (a clone under /root)."""
    home = tmp_path / "root-home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    root = home / "gateway"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns(".hotmode", "logs", "__pycache__", ".env")
    )
    git(root, "init", "-q")
    commit(root, "the gateway")
    return Project(root)


@pytest.mark.skipif(os.getuid() != 0 or not HAS_POSTGRES, reason="only root drops to postgres")
def test_as_root_in_a_private_folder_postgres_keeps_its_data_where_it_can_reach_it(
    tmp_path: Path,
) -> None:
    project = _private_copy(tmp_path)
    # Where the data goes instead of /var/lib/hotmode: a folder of this test's own.
    shared = Path(subprocess.check_output(["mktemp", "-d", "/tmp/hotmode-data.XXXXXX"], text=True)
                  .strip())  # fmt: skip
    shared.chmod(0o755)
    env = {"HOTMODE_DATA_HOME": str(shared)}
    link = project.root / ".hotmode" / "data" / "dev-core" / "postgres"
    try:
        up = project.hotmode("up", "--native", "--dev", "--detach", "--port", str(project.port),
                             env=env)  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        said = [line for line in up.stdout.splitlines() if "cannot pass through" in line]
        assert len(said) == 1, up.stdout
        assert link.is_symlink(), up.stdout
        target = Path(os.readlink(link))
        assert said[0].startswith("hotmode: postgres runs as user postgres, who cannot pass")
        assert said[0].endswith(f"; its data is in {target} (linked from {link})")
        assert target.is_relative_to(shared) and target.stat().st_uid != 0
        assert (target.parents[1] / "project").read_text().strip() == str(project.root)
        info = get_json(project.port)
        assert info is not None and info["database"] == {"backend": "postgresql", "reachable": True}
        project.add_key("kept as root")
        status = project.hotmode("status", "--native", "--json", env=env)
        assert f"data {target}" in status.stdout, status.stdout

        # The data belongs to the project and mode: kept across down/up, found by its name.
        assert project.hotmode("down", "--native", env=env).returncode == 0
        assert project.hotmode("up", "--native", "--dev", "--detach", "--port",
                               str(project.port), env=env).returncode == 0  # fmt: skip
        assert project.keys() == ["kept as root"]
        assert project.hotmode("down", "--native", env=env).returncode == 0
        deleted = project.hotmode("down", "--native", "--volumes", "--yes", env=env)
        assert deleted.returncode == 0, deleted.stderr
        assert f"hotmode: deleted {link} (at {target})" in deleted.stdout
        assert not target.exists() and not link.is_symlink()
        assert not target.parents[1].exists()  # nothing of the project is left there
    finally:
        project.hotmode("down", "--native", env=env)
        shutil.rmtree(shared, ignore_errors=True)


@needs_postgres
def test_a_postgres_that_cannot_start_gives_way_to_the_embedded_default_in_one_line(
    pg_project: Project,
) -> None:
    declaration = pg_project.root / "hotmode.toml"
    declaration.write_text(
        declaration.read_text().replace('"unix_socket_directories="', '"no_such_setting=1"')
    )
    commit(pg_project.root, "a postgres setting that does not exist")

    up = pg_project.up("--dev")

    said = [line for line in up.stdout.splitlines() if "embedded default" in line]
    assert len(said) == 1, up.stdout
    assert said[0].startswith("hotmode: postgres: it could not run (postgres exited with code 1")
    info = get_json(pg_project.port)
    assert info is not None and info["database"] == {"backend": "sqlite", "reachable": True}


def test_a_companion_the_app_does_not_name_and_cannot_run_is_skipped_with_a_note(
    pg_project: Project,
) -> None:
    """An admin UI beside the database (no native command, nothing of the app's settings names
    it) does not stop the app natively: it is left out, said once."""
    declaration = pg_project.root / "hotmode.toml"
    text = declaration.read_text()
    declaration.write_text(text + '\n[services.admin]\nimage = "dpage/pgadmin4:9.4"\n')
    commit(pg_project.root, "an admin UI")

    up = pg_project.up("--dev")

    assert up.returncode == 0, up.stdout + up.stderr
    said = [line for line in up.stdout.splitlines() if "admin is not started" in line]
    assert len(said) == 1, up.stdout
    pg_project.add_key("with no admin UI")
    assert pg_project.keys() == ["with no admin UI"]
