"""Declared jobs (`[jobs.NAME]`): in Docker, a service of the app's image that the app waits
for (`service_completed_successfully`) in every mode; natively, a local process before the app,
whose failure stops the start and names the job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import free_port
from hotmode.compose.render import render_files
from hotmode.config import load_config

DECLARATION = """\
name = "jobs"
source = "app"
target = "main:app"
port = {port}
requirements = "requirements.txt"

[jobs.migrate]
command = ["python", "-c", "raise SystemExit(3)"]
"""


class _Loader(yaml.SafeLoader):
    """Reads the rendered files' `!override` and `!reset` tags as plain values."""


def _plain(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_multi_constructor("!", _plain)


def _project(root: Path, port: int = 8000) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (root / "app" / "requirements.txt").write_text("fastapi\n")
    path = root / "hotmode.toml"
    path.write_text(DECLARATION.format(port=port))
    return path


def test_a_job_is_a_service_of_the_apps_image_the_app_waits_for(tmp_path: Path) -> None:
    config = load_config(_project(tmp_path))
    rendered = render_files(config).items()
    # A SafeLoader that reads `!override` as a plain value.
    files = {path.name: yaml.load(text, Loader=_Loader)  # noqa: S506
             for path, text in rendered if path.suffix == ".yml"}  # fmt: skip
    base = files["docker-compose.yml"]["services"]
    job, app = base["migrate"], base[config.service]
    assert app["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert (job["image"], job["pull_policy"], job["restart"]) == (app["image"], "never", "no")
    assert job["command"] == ["python", "-c", "raise SystemExit(3)"]
    assert "ports" not in job and "healthcheck" not in job and "build" not in job
    dev = files["docker-compose.dev.yml"]["services"]
    assert dev["migrate"]["image"] == dev[config.service]["image"]  # the dev image, source mounted
    assert dev["migrate"]["volumes"] == dev[config.service]["volumes"]


def test_a_failing_job_stops_the_native_start_and_names_it(tmp_path: Path) -> None:
    _project(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTMODE_", "HOT_RELOAD"))}
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    result = subprocess.run(
        [sys.executable, "-m", "hotmode", "up", "--native", "--dev", "--detach",
         "--port", str(free_port())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "job migrate failed (exit 3)" in result.stderr
    assert "the app was not started" in result.stderr
    status = subprocess.run(
        [sys.executable, "-m", "hotmode", "status", "--native"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "Running now: nothing." in status.stdout, status.stdout
