"""Adoption moves no data: every companion keeps its own volume, by the name each mode x edition
used; dev on prod's data gets its own unless asked; no volume is mounted by two services; the
declaration refuses what would mix data. Several companion kinds (tests/fixtures/adopt-stack)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import REPO
from helpers import run_hotmode
from hotmode.compose import layout
from hotmode.compose.engine import find_compose
from hotmode.config import load_config
from hotmode.errors import ConfigError
from hotmode.modes import all_selections

STACK = REPO / "tests" / "fixtures" / "adopt-stack"


def _mounted(root: Path) -> dict[str, set[tuple[str, str, str]]]:
    """Each data volume's real name -> the (service, mode, edition) that mount it, rendered."""
    config = load_config(root / "hotmode.toml")
    compose = find_compose()
    users: dict[str, set[tuple[str, str, str]]] = {}
    for selection in all_selections(config):
        files = layout.compose_files(config, selection)
        document = compose.config_dict(files, layout.project_name(config, selection))
        names = {k: v["name"] for k, v in (document.get("volumes") or {}).items()}
        for service, spec in document["services"].items():
            for volume in spec.get("volumes") or []:
                if volume["type"] == "volume":
                    where = (service, selection.mode, selection.edition)
                    users.setdefault(names[volume["source"]], set()).add(where)
    return users


def test_every_companion_keeps_its_own_data_per_mode_and_edition(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    shutil.copytree(STACK, root)
    result = run_hotmode(root, "init", "--from", "compose")
    # Not everything is carried (the app's uploads volume), and init says so with exit 1.
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "not carried app: data volume stack_uploads" in out
    assert (
        "dev enterprise: db's volume stack_pg_enterprise is also db prod enterprise's; "
        "dev enterprise gets a volume of its own"
    ) in out
    assert "search: elasticsearch:8.14.0 is an image hotmode does not know: kept as it was" in out
    assert "health /healthz: the app's own route" in out
    adopted = run_hotmode(root, "render", "--adopt")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr

    users = _mounted(root)
    for real, places in users.items():
        assert len(places) == 1, f"{real} is mounted by {sorted(places)}"
    owner = {next(iter(places)): real for real, places in users.items()}
    assert owner["db", "prod", "core"] == "stack_pg_core"
    assert owner["db", "prod", "enterprise"] == "stack_pg_enterprise"
    assert owner["db", "dev", "core"] == "stack_pg_dev"
    assert owner["db", "dev", "enterprise"] == "stack-dev-enterprise_pgdata"
    for service in ("cache", "sql", "broker", "search"):
        assert owner[service, "prod", "core"] == f"stack_{users_key(service)}"
    # Mongo kept its data in the container: it gets a volume of its own in every mode.
    assert {("docs", m, e) for m in ("prod", "dev") for e in ("core", "enterprise")} <= set(owner)

    checked = run_hotmode(root, "check", "--all", "--fail-on", "high")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def users_key(service: str) -> str:
    return {"cache": "redisdata", "sql": "dbdata", "broker": "rabbitdata", "search": "esdata"}[
        service
    ]


def test_share_data_keeps_dev_on_prods_volume_when_asked(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    shutil.copytree(STACK, root)
    run_hotmode(root, "init", "--from", "compose", "--share-data")
    config = load_config(root / "hotmode.toml")
    db = next(c for c in config.services if c.name == "db")
    (dev,) = db.dev.volumes
    assert dev.shared
    assert dev.names["enterprise"] == "stack_pg_enterprise"


BASE = """\
name = "app"
[services.db]
image = "postgres:16"
[services.cache]
image = "redis:7"
"""


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            '[services.db.prod]\nvolumes = { data = "/var/lib/postgresql/data" }\n'
            '[services.cache.prod]\nvolumes = { data = "/data" }\n',
            "volume 'data' is also db's",
        ),
        (
            '[services.db.prod]\nvolumes = { a = { target = "/d", names = { default = "x" } } }\n'
            '[services.db.dev]\nvolumes = { a = { target = "/d", names = { default = "x" } } }\n',
            "volume 'x' would hold the data of db dev default and of db prod default",
        ),
        (
            '[services.db.prod]\nvolumes = { a = { target = "/d", names = { saas = "x" } } }\n',
            "edition 'saas' is not declared",
        ),
    ],
)
def test_the_declaration_refuses_one_volume_in_two_places(
    tmp_path: Path, extra: str, problem: str
) -> None:
    (tmp_path / "hotmode.toml").write_text(BASE + extra)
    with pytest.raises(ConfigError, match=problem):
        load_config(tmp_path / "hotmode.toml")


GATEWAY = REPO / "tests" / "fixtures" / "adopt-gateway"


@pytest.mark.parametrize("share", [False, True])
def test_the_gateways_real_layout_keeps_every_volume_name(tmp_path: Path, share: bool) -> None:
    """Prod core, prod enterprise and dev each name their database's volume; dev enterprise
    reuses prod enterprise's. Every name is kept per mode x edition, the hazard is named, and dev
    enterprise gets its own unless --share-data; dev keeps dev's own password."""
    root = tmp_path / "gw"
    shutil.copytree(GATEWAY, root)
    result = run_hotmode(root, "init", "--from", "deployment", *(["--share-data"] * share))
    assert result.returncode == 0, result.stdout + result.stderr
    hazard = (
        "dev enterprise: postgres's volume gw_postgres_enterprise is also postgres prod "
        "enterprise's; "
    )
    assert hazard in result.stdout
    config = load_config(root / "hotmode.toml")
    assert "DATABASE_URL" not in dict(config.dev.env)  # carried by the companion, no password
    assert run_hotmode(root, "render", "--adopt").returncode == 0
    assert (root / "deployment" / "dev-secrets" / "postgres_password").read_text().strip() == (
        "gw-dev-pw"
    )
    users = _mounted(root)
    owner = {place: real for real, places in users.items() for place in places}
    assert owner["postgres", "prod", "core"] == "gw_postgres_core"
    assert owner["postgres", "prod", "enterprise"] == "gw_postgres_enterprise"
    assert owner["postgres", "dev", "core"] == "gw_postgres_dev"
    if share:
        assert owner["postgres", "dev", "enterprise"] == "gw_postgres_enterprise"
    else:
        assert owner["postgres", "dev", "enterprise"] == "gw-dev-enterprise_postgres_data"
        assert all(len(places) == 1 for places in users.values()), users
    checked = run_hotmode(root, "check", "--all", "--fail-on", "high")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert " unknown " not in checked.stdout  # hotmode's own launcher hides no command


def test_a_lone_dev_file_keeps_dev_data_and_prod_gets_its_own(tmp_path: Path) -> None:
    """One Compose file, dev style (the app mounts its source): dev keeps the volume it used;
    prod, derived, would get the same default name (the old project was the folder, and so is
    the app's name) and gets its own instead. A URL naming the companion's host with no port
    gets the port too: natively the companion runs wherever a port is free."""
    root = tmp_path / "notes"
    (root / "src" / "app").mkdir(parents=True)
    (root / "src" / "app" / "main.py").write_text(
        "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get('/ping')\ndef ping():\n"
        "    return {'ping': 'pong'}\n"
    )
    (root / "src" / "requirements.txt").write_text("fastapi\n")
    (root / "src" / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY . /app\n")
    (root / "docker-compose.yml").write_text(
        "services:\n"
        "  web:\n"
        "    build: ./src\n"
        "    command: uvicorn app.main:app --reload --host 0.0.0.0 --port 8000\n"
        "    volumes: ['./src/:/usr/src/app/']\n"
        "    ports: ['8002:8000']\n"
        "    environment: ['DATABASE_URL=postgresql://u:pw@db/notes_dev']\n"
        "  db:\n"
        "    image: postgres:15.1-alpine\n"
        "    volumes: ['postgres_data:/var/lib/postgresql/data/']\n"
        "    environment: [POSTGRES_USER=u, POSTGRES_PASSWORD=pw, POSTGRES_DB=notes_dev]\n"
        "volumes:\n"
        "  postgres_data:\n"
    )
    result = run_hotmode(root, "init", "--from", ".")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "prod default gets its own, notes-prod_postgres_data" in result.stdout
    config = load_config(root / "hotmode.toml")
    db = next(c for c in config.services if c.name == "db")
    assert db.spec("prod").app_env["DATABASE_URL"].endswith("@{host}:{port}/notes_dev")
    assert run_hotmode(root, "render", "--adopt").returncode == 0
    users = _mounted(root)
    assert users["notes_postgres_data"] == {("db", "dev", "default")}
    assert users["notes-prod_postgres_data"] == {("db", "prod", "default")}
