"""A new native data folder gets the first-start scripts the official images run (the folder
mounted at /docker-entrypoint-initdb.d), once; a start whose scripts failed heals at the next
one. A real PostgreSQL run as a local process, its scripts through `psql`, on 127.0.0.1."""

from __future__ import annotations

import glob
import json
import os
import subprocess

import pytest

from companion_support import Project, needs_postgres

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    needs_postgres,
]


def query(project: Project, sql: str) -> str:
    """One value from the project's running database (its port from the companion record, its
    password the running mode's generated secret)."""
    state = project.root / ".hotmode"
    document = json.loads((state / "companions.json").read_text())
    port = next(e["port"] for e in document["companions"] if e["name"] == "postgres")
    running = json.loads((state / "state.json").read_text())
    secret = state / "secrets" / f"{running['mode']}-{running['edition']}" / "db_password"
    psql = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1]
    return subprocess.check_output(
        [psql, "--host=127.0.0.1", f"--port={port}", "--username=gateway", "--dbname=gateway",
         "--no-psqlrc", "--tuples-only", "--no-align", f"--command={sql}"],
        text=True, timeout=30, env={**os.environ, "PGPASSWORD": secret.read_text().strip()},
    ).strip()  # fmt: skip


def test_init_scripts_run_once_on_a_new_data_folder_and_a_failed_start_heals(
    pg_project: Project,
) -> None:
    init = pg_project.root / "database" / "init"
    (init / "002-seed.sql").write_text(
        "CREATE TABLE seeded (n integer);\nINSERT INTO seeded VALUES (1);\n"
    )
    (init / "003-broken.sql").write_text("SELECT * FROM no_such_table;\n")
    (init / "004-notes.sh").write_text("echo run by the image only\n")

    # A script fails: PostgreSQL gives way to the embedded default, saying which script and
    # why in one line, and its folder does not count as set up.
    failed = pg_project.up("--dev")
    assert (
        "hotmode: postgres: it could not run (init script 003-broken.sql: `psql --host=127.0.0.1 "
        "...` failed (exit 3)"
    ) in failed.stdout, failed.stdout
    assert pg_project.hotmode("down", "--native").returncode == 0

    # Fixed: the half-made folder is moved aside, made again, and every script runs.
    (init / "003-broken.sql").unlink()
    up = pg_project.up("--dev")
    assert "left half-initialised by an interrupted start" in up.stdout, up.stdout
    assert "postgres: ran 2 init script(s) on the new data folder" in up.stdout
    assert "postgres: 004-notes.sh is not run natively (only .sql)" in up.stdout
    assert query(pg_project, "SELECT count(*) FROM seeded") == "1"
    assert query(pg_project, "SELECT count(*) FROM api_keys") == "0"  # 001-schema.sql's table

    # Once only: the next start keeps the data and runs none of them again.
    assert pg_project.hotmode("down", "--native").returncode == 0
    again = pg_project.up("--dev")
    assert "init script" not in again.stdout
    assert query(pg_project, "SELECT count(*) FROM seeded") == "1"
