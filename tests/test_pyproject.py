"""Dependencies declared only in pyproject.toml (PEP 621, Poetry, uv): the lock's pins, walked
from the app's main dependencies and the extras they ask for; init names the pyproject as the
requirements, the rendered Dockerfile installs the pins, and `hotmode requirements --install`
puts them into the app's venv."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO
from helpers import run_hotmode
from hotmode.config import load_config
from hotmode.errors import ConfigError
from hotmode.pyproject import requirement_lines

POETRY_PROJECT = """\
[tool.poetry]
name = "shop"
version = "0"

[tool.poetry.dependencies]
python = "^3.11"
web = "*"
db = {version = "*", extras = ["async"]}
docs = {version = "*", optional = true}

[tool.poetry.group.dev.dependencies]
pytest = "*"
"""

POETRY_LOCK = """\
[[package]]
name = "web"
version = "1.2.0"
optional = false

[package.dependencies]
Click = ">=8"
colorama = {version = "*", markers = "platform_system == \\"Windows\\""}

[[package]]
name = "click"
version = "8.1.7"
optional = false

[[package]]
name = "colorama"
version = "0.4.6"
optional = false

[[package]]
name = "db"
version = "2.0.28"
optional = false

[package.dependencies]
greenlet = {version = "!=0.4.17", optional = true}

[package.extras]
async = ["greenlet (!=0.4.17)"]
mysql = ["mysqlclient (>=1.4.0)"]

[[package]]
name = "greenlet"
version = "3.0.3"
optional = true

[[package]]
name = "pytest"
version = "8.0.0"
optional = false

[[package]]
name = "docs"
version = "1.0"
optional = true

[metadata]
lock-version = "2.0"
"""


def test_a_poetry_lock_pins_the_main_dependencies_and_the_extras_they_ask_for(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text(POETRY_PROJECT)
    (tmp_path / "poetry.lock").write_text(POETRY_LOCK)
    assert requirement_lines(tmp_path / "pyproject.toml") == [
        "click==8.1.7",
        'colorama==0.4.6 ; (platform_system == "Windows")',
        "db==2.0.28",
        "greenlet==3.0.3",  # asked for by db[async]; not pytest (dev), not docs (optional)
        "web==1.2.0",
    ]
    # A dependency the lock lacks: the lock is stale, and the error says so.
    (tmp_path / "poetry.lock").write_text(POETRY_LOCK.replace('name = "web"', 'name = "webb"'))
    with pytest.raises(ConfigError, match="web is a dependency but the lock has no entry"):
        requirement_lines(tmp_path / "pyproject.toml")


def test_a_uv_lock_is_walked_from_the_project_itself(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "notes"\nversion = "0.1.0"\n'
        'dependencies = ["fastapi[standard]>=0.115", "SQLAlchemy>=2"]\n'
        '[dependency-groups]\ntesting = ["pytest"]\n'
    )
    (tmp_path / "uv.lock").write_text(
        'version = 1\n\n[[package]]\nname = "notes"\nversion = "0.1.0"\n'
        'source = { virtual = "." }\n'
        'dependencies = [{ name = "fastapi", extra = ["standard"] }, { name = "sqlalchemy" }]\n'
        '[package.dev-dependencies]\ntesting = [{ name = "pytest" }]\n\n'
        '[[package]]\nname = "fastapi"\nversion = "0.141.1"\n'
        'dependencies = [{ name = "starlette" }]\n'
        '[package.optional-dependencies]\nstandard = [{ name = "uvicorn" }]\n\n'
        '[[package]]\nname = "sqlalchemy"\nversion = "2.0.51"\n'
        'dependencies = [{ name = "greenlet", marker = "platform_machine == \'x86_64\'" }]\n\n'
        '[[package]]\nname = "starlette"\nversion = "1.3.1"\n\n'
        '[[package]]\nname = "uvicorn"\nversion = "0.52.0"\n\n'
        '[[package]]\nname = "greenlet"\nversion = "3.5.4"\n\n'
        '[[package]]\nname = "pytest"\nversion = "9.0.0"\n'
    )
    assert requirement_lines(tmp_path / "pyproject.toml") == [
        "fastapi==0.141.1",
        'greenlet==3.5.4 ; (platform_machine == "x86_64")',
        "sqlalchemy==2.0.51",
        "starlette==1.3.1",
        "uvicorn==0.52.0",
    ]


def test_with_no_lock_the_declared_ranges_are_installed(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        POETRY_PROJECT.replace(
            'web = "*"', 'web = "^1.2.3"\nzero = "^0.4"\nnear = "~1.2"\nexact = "2.0.1"'
        )
    )
    assert requirement_lines(tmp_path / "pyproject.toml") == [
        "web>=1.2.3,<2",
        "zero>=0.4,<0.5",
        "near>=1.2,<1.3",
        "exact==2.0.1",
        "db[async]",
    ]
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["a>=1; python_version<\'4\'"]\n'
    )
    assert requirement_lines(tmp_path / "pyproject.toml") == ["a>=1; python_version<'4'"]


APP12 = next(
    (
        p / "12-modern-python-fastapi-sqlalchemy-template"
        for p in (REPO.parent / "shared" / "apps", Path("/work/shared/apps"))
        if (p / "12-modern-python-fastapi-sqlalchemy-template" / "poetry.lock").is_file()
    ),
    None,
)


@pytest.mark.skipif(APP12 is None, reason="no ../shared/apps/12-... here")
def test_the_pins_of_a_real_poetry_lock_are_what_poetry_export_writes() -> None:
    """The zoo's Poetry app ships `poetry export`'s output of its main group beside its lock:
    hotmode reads the same packages at the same versions from the lock itself."""
    assert APP12 is not None
    exported = (APP12 / "requirements-poetry-export.txt").read_text().splitlines()
    wanted = sorted(line.split(";")[0].strip() for line in exported if line[:1].isalpha())
    read = sorted(
        line.split(";")[0].strip() for line in requirement_lines(APP12 / "pyproject.toml")
    )
    assert read == wanted
    assert "greenlet==3.0.3" in read


def _wheel(folder: Path, name: str, version: str) -> None:
    """A pure-Python wheel with one module, written by hand (no build tool, no index)."""
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ),
        f"{name}-{version}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)


def test_init_adopts_a_pyproject_only_app_and_its_install_puts_the_pins_in_its_venv(
    tmp_path: Path,
) -> None:
    """init names pyproject.toml; the rendered Dockerfile lists the lock's pins (render --check
    sees a lock that changed); the declaration's install command installs exactly the pinned
    version into the app's venv (a local wheel folder stands in for the index)."""
    root = tmp_path / "shop"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (root / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY . .\nRUN pip install poetry\n")
    (root / "docker-compose.yml").write_text(
        "services:\n  api:\n    build: .\n    ports: ['8000:8000']\n"
        "    command: uvicorn app.main:app --host 0.0.0.0 --port 8000\n"
    )
    (root / "pyproject.toml").write_text(
        '[project]\nname = "shop"\nversion = "0"\ndependencies = ["tinydep"]\n'
    )
    lock = 'version = 1\n[[package]]\nname = "shop"\nversion = "0"\nsource = { virtual = "." }\n'
    lock += (
        'dependencies = [{ name = "tinydep" }]\n[[package]]\nname = "tinydep"\nversion = "1.1"\n'
    )
    (root / "uv.lock").write_text(lock)
    adopted = run_hotmode(root, "init", "--from", ".")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    config = load_config(root / "hotmode.toml")
    assert config.requirements == "pyproject.toml"
    assert config.install_command == "python -m hotmode requirements --install pyproject.toml"
    # Adopted dev carries the team's variables and none of hotmode's guesses (LOG_LEVEL=DEBUG).
    assert config.dev.env == {"PYTHONUNBUFFERED": "1"}
    rendered = run_hotmode(root, "render", "--adopt", timeout=180)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    dockerfile = (root / "deployment" / "Dockerfile").read_text()
    assert "tinydep==1.1 \\\n" in dockerfile
    (root / "uv.lock").write_text(lock.replace('"1.1"', '"1.2"'))
    stale = run_hotmode(root, "render", "--check", timeout=180)
    assert stale.returncode != 0 and "Dockerfile" in stale.stdout + stale.stderr

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version in ("1.1", "1.2"):
        _wheel(wheels, "tinydep", version)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels))
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(REPO / "src")
    installed = subprocess.run(
        ["/bin/sh", "-c", config.install_command], cwd=root, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import tinydep; print(tinydep.VERSION)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    assert version == "1.2"  # the lock as it is now
