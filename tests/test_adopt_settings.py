"""The app's own settings that name a companion's Compose host (a pydantic-settings default, a
`getenv` default) are pointed at where the companion runs, as the variable those settings read;
a URL naming the host that no variable overrides is named by file and line."""

from __future__ import annotations

from pathlib import Path

from helpers import run_hotmode
from hotmode.compose.companions import fill_url_secrets, split_url_secrets
from hotmode.config import load_config


def _project(root: Path, settings: str, api: str, services: str) -> None:
    """A FastAPI app with `settings` as app/settings.py, its Compose service `api` lines, and
    the other services."""
    (root / "app").mkdir()
    (root / "app" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (root / "app" / "settings.py").write_text(settings)
    (root / "requirements.txt").write_text("fastapi\n")
    (root / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (root / "docker-compose.yml").write_text(
        "services:\n"
        "  api:\n    build: .\n    ports: ['8000:8000']\n"
        "    command: uvicorn app.main:app --host 0.0.0.0 --port 8000\n" + api + services
    )


def test_settings_defaults_naming_a_companion_are_carried_as_their_own_variables(
    tmp_path: Path,
) -> None:
    _project(
        tmp_path,
        "import os\n"
        "import pydantic_settings\n\n"
        "class Settings(pydantic_settings.BaseSettings):\n"
        "    model_config = pydantic_settings.SettingsConfigDict(env_prefix='shop_')\n"
        "    db_host: str = 'db'\n"
        "    db_port: int = 5432\n"
        "    pool: int = 5\n\n"
        "CACHE = os.getenv('CACHE_URL', 'redis://redis:6379/0')\n"
        "REPORTS = 'postgresql://reports@db:5432/reports'\n",
        "    depends_on: [db, redis]\n"
        "    environment: {DATABASE_URL: 'postgresql://db:pw@db/shop'}\n",
        "  db:\n    image: postgres:16\n    environment: {POSTGRES_PASSWORD: pw}\n"
        "  redis:\n    image: redis:7\n",
    )
    adopted = run_hotmode(tmp_path, "init", "--from", ".")
    # The literal URL no variable overrides: named by file and line, so init is not clean.
    assert adopted.returncode == 1, adopted.stdout + adopted.stderr
    assert (
        "not carried app: app/settings.py:11 names db's Compose host in a URL that no variable "
        "overrides"
    ) in adopted.stdout
    config = load_config(tmp_path / "hotmode.toml")
    services = {s.name: s for s in config.services}
    assert dict(services["db"].spec("dev").app_env) == {
        # The URL's user is named like the service: only its host is the companion's.
        "DATABASE_URL": "postgresql://db:{secret:postgres_password}@{host}:{port}/shop",
        "SHOP_DB_HOST": "{host}",
        "SHOP_DB_PORT": "{port}",
    }
    assert dict(services["redis"].spec("dev").app_env) == {"CACHE_URL": "redis://{host}:{port}/0"}
    assert "app: SHOP_DB_HOST (its settings default it to db's Compose host)" in adopted.stdout


def test_a_password_setting_defaulted_to_the_companions_is_told_the_secret(
    tmp_path: Path,
) -> None:
    # The app reads its password alone (DB_PASSWORD, defaulted to Compose's dev value), not in a
    # URL: the native database has a generated password, so the app must be told it too.
    _project(
        tmp_path,
        "import pydantic_settings\n\n"
        "class Settings(pydantic_settings.BaseSettings):\n"
        "    db_host: str = 'db'\n"
        "    db_password: str = 'pw'\n"
        "    admin_password: str = 'other'\n",
        "    depends_on: [db]\n",
        "  db:\n    image: postgres:16\n    environment: {POSTGRES_PASSWORD: pw}\n",
    )
    adopted = run_hotmode(tmp_path, "init", "--from", ".")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    config = load_config(tmp_path / "hotmode.toml")
    db = next(s for s in config.services if s.name == "db")
    # Only the password that is the companion's: ADMIN_PASSWORD is the app's own.
    assert dict(db.spec("prod").app_env) == {
        "DB_HOST": "{host}",
        "DB_PASSWORD": "{secret:postgres_password}",
    }
    assert "app: DB_PASSWORD (its settings default it to db's password)" in adopted.stdout
    rendered = run_hotmode(tmp_path, "render", "--adopt")
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    compose = (tmp_path / "deployment" / "docker-compose.yml").read_text()
    assert "DB_PASSWORD=postgres_password" in compose  # filled from the file at start
    assert "'pw'" not in compose and ": pw" not in compose


def test_a_secret_is_filled_whole_or_inside_its_url() -> None:
    env = {
        "DB_PASSWORD": "{secret:db}",
        "URL": "postgres://u:{secret:db}@h:1/d",
        "X": "{secret:db}x",
    }
    filled = fill_url_secrets(env, lambda name: "s/3cr@t")
    assert filled == {
        "DB_PASSWORD": "s/3cr@t",
        "URL": "postgres://u:s%2F3cr%40t@h:1/d",
        "X": "{secret:db}x",  # not a whole value, not a URL's password: left as it is
    }
    plain, wanted = split_url_secrets(env)
    assert plain["DB_PASSWORD"] == "" and plain["URL"] == "postgres://u@h:1/d"
    assert wanted.split() == ["DB_PASSWORD=db", "URL=db"]
