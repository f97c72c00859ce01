"""A project hotmode has never seen, adopted and run on a real engine with no hand edit:
`init --from .`, `render --adopt`, `up --dev` in Docker with its PostgreSQL, the declared
migrate job run before the app on the image `up` built (`pull_policy: never`), `hotmode exec`,
a database route answering 200, `switch --prod` onto prod's own database. Nothing stays behind:
containers, the images built here and every volume go at the end.

The only file added by hand is the site's git-ignored overlay that every container test on this
engine needs (it has no bridge network: host networking, a private port for the app and for the
database, the locally built PostgreSQL image), as the gateway's tests add theirs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from docker_support import TREE_UID, require_engine
from helpers import answer, commit, free_port, git, post_json, run_hotmode
from hotmode.compose import docker

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

require_engine()

NOTES = Path(__file__).resolve().parents[1] / "fixtures" / "adopt-notes"
# The folder's name is the app's: distinct from anything else on the shared engine.
NAME = "adopt-notes-e2e"
DEV, PROD = f"{NAME}-dev", NAME
BUILD = 900.0

# The site overlay (git-ignored by the rendered deployment/.gitignore): what this engine needs.
SITE = """\
services:
  web:
    build:
      network: host
    network_mode: host
    ports: !reset []
    extra_hosts: ["db:127.0.0.1"]
    environment:
      DATABASE_URL: postgresql://notes@db:{db}/notes
    healthcheck:
      interval: 1s
      start_period: 60s
  migrate:
    network_mode: host
    extra_hosts: ["db:127.0.0.1"]
    environment:
      DATABASE_URL: postgresql://notes@db:{db}/notes
  db:
    image: {image}
    network_mode: host
    environment:
      PGPORT: "{db}"
      POSTGRES_LISTEN: 127.0.0.1
"""


class Notes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()

    def ok(self, *args: str, timeout: float = 120) -> str:
        result = run_hotmode(self.root, *args, timeout=timeout)
        assert result.returncode == 0, f"hotmode {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result.stdout

    def notes(self) -> tuple[int, object]:
        status, document = answer(self.port, "/notes")
        return status, document.get("notes")

    def add(self, body: str) -> None:
        post_json(self.port, "/notes", {"body": body})


def _ours(kind: str, *filters: str) -> list[str]:
    args = ["ls", "--quiet"] if kind == "volume" else ["ls", "--all", "--quiet"]
    listed = docker.docker(kind, *args, *(f for name in filters for f in ("--filter", name)))
    return listed.stdout.split()


def _instant(stamp: str) -> tuple[str, float]:
    """Docker's RFC 3339 time (nanoseconds, trailing zeros trimmed), comparable."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return whole, float(f"0.{fraction or 0}")


def _image_id(tag: str) -> str | None:
    found = docker.docker("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


@pytest.fixture
def adopted(
    base_image: str, postgres_image: str, tmp_path: Path, engine_to_ourselves: None
) -> Iterator[Notes]:
    root = tmp_path / NAME
    shutil.copytree(NOTES, root)
    git(root, "init", "-q")
    commit(root, "a project hotmode has never seen")
    project = Notes(root)
    assert _image_id(f"{NAME}:dev") is None, f"{NAME}:dev is left from an earlier run"
    yield project
    run_hotmode(root, "down", "--volumes", "--yes", timeout=180)
    labels = [f"label={docker.PROJECT_LABEL}={p}" for p in (DEV, PROD)]
    containers = [c for label in labels for c in _ours("container", label)]
    images = sorted({i for label in labels for i in _ours("image", label)})
    if images:
        docker.docker("image", "rm", "--force", *images, check=False)
    volumes = _ours("volume", f"name={NAME}")
    assert not containers, f"down left containers behind: {containers}"
    assert not volumes, f"down --volumes left volumes behind: {volumes}"


def test_an_unseen_app_adopts_and_runs_in_docker_dev_then_prod(
    adopted: Notes, base_image: str, postgres_image: str
) -> None:
    root = adopted.root
    assert "[jobs.migrate]" in adopted.ok("init", "--from", ".")
    adopted.ok("render", "--adopt")
    commit(root, "adopted")
    db_port = free_port()
    (root / "deployment" / "docker-compose.local.yml").write_text(
        SITE.format(db=db_port, image=postgres_image)
    )
    (root / "deployment" / ".env").write_text(
        f"PORT={adopted.port}\nHOTMODE_HOST=127.0.0.1\nBASE_IMAGE={base_image}\n"
    )
    if os.getuid() == 0:
        # Dev runs as the source's owner: a user's, as on a workstation.
        for path in [root / "project", *(root / "project").rglob("*")]:
            os.lchown(path, TREE_UID, TREE_UID)
    assert git(root, "status", "--porcelain") == ""

    adopted.ok("up", "--dev", timeout=BUILD)
    # The job ran on the image `up` built first (it is never pulled), exited 0, before the app.
    job = docker.inspect_one(f"{DEV}-migrate-1")
    assert (job["State"]["Status"], job["State"]["ExitCode"]) == ("exited", 0)
    assert job["Image"] == _image_id(f"{NAME}:dev")
    app = docker.inspect_one(DEV)
    assert _instant(app["State"]["StartedAt"]) > _instant(job["State"]["FinishedAt"])
    assert adopted.notes() == (200, [])

    # exec: the mode's environment, the URL whole (its password put back from dev's secret).
    assert adopted.ok("exec", "--", "python", "migrate.py") == ""
    url = adopted.ok("exec", "--", "python", "-c", "import os; print(os.environ['DATABASE_URL'])")
    assert url.strip() == f"postgresql://notes:notes-pw@db:{db_port}/notes"
    adopted.add("written in dev")
    assert adopted.notes() == (200, ["written in dev"])

    # Prod: its own secret, its own database (migrated by the job); dev's row is not in it.
    secrets = root / "deployment" / "secrets"
    secrets.mkdir()
    (secrets / "postgres_password").write_text("prod-only\n")
    (secrets / "postgres_password").chmod(0o644)
    adopted.ok("switch", "--prod", timeout=BUILD)
    assert docker.inspect_one(f"{PROD}-migrate-1")["State"]["ExitCode"] == 0
    assert adopted.notes() == (200, [])
    assert adopted.ok("exec", "--", "python", "migrate.py") == ""
    adopted.add("written in prod")
    assert adopted.notes() == (200, ["written in prod"])
    assert not _ours("container", f"label={docker.PROJECT_LABEL}={DEV}")  # switch removed dev
    volumes = set(_ours("volume", f"name={NAME}"))
    assert {f"{DEV}_notes-data", f"{PROD}_notes-data"} <= volumes
