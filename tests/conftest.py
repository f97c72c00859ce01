"""Shared fixtures: a private copy of the reference gateway, the CLI as a process, file snapshots.

Tests never touch the committed example: `gateway` copies it into `tmp_path`. The CLI runs as a real
`python -m hotmode` process with an environment scrubbed of every variable that chooses a mode, so
that a developer's shell cannot change what a test sees. Being here also puts this folder on
sys.path, so tests can `import helpers` (waiting on a condition, a free port, git, ...).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "linkedin-gateway"

# The container tests' fixtures (engine, base image, a gateway on it): a module, not a conftest
# in tests/docker, because tests import this conftest by name.
pytest_plugins = ["docker_support", "native_support", "companion_support"]

# Variables that choose a mode, an edition or a declaration: never inherited by a test.
SELECTION_VARIABLES = (
    "HOTMODE_MODE",
    "HOTMODE_EDITION",
    "HOT_RELOAD_ENABLED",
    "LG_BACKEND_EDITION",
    "HOTMODE_CONFIG",
    "HOTMODE_DEBUG",
)

CliResult = tuple[int, str, str]
RunCli = Callable[..., CliResult]
Snapshot = dict[str, tuple[bytes, int]]


@pytest.fixture(autouse=True)
def _no_selection_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SELECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def copy_gateway(destination: Path) -> Path:
    """Copy the reference gateway, without local state (.env, logs, caches), to `destination`."""
    shutil.copytree(
        EXAMPLE,
        destination,
        ignore=shutil.ignore_patterns(".env", "logs", "__pycache__", ".hotmode"),
    )
    return destination


@pytest.fixture
def gateway(tmp_path: Path) -> Path:
    """A private copy of examples/linkedin-gateway; its rendered deployment is the committed one."""
    return copy_gateway(tmp_path / "linkedin-gateway")


# A second app that takes the other branches: pyproject.toml, requirements at the source root,
# three editions, an env file on the default edition, a default mode, extra dev env.
PYPROJECT_APP = """\
[project]
name = "shop"

[tool.hotmode]
name = "shop"
source = "app"
target = "shop.web:application"
port = 8001
requirements = "requirements.txt"
edition_variable = "SHOP_EDITION"
default_mode = "dev"
service = "web"
base_image = "python:3.12-slim"

[tool.hotmode.editions.community]
default = true
env_file = ".env.community"

[tool.hotmode.editions.pro]
env = { SHOP_SEATS = "50" }

[tool.hotmode.editions.cloud]
env = { SHOP_SEATS = "unlimited", SHOP_REGION = "eu" }
env_file = ".env.cloud"

[tool.hotmode.dev]
env = { SHOP_FAKE_PAYMENTS = "1" }
log_level = "info"
"""


def make_pyproject_app(folder: Path) -> Path:
    (folder / "app").mkdir(parents=True)
    path = folder / "pyproject.toml"
    path.write_text(PYPROJECT_APP, encoding="utf-8")
    return path


def cli_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SELECTION_VARIABLES}
    env.update(extra or {})
    return env


def _run_cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> CliResult:
    result = subprocess.run(
        [sys.executable, "-m", "hotmode", *args],
        cwd=cwd,
        env=cli_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def run_cli() -> RunCli:
    """`run_cli(*args, cwd=..., env={...})`: (exit code, stdout, stderr) of `python -m hotmode`."""
    return _run_cli


def snapshot_tree(root: Path) -> Snapshot:
    """Every file and folder under `root`: its bytes and modification time."""
    state: Snapshot = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        content = path.read_bytes() if path.is_file() else b"<dir>"
        state[path.relative_to(root).as_posix()] = (content, stat.st_mtime_ns)
    return state


@pytest.fixture
def snapshot() -> Callable[[Path], Snapshot]:
    """`snapshot(folder)`: compare two of them to prove a command touched nothing."""
    return snapshot_tree
