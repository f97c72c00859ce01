"""A project hotmode has never seen, end to end with no hand edit: `init --from .`, `render
--adopt`, native `up --dev` with its PostgreSQL (Debian's binaries, a real local process), the
migration as a declared job (the migrate service the app waited for) and through `hotmode
exec`, a database route answering 200, an edit served, a row that survives `down` and `up`, and
`switch --prod` onto prod's own database (dev's row not in it). No Docker engine (DOCKER_HOST
points nowhere)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO
from helpers import answer, commit, free_port, git, post_json, scrubbed_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NOTES = REPO / "tests" / "fixtures" / "adopt-notes"


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()

    def hotmode(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = scrubbed_env(("HOTMODE_", "HOT_RELOAD", "DOCKER_"))
        env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
        return subprocess.run(
            [sys.executable, "-m", "hotmode", *args], cwd=self.root, env=env,
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        result = self.hotmode(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def notes(self) -> tuple[int, dict[str, object]]:
        return answer(self.port, "/notes")

    def add(self, body: str) -> None:
        post_json(self.port, "/notes", {"body": body})


@pytest.fixture
def project() -> Iterator[Project]:
    # postgres runs as the unprivileged `postgres` user when the tests run as root: the folder
    # must be reachable by it, which pytest's private temporary folders are not.
    base = Path(os.environ.get("TMPDIR", "/tmp"))
    parent = Path(subprocess.check_output(["mktemp", "-d", str(base / "hotmode-adopt.XXXXXX")],
                                          text=True).strip())  # fmt: skip
    parent.chmod(0o755)
    root = parent / "notes"
    shutil.copytree(NOTES, root)
    git(root, "init", "-q")
    commit(root, "a project hotmode has never seen")
    proj = Project(root)
    yield proj
    proj.hotmode("down", "--native")
    for log in (root / ".hotmode").glob("*.log"):
        print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
    shutil.rmtree(parent, ignore_errors=True)


def test_an_unseen_app_adopts_and_runs_with_its_database(project: Project) -> None:
    gitignore = (project.root / ".gitignore").read_text()
    adopted = project.hotmode("init", "--from", ".")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert "[jobs.migrate]" in adopted.stdout
    assert "deployment = 'deployment'" in adopted.stdout  # not the root: its .gitignore stays
    assert "ready means it answers HTTP at all" in adopted.stdout
    project.ok("render", "--adopt")
    assert (project.root / ".gitignore").read_text() == gitignore
    commit(project.root, "adopted")

    project.ok("up", "--native", "--dev", "--detach", "--port", str(project.port))
    # The migrate service the app waited for is a declared job: it ran before the app.
    assert project.notes() == (200, {"notes": [], "version": 1})
    # `python` is the interpreter that serves the app (its venv first on PATH), not the
    # first one this machine's PATH names.
    migrated = project.hotmode("exec", "--", "python", "migrate.py")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    project.add("kept")
    assert project.notes() == (200, {"notes": ["kept"], "version": 1})

    main = project.root / "project" / "app" / "main.py"
    main.write_text(main.read_text().replace('"version": 1', '"version": 2'))
    assert wait_until(lambda: project.notes()[1].get("version") == 2, timeout=30)

    project.ok("down", "--native")
    project.ok("up", "--native", "--dev", "--detach", "--port", str(project.port))
    assert project.notes() == (200, {"notes": ["kept"], "version": 2})

    # Prod: its own secret and its own database; dev's row is not in it.
    secrets = project.root / "deployment" / "secrets"
    secrets.mkdir()
    (secrets / "postgres_password").write_text("prod-only\n")
    git(project.root, "checkout", "--", "project")
    project.ok("switch", "--prod", "--native", "--port", str(project.port))
    assert project.notes() == (200, {"notes": [], "version": 1})  # the job migrated prod's
    migrated = project.hotmode("exec", "--", sys.executable, "migrate.py")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert project.notes() == (200, {"notes": [], "version": 1})
