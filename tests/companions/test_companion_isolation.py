"""A native companion answers only its own project, and holds nothing of its caller's (issue 26).

The gateway's PostgreSQL, run by hotmode as a local process: its environment is what the
declaration gives it (the caller's secrets never reach it), it asks a password on 127.0.0.1 (one
generated for the mode, in a file only the developer can read) and has no Unix socket, so another
local user (`nobody`) can neither connect nor run a program through it (`COPY ... TO PROGRAM`).
The embedded default keeps its data in a folder only the developer can enter. Each test runs in
PID, network and mount namespaces of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from companion_support import NATIVE, Project, needs_postgres, postgres_pids
from helpers import as_nobody, commit, get_json
from namespace import in_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# What the caller's environment holds that is no business of a database (root's, a CI job's).
CALLER = {"AWS_SECRET_ACCESS_KEY": "caller-secret-1", "GITHUB_TOKEN": "caller-secret-2"}
GIVEN = {"LANG": "C.UTF-8", "TZ": "Europe/Paris"}
# hotmode's own: the search path, its locale for initdb, and the marker that finds the process.
HOTMODE_OWN = {"PATH", "LC_ALL", "HOTMODE_PROJECT", "HOTMODE_RUN_ID", "HOTMODE_COMPANION"}
DECLARED = {"PGPASSWORD"}
needs_nobody = pytest.mark.skipif(
    os.getuid() != 0 or not shutil.which("setpriv"),
    reason="running a command as another local user (nobody) needs root and setpriv",
)


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode().partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


@needs_postgres
@in_namespace
def test_the_database_process_holds_only_what_the_declaration_gives_it(
    pg_project: Project,
) -> None:
    up = pg_project.hotmode(
        "up", "--native", "--detach", "--dev", "--port", str(pg_project.port),
        env={**CALLER, **GIVEN},
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    pids = postgres_pids(pg_project.root)
    assert pids, up.stdout
    for pid in pids:
        env = environ(pid)
        assert set(env) <= HOTMODE_OWN | DECLARED | set(GIVEN), sorted(env)
        assert {k: env[k] for k in GIVEN} == GIVEN
        assert not set(CALLER) & set(env)
        assert not any(value in CALLER.values() for value in env.values())
    # The app (the developer's own program) is still given the caller's environment.
    info = get_json(pg_project.port)
    assert info is not None and info["database"] == {"backend": "postgresql", "reachable": True}


@needs_postgres
@needs_nobody
@in_namespace
def test_another_local_user_can_neither_connect_nor_run_a_program(
    pg_project: Project, tmp_path: Path
) -> None:
    pg_project.up("--dev")
    info = get_json(pg_project.port)
    assert info is not None and info["database"] == {"backend": "postgresql", "reachable": True}
    pg_project.add_key("the developer's")  # the app connects, with the generated password

    secret = pg_project.root / ".hotmode" / "secrets" / "dev-core" / "db_password"
    mode = stat.S_IMODE(secret.stat().st_mode)
    assert mode == 0o600 and secret.stat().st_uid == os.getuid(), oct(mode)
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    password = secret.read_text().strip()
    assert len(password) >= 24
    assert password != "gateway-dev-only"  # noqa: S105 - the published value must not be it
    assert as_nobody("cat", str(secret)).returncode != 0

    # The victim: a file nobody would make through the database, as the database's user.
    victim = Path("/tmp") / f"hotmode-victim-{os.getpid()}"
    victim.unlink(missing_ok=True)
    attack = f"COPY (SELECT 1) TO PROGRAM 'touch {victim}'"
    record = json.loads((pg_project.root / ".hotmode" / "companions.json").read_text())
    port = str(record["companions"][0]["port"])
    psql = ["psql", "--host=127.0.0.1", f"--port={port}", "--username=gateway", "--no-password",
            "--dbname=gateway", "--no-psqlrc", f"--command={attack}"]  # fmt: skip
    tries = {
        "no password": {},
        "the published dev-only password": {"PGPASSWORD": "gateway-dev-only"},
        "a guess": {"PGPASSWORD": "postgres"},
    }
    for how, env in tries.items():
        result = as_nobody(*psql, env=env)
        assert result.returncode != 0, (how, result.stdout)
        refused = ("password authentication failed", "no password supplied")
        assert any(reason in result.stderr for reason in refused), (how, result.stderr)
    # No socket to try instead: the server listens on 127.0.0.1 only.
    for folder in ("/var/run/postgresql", "/tmp"):
        result = as_nobody(*[a for a in psql if not a.startswith("--host")], f"--host={folder}")
        assert result.returncode != 0, (folder, result.stdout)
    assert not victim.exists()

    # The developer's own password lets the developer in (the database is theirs).
    mine = subprocess.run(
        [*psql[:-1], "--command=SELECT count(*) FROM api_keys"],
        env={"PATH": os.environ["PATH"], "PGPASSWORD": password},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert mine.returncode == 0, mine.stderr


@needs_nobody
@in_namespace
def test_the_embedded_default_keeps_its_file_in_a_folder_only_the_developer_enters(
    pg_project: Project,
) -> None:
    declaration = pg_project.root / "hotmode.toml"
    text = declaration.read_text()
    declaration.write_text(text[: text.index(NATIVE)])  # no native command: the embedded SQLite
    commit(pg_project.root, "no native postgres")
    pg_project.up("--dev")
    pg_project.add_key("embedded")
    folder = pg_project.root / ".hotmode" / "data" / "dev-core" / "postgres"
    database = folder / "gateway.sqlite3"
    assert database.is_file()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert folder.stat().st_uid == os.getuid()
    read = as_nobody("python3", "-c", f"open({str(database)!r}, 'rb').read(16)")
    assert read.returncode != 0 and "Permission denied" in read.stderr, read.stderr


def test_the_embedded_folder_is_made_private_never_through_a_link(tmp_path: Path) -> None:
    from hotmode.native.companions import _make_private

    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    victim.chmod(0o755)
    link = tmp_path / "data"
    link.symlink_to(victim)
    _make_private(link)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755
    own = tmp_path / "own"
    own.mkdir(mode=0o755)
    _make_private(own)
    assert stat.S_IMODE(own.stat().st_mode) == 0o700
