"""The app's own settings that name a companion's Compose host (a pydantic-settings default, a
`getenv` default) are pointed at where the companion runs, as the variable those settings read;
a URL naming the host that no variable overrides is named by file and line."""

from __future__ import annotations

from pathlib import Path

from helpers import run_hotmode
from hotmode.config import load_config


def test_settings_defaults_naming_a_companion_are_carried_as_their_own_variables(
    tmp_path: Path,
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "app" / "settings.py").write_text(
        "import os\n"
        "import pydantic_settings\n\n"
        "class Settings(pydantic_settings.BaseSettings):\n"
        "    model_config = pydantic_settings.SettingsConfigDict(env_prefix='shop_')\n"
        "    db_host: str = 'db'\n"
        "    db_port: int = 5432\n"
        "    pool: int = 5\n\n"
        "CACHE = os.getenv('CACHE_URL', 'redis://redis:6379/0')\n"
        "REPORTS = 'postgresql://reports@db:5432/reports'\n"
    )
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n"
        "  api:\n    build: .\n    ports: ['8000:8000']\n"
        "    command: uvicorn app.main:app --host 0.0.0.0 --port 8000\n"
        "    depends_on: [db, redis]\n"
        "    environment: {DATABASE_URL: 'postgresql://db:pw@db/shop'}\n"
        "  db:\n    image: postgres:16\n    environment: {POSTGRES_PASSWORD: pw}\n"
        "  redis:\n    image: redis:7\n"
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
