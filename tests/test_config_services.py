"""Companion services in the declaration: what `[services.NAME]` loads into, and every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotmode.config import load_config
from hotmode.services import Healthcheck, Port, Volume
from test_config import MINIMAL, declare, load_error

DB = MINIMAL + '[services.db]\nimage = "postgres:16"\n'


def test_the_gateway_declares_postgres_with_per_mode_settings(gateway: Path) -> None:
    config = load_config(gateway / "hotmode.toml")
    (postgres,) = config.services

    assert postgres.name == "postgres"
    prod, dev = postgres.prod, postgres.dev
    assert prod.image == dev.image == "postgres:16-bookworm"
    assert prod.user == "postgres"
    assert prod.port == 5432
    assert prod.volumes == (Volume("pgdata", "/var/lib/postgresql/data"),)
    assert prod.mounts == ((gateway / "database" / "init", "/docker-entrypoint-initdb.d"),)
    assert prod.healthcheck is not None and prod.healthcheck.test[0] == "pg_isready"
    # Published in dev only, on 127.0.0.1; the password has a value in dev only.
    assert prod.ports == ()
    assert dev.ports == (Port("127.0.0.1", 5432, 5432),)
    assert prod.secrets == {"db_password": None}
    assert dev.secrets == {"db_password": "gateway-dev-only"}
    assert postgres.native is not None and postgres.native.user == "postgres"
    assert postgres.embedded["DATABASE_URL"].startswith("sqlite+aiosqlite:///")


def test_a_mode_table_merges_tables_and_replaces_the_rest(tmp_path: Path) -> None:
    path = declare(
        tmp_path,
        DB
        + """\
        environment = { A = "1", B = "2" }
        ports = ["5432"]
        healthcheck = { test = ["true"], interval = "1s" }
        [services.db.dev]
        environment = { B = "dev" }
        ports = ["10.0.0.1:15432:5432"]
        image = "postgres:17"
        """,
    )
    (db,) = load_config(path).services

    assert db.prod.environment == {"A": "1", "B": "2"}
    assert db.dev.environment == {"A": "1", "B": "dev"}
    assert db.dev.ports == (Port("10.0.0.1", 15432, 5432),)
    assert db.dev.image == "postgres:17"
    assert db.prod.healthcheck == Healthcheck(("true",), interval="1s")


def test_a_volume_shared_on_purpose_keeps_its_name(tmp_path: Path) -> None:
    path = declare(
        tmp_path, DB + 'volumes = { data = { target = "/d", name = "one", shared = true } }\n'
    )
    assert load_config(path).services[0].prod.volumes == (Volume("data", "/d", "one", True),)


BAD_SERVICES = {
    "unknown key": (DB + "restart = 1\n", 5, "services.db.restart: unknown key; allowed here: "),
    "unknown key in a mode": (
        DB + "[services.db.dev]\nnative = 1\n",
        6,
        "services.db.dev.native: unknown key",
    ),
    "named like the app service": (
        MINIMAL + '[services.backend]\nimage = "x"\n',
        3,
        "services.backend: 'backend' is the app's own service",
    ),
    "a bad port": (
        DB + 'ports = ["70000"]\n',
        5,
        "services.db.ports: '70000' is not a port",
    ),
    "a port with a host name": (
        DB + 'ports = ["localhost:1:2"]\n',
        5,
        "services.db.ports: 'localhost:1:2' is not a port",
    ),
    "a volume every mode would share": (
        DB + 'volumes = { data = { target = "/d", name = "data" } }\n',
        5,
        "services.db.volumes.data.name: every mode and edition would share volume 'data'",
    ),
    "neither image nor build": (
        MINIMAL + '[services.db]\nuser = "x"\n',
        3,
        "services.db: give exactly one of `image` and `build`",
    ),
    "a literal password in prod": (
        DB + 'environment = { POSTGRES_PASSWORD = "hunter2" }\n',
        5,
        "services.db.environment.POSTGRES_PASSWORD: a secret would be rendered into prod",
    ),
    "a password in a URL": (
        DB + 'port = 5432\napp_env = { URL = "postgresql://u:pw@{host}:{port}/db" }\n',
        6,
        "services.db.app_env.URL: a password in a URL would be rendered into prod",
    ),
    "a prod value for a secret": (
        DB + 'secrets = { pw = "x" }\n',
        5,
        "services.db.secrets: prod never has a value for a secret",
    ),
    "a dev value for an undeclared secret": (
        DB + '[services.db.dev]\nsecrets = { pw = "x" }\n',
        6,
        "services.db.dev.secrets.pw: not declared in `secrets`",
    ),
    "a missing init folder": (
        DB + 'mounts = { "init" = "/docker-entrypoint-initdb.d" }\n',
        5,
        "services.db.mounts.init: ",
    ),
    "a healthcheck with a bad interval": (
        DB + 'healthcheck = { test = ["true"], interval = "soon" }\n',
        5,
        "services.db.healthcheck.interval: 'soon' is not a duration",
    ),
    "{port} without a port": (
        DB + 'app_env = { URL = "pg://{host}:{port}" }\n',
        5,
        "services.db.app_env: {port} needs the service's `port`",
    ),
    "native without a command": (
        DB + "[services.db.native]\ninit = ['initdb']\n",
        5,
        "services.db.native: `command` is required",
    ),
    "a secret on a native command line": (
        DB + "secrets = ['pw']\n[services.db.native]\ncommand = ['db', '--password={secret:pw}']\n",
        7,
        "services.db.native.command: {secret:NAME} in a command line is readable by every local",
    ),
    "a native secret the service does not declare": (
        DB + "[services.db.native]\ncommand = ['db']\nenv = { PW = '{secret:pw}' }\n",
        7,
        "services.db.native.env.PW: {secret:pw} names no secret of the service",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SERVICES))
def test_a_bad_service_names_file_line_key_and_what_is_allowed(tmp_path: Path, case: str) -> None:
    text, line, expected = BAD_SERVICES[case]
    path = declare(tmp_path, text)

    message = load_error(path)

    assert message.startswith(f"{path}:{line}: {expected}"), message
