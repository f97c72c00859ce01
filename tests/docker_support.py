"""The container tests' fixtures: a real Docker engine, a base image built here, a gateway.

The engine is the one `DOCKER_HOST` names, or the private one `.ci/docker-setup start` runs. No
image can be pulled, so the base image is built by `.ci/base-image` (debootstrap, cached as a
tarball under /var/cache/hotmode). Each test gets a committed copy of the example gateway whose
git-ignored `deployment/docker-compose.local.yml` puts the service on the host network, bound
to 127.0.0.1 on a port of its own, and whose `.env` carries that port and the base image.
Without an engine the tests skip with one line; with CI=true a missing engine fails them.
A plugin module, not tests/docker/conftest.py: tests import the top conftest by name.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import commit, free_port, git
from hotmode.compose import docker, layout
from hotmode.config import Config, load_config
from hotmode.modes import all_selections

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "linkedin-gateway"
CI_SOCKET = Path("/run/hotmode-ci-docker.sock")
# The owner of the copied tree, when the tests run as root: dev containers must run as the
# tree's owner, and "no root-owned file in the tree" then means something.
TREE_UID = 1000
HEX = set("0123456789abcdef")

SITE_OVERLAY = REPO / ".ci" / "docker-compose.site.yml"
# An overlay whose health check fails at once: a mode that never becomes healthy.
FAILING_HEALTH = """\
services:
  backend:
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      retries: 1
      start_period: 0s
"""
ENGINE_LOCK = Path(tempfile.gettempdir()) / "hotmode-docker.lock"


def require_engine() -> str:
    """The Docker engine's address; skip the calling module (fail it under CI=true) if none.

    Called at module level, so that a machine without Docker reports one line for all the
    container tests. The CI engine's socket is used when DOCKER_HOST names none.
    """
    if "DOCKER_HOST" not in os.environ and CI_SOCKET.exists():
        os.environ["DOCKER_HOST"] = f"unix://{CI_SOCKET}"
    address = os.environ.get("DOCKER_HOST", "the default socket")
    if not docker.engine_reachable():
        message = (
            f"no Docker engine answers at {address}; start one with "
            '`eval "$(.ci/docker-setup start)"`'
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(f"container tests skipped: {message}", allow_module_level=True)
    return address


@pytest.fixture(scope="session")
def base_image() -> Iterator[str]:
    """The base image tag, built (or loaded from the cache) once per session.

    HOTMODE_TEST_BASE_IMAGE names another (e.g. python:3.11-slim where images can be pulled).
    """
    tag = os.environ.get("HOTMODE_TEST_BASE_IMAGE")
    if not tag:
        result = subprocess.run(
            [str(REPO / ".ci" / "base-image")], capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f".ci/base-image failed:\n{result.stderr[-2000:]}"
        tag = result.stdout.strip().splitlines()[-1]
    yield tag
    # The app's images, tagged or left untagged by a newer build, are this session's (Compose
    # labels what it builds with the project); the base image is the cache, and stays.
    config = load_config(EXAMPLE / "hotmode.toml")
    for selection in all_selections(config):
        project = layout.project_name(config, selection)
        label = f"label={docker.PROJECT_LABEL}={project}"
        images = docker.docker("images", "--quiet", "--filter", label).stdout.split()
        if images:
            docker.docker("image", "rm", "--force", *sorted(set(images)), check=False)


class Gateway:
    """A committed copy of the example gateway, set up for this engine on a port of its own."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.backend = root / "backend"
        self.config: Config = load_config(root / "hotmode.toml")

    def commit(self, message: str) -> str:
        return commit(self.root, message)

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """`docker exec` in the running container; options (e.g. --user 0) may lead `argv`."""
        running = docker.running(self.config)
        assert running is not None, "nothing is running"
        options = list(argv[:2]) if argv[0].startswith("--") else []
        return docker.docker(
            "exec", *options, running.container, *argv[len(options) :], check=False
        )


def _copy(root: Path) -> None:
    shutil.copytree(
        EXAMPLE,
        root,
        ignore=shutil.ignore_patterns("__pycache__", "logs", ".env", ".hotmode", "*.local.yml"),
    )


@pytest.fixture(scope="session")
def postgres_image(base_image: str) -> str:
    """The database image (.ci/postgres-image: Debian's postgresql on the base image), cached."""
    result = subprocess.run(
        [str(REPO / ".ci" / "postgres-image")], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f".ci/postgres-image failed:\n{result.stderr[-2000:]}"
    return result.stdout.strip().splitlines()[-1]


DB_PASSWORD = "prod-test-password"  # noqa: S105 - a test database's, on 127.0.0.1


@pytest.fixture
def engine_to_ourselves() -> Iterator[None]:
    """Hold a machine-wide lock while a test runs the gateway: every run of these tests uses
    the same Compose projects and container names, so two suites at once would collide."""
    with open(ENGINE_LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture
def deployed(
    base_image: str, postgres_image: str, tmp_path: Path, engine_to_ourselves: None
) -> Iterator[Gateway]:
    """A fresh committed gateway; everything it ran is removed afterwards."""
    root = tmp_path / "gateway"
    _copy(root)
    port = free_port()
    deployment = root / "deployment"
    shutil.copyfile(SITE_OVERLAY, deployment / "docker-compose.local.yml")
    (deployment / ".env").write_text(
        f"PORT={port}\nHOTMODE_HOST=127.0.0.1\nBASE_IMAGE={base_image}\n"
    )
    # Prod's database password: a secret file, git-ignored, readable by the database's user.
    (deployment / "secrets").mkdir()
    (deployment / "secrets" / "db_password").write_text(DB_PASSWORD)
    (deployment / "secrets" / "db_password").chmod(0o644)
    git(root, "init", "-q")
    project = Gateway(root, port)
    project.commit("the gateway")
    if os.getuid() == 0:
        # Only the source: git refuses a repository whose top folder another user owns.
        for path in [project.backend, *project.backend.rglob("*")]:
            os.lchown(path, TREE_UID, TREE_UID)
    before = _anonymous_volumes()
    yield project
    stopped = docker.down(project.config)
    leftovers = docker.docker(
        "ps", "--all", "--quiet", "--filter", f"label={docker.APP_LABEL}=linkedin-gateway"
    ).stdout.split()
    left = _anonymous_volumes() - before
    # The named logs volumes outlive `down` by design (logs are kept); the test's go.
    named = docker.docker("volume", "ls", "--quiet", "--filter", "name=linkedin-gateway")
    for volume in named.stdout.split():
        docker.docker("volume", "rm", volume, check=False)
    assert not leftovers, f"down left containers behind: {leftovers} (stopped {stopped})"
    assert not left, f"anonymous volumes left behind: {left}"


def _anonymous_volumes() -> set[str]:
    """Volumes no container uses whose name Docker made up (64 hex digits): anonymous ones."""
    listed = docker.docker("volume", "ls", "--quiet", "--filter", "dangling=true").stdout.split()
    return {name for name in listed if len(name) == 64 and all(c in HEX for c in name)}
