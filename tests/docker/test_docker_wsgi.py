"""The prod image of a WSGI app: a Flask factory in a package, built on the shared engine from
the rendered Dockerfile and served by its CMD (uvicorn's WSGI interface over a2wsgi, the factory
called), on a read-only root as the non-root user, with no reloader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from docker_support import require_engine
from helpers import commit, free_port, get_json, git, run_hotmode
from hotmode.compose import docker, layout
from hotmode.config import Config, load_config
from hotmode.modes import Selection
from reload.wsgi_support import FLASK_PACKAGE

require_engine()
pytestmark = pytest.mark.e2e

# The CI engine has no bridge network: the build and the service use the host's.
OVERLAY = """\
services:
  backend:
    build:
      network: host
    network_mode: host
    ports: !reset []
    healthcheck:
      interval: 1s
      start_period: 30s
"""


@pytest.fixture
def flask_project(tmp_path: Path, base_image: str) -> Iterator[Config]:
    root, port = tmp_path / "shop", free_port()
    (root / "app" / "shop").mkdir(parents=True)
    (root / "app" / "shop" / "__init__.py").write_text(FLASK_PACKAGE)
    (root / "app" / "requirements.txt").write_text("flask\n")
    (root / "hotmode.toml").write_text(
        f'name = "wsgi-prod-image"\nsource = "app"\ntarget = "shop:create_app()"\n'
        f'port = {port}\nrequirements = "requirements.txt"\n'
    )
    rendered = run_hotmode(root, "render")
    assert rendered.returncode == 0, rendered.stderr
    deployment = root / "deployment"
    (deployment / "docker-compose.local.yml").write_text(OVERLAY)
    (deployment / ".env").write_text(
        f"PORT={port}\nHOTMODE_HOST=127.0.0.1\nBASE_IMAGE={base_image}\n"
    )
    (root / ".gitignore").write_text("deployment/.env\ndeployment/docker-compose.local.yml\n")
    git(root, "init", "-q")
    commit(root, "a Flask factory")
    config = load_config(root / "hotmode.toml")
    try:
        yield config
    finally:
        docker.down(config)
        prod = Selection("prod", config.default_edition.name, "test", "test")
        label = f"label={docker.PROJECT_LABEL}={layout.project_name(config, prod)}"
        images = docker.docker("images", "--quiet", "--filter", label).stdout.split()
        if images:
            docker.docker("image", "rm", "--force", *sorted(set(images)), check=False)


def test_the_prod_image_serves_a_flask_factory_read_only(flask_project: Config) -> None:
    config = flask_project
    prod = Selection("prod", config.default_edition.name, "test", "test")
    running = docker.up(config, prod)
    assert running.mode == "prod"
    assert get_json(config.port, "/") == {"version": "v1", "mode": "prod"}
    container = running.container
    command = docker.docker("inspect", "-f", "{{json .Config.Cmd}}", container).stdout
    assert '"--interface","wsgi"' in command and "--reload" not in command
    user = docker.docker("inspect", "-f", "{{.Config.User}}", container).stdout.strip()
    assert user and not user.startswith("0")
    touched = docker.docker("exec", container, "touch", "/app/shop/x.py", check=False)
    assert touched.returncode != 0
    as_root = docker.docker("exec", "--user", "0", container, "touch", "/etc/probe", check=False)
    assert "Read-only file system" in as_root.stderr
