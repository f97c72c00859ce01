"""What the official companion images need to run hardened, and natively, as adoption writes it.

A database, cache, broker or proxy image is started by its own entrypoint, which expects to write
in a few places and to run as a given user. With a read-only root, all capabilities dropped and no
new privileges (what hotmode renders in prod), it starts only when the declaration gives it: its
user, a tmpfs for each runtime folder, a data volume where it keeps its data, and a health check
the app can wait on. Natively, Debian's packages provide PostgreSQL, MariaDB and Redis (Valkey on
newer releases): the command that runs each in the foreground on `{port}` with its data in
`{data}`. An image not listed here is unknown: adoption keeps its settings as they were and says
why, rather than harden something it cannot start.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hotmode.audit.names import repository

Env = Mapping[str, str]
TMP = "/tmp"  # noqa: S108 - a tmpfs inside the container


@dataclass(frozen=True)
class Known:
    """One image family: what it needs, read off the service's environment where it varies."""

    family: str
    data: str | None = None
    port: int | None = None
    user: str | None = None
    tmpfs: tuple[str, ...] = (TMP,)
    healthcheck: Callable[[Env], list[str]] | None = None
    native: Callable[[Env], dict[str, Any] | None] | None = None
    # The image reads NAME_FILE for a secret NAME (the official images' `file_env` convention).
    secret_files: bool = False
    read_only: bool = True
    cap_add: tuple[str, ...] = ()
    why: Mapping[str, str] = field(default_factory=dict)


def _createdb(user: str, database: str) -> str:
    """A shell line that creates `database` unless it can be connected to: safe at every start
    (a database that exists is left alone; any other failure shows in createdb's error)."""
    connect = f"--host=127.0.0.1 --port={{port}} --username={shlex.quote(user)}"
    name = shlex.quote(database)
    return (
        f"psql {connect} --dbname={name} --no-psqlrc --command='SELECT 1' >/dev/null 2>&1 "
        f"|| createdb {connect} {name}"
    )


def _postgres_native(env: Env) -> dict[str, Any]:
    user = env.get("POSTGRES_USER") or "postgres"
    database = env.get("POSTGRES_DB") or user
    ready = ["pg_isready", "--host=127.0.0.1", "--port={port}", f"--username={user}", "--quiet"]
    # With a password secret, as the image does: scram-sha-256 on 127.0.0.1, the password the
    # mode's own generated secret (hotmode.native.secret_store), so no other local user gets in.
    # Without one the team chose trust (POSTGRES_HOST_AUTH_METHOD): kept, on 127.0.0.1 only.
    head, found, password = (env.get("POSTGRES_PASSWORD_FILE") or "").rpartition("{secrets}/")
    password = password if found and not head and "/" not in password else ""
    init = ["initdb", "--pgdata={data}", f"--username={user}", "--auth=trust", "--encoding=UTF8"]
    secret: dict[str, Any] = {}
    if password:
        secret["env"] = {"PGPASSWORD": f"{{secret:{password}}}"}
        init = [
            "sh",
            "-c",
            'printf %s "$PGPASSWORD" | initdb --pgdata="$1" '
            f"--username={shlex.quote(user)} --pwfile=/dev/stdin "
            "--auth-host=scram-sha-256 --auth-local=peer --encoding=UTF8",
            "sh",
            "{data}",
        ]
    return {
        "path": ["/usr/lib/postgresql/*/bin"],
        **secret,
        "init": init,
        "command": ["postgres", "-D", "{data}", "-p", "{port}", "-c",
                    "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
        "ready": ready,
        # At every start, so an interrupted first start heals: create the database if missing.
        "setup": [] if database == user and user == "postgres" else [
            ["sh", "-c", _createdb(user, database)]
        ],
        # A new data folder's /docker-entrypoint-initdb.d scripts, as the image runs them.
        "init_scripts": ["psql", "--host=127.0.0.1", "--port={port}", f"--username={user}",
                         f"--dbname={database}", "--no-psqlrc", "--quiet",
                         "--set=ON_ERROR_STOP=1"],
        "user": "postgres",
    }  # fmt: skip


def _secret_of(env: Env, *names: str) -> str:
    """The secret a `NAME_FILE = "{secrets}/SECRET"` of the first of `names` declared reads."""
    for name in names:
        head, found, secret = (env.get(f"{name}_FILE") or "").rpartition("{secrets}/")
        if found and not head and secret and "/" not in secret:
            return secret
    return ""


def _sql_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "''")


def _mariadb_native(env: Env) -> dict[str, Any] | None:
    """The image's contract natively, with grant tables: root has the mode's generated password
    (the declared root secret, else the app user's), set offline before the server ever
    listens; the app's user, when declared, its own. No other local user gets in. Without a
    password secret there is no native command: any local user would get in (None)."""
    database = env.get("MARIADB_DATABASE") or env.get("MYSQL_DATABASE")
    user = env.get("MARIADB_USER") or env.get("MYSQL_USER")
    password = _secret_of(env, "MARIADB_PASSWORD", "MYSQL_PASSWORD")
    root = _secret_of(env, "MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD") or password
    if not root:
        return None
    socket = "--socket={data}/mysqld.sock"
    # The clients read MYSQL_PWD: the password is in no command line, only in the environment.
    secrets = {"MYSQL_PWD": f"{{secret:{root}}}"}
    init = (
        'mariadb-install-db --datadir="$1" --skip-test-db --auth-root-authentication-method=normal '
        ">/dev/null && printf \"FLUSH PRIVILEGES;\\nALTER USER 'root'@'localhost' IDENTIFIED BY "
        '\'%s\';\\n" "$MYSQL_PWD" | mariadbd --bootstrap --datadir="$1" --skip-networking '
        '--log-error="$1/bootstrap.err"'
    )
    setup: list[list[str]] = []
    if database:
        setup.append(["mariadb", socket, "--user=root", "-e",
                      f"CREATE DATABASE IF NOT EXISTS `{database}`"])  # fmt: skip
    if user and password:
        secrets["MARIADB_PASSWORD"] = f"{{secret:{password}}}"
        name = _sql_quote(user)
        grant = f"GRANT ALL ON `{database}`.* TO '{name}'@'%';" if database else ""
        sql = (
            f"CREATE USER IF NOT EXISTS '{name}'@'%' IDENTIFIED BY '%s'; "
            f"ALTER USER '{name}'@'%' IDENTIFIED BY '%s'; {grant}\\n"
        ).replace("'%'", "'%%'")
        # The statements as an argument (no secret in them), the password from the environment.
        pipe = 'printf "$2" "$MARIADB_PASSWORD" "$MARIADB_PASSWORD" | mariadb --socket="$1" -uroot'
        setup.append(["sh", "-c", pipe, "sh", "{data}/mysqld.sock", sql])
    return {
        "path": ["/usr/sbin", "/usr/bin"],
        "env": secrets,
        "init": ["sh", "-c", init, "sh", "{data}"],
        "command": ["mariadbd", "--datadir={data}", "--port={port}", "--bind-address=127.0.0.1",
                    socket, "--pid-file={data}/mysqld.pid"],
        "ready": ["mariadb-admin", socket, "--user=root", "ping"],
        "setup": setup,
        "init_scripts": ["mariadb", socket, "--user=root", *([database] if database else [])],
        "user": "mysql",
    }  # fmt: skip


def _redis_native(program: str) -> Callable[[Env], dict[str, Any]]:
    def native(env: Env) -> dict[str, Any]:
        return {
            "path": ["/usr/bin"],
            "command": [program, "--port", "{port}", "--bind", "127.0.0.1", "--dir", "{data}",
                        "--save", "60 1", "--daemonize", "no", "--protected-mode", "yes"],
            "user": "redis" if program == "redis-server" else "valkey",
            # It rewrites its process title (and environment) once started.
            "retitles": True,
        }  # fmt: skip

    return native


def _postgres_health(env: Env) -> list[str]:
    user = env.get("POSTGRES_USER") or "postgres"
    return ["pg_isready", f"--username={user}", f"--dbname={env.get('POSTGRES_DB') or user}",
            "--host=127.0.0.1", "--quiet"]  # fmt: skip


_PROXY = {"CL-0007": "a proxy's entrypoint writes its configuration at start"}

KNOWN: dict[str, Known] = {
    "postgres": Known(
        "postgres", "/var/lib/postgresql/data", 5432, "postgres", (TMP, "/var/run/postgresql"),
        _postgres_health, _postgres_native, secret_files=True,
    ),
    "mariadb": Known(
        "mariadb", "/var/lib/mysql", 3306, "mysql", (TMP, "/run/mysqld"),
        lambda env: ["healthcheck.sh", "--connect", "--innodb_initialized"], _mariadb_native,
        secret_files=True,
    ),
    "mysql": Known(
        "mysql", "/var/lib/mysql", 3306, "mysql", (TMP, "/var/run/mysqld"),
        lambda env: ["mysqladmin", "ping", "--host=127.0.0.1", "--silent"], _mariadb_native,
        secret_files=True,
    ),
    "redis": Known(
        "redis", "/data", 6379, "redis", (TMP,), lambda env: ["redis-cli", "ping"],
        _redis_native("redis-server"),
    ),
    "valkey": Known(
        "valkey", "/data", 6379, "valkey", (TMP,), lambda env: ["valkey-cli", "ping"],
        _redis_native("valkey-server"),
    ),
    "mongo": Known(
        "mongo", "/data/db", 27017, "mongodb", (TMP,),
        lambda env: ["mongosh", "--quiet", "--eval", "db.adminCommand('ping').ok"],
        secret_files=True,
    ),
    "rabbitmq": Known(
        "rabbitmq", "/var/lib/rabbitmq", 5672, "rabbitmq", (TMP,),
        lambda env: ["rabbitmq-diagnostics", "-q", "ping"], read_only=False,
        why={"CL-0007": "rabbitmq's entrypoint writes its configuration under /etc at start"},
    ),
    # Proxies start as root to bind low ports and drop to their own user themselves.
    "nginx": Known(
        "nginx", None, 80, None, (TMP, "/var/cache/nginx", "/var/run"),
        cap_add=("CHOWN", "SETUID", "SETGID", "NET_BIND_SERVICE"), read_only=False, why=_PROXY,
    ),
    "caddy": Known(
        "caddy", "/data", 80, None, (TMP, "/config"), cap_add=("NET_BIND_SERVICE",),
    ),
    "traefik": Known("traefik", None, 80, None, (TMP,), cap_add=("NET_BIND_SERVICE",)),
    "haproxy": Known("haproxy", None, 80, "haproxy", (TMP, "/var/run")),
}  # fmt: skip
_ALIASES = {
    "postgresql": "postgres", "postgis": "postgres", "timescaledb": "postgres",
    "mongodb": "mongo", "redis-stack": "redis", "openresty": "nginx",
}  # fmt: skip


_FAMILIES = ("postgres", "redis", "mariadb", "mysql", "mongo", "rabbitmq")
_EDITIONS = {"server", "stack", "community", "enterprise", "oss", "ce", "ee"}


def known(image: str) -> Known | None:
    """What hotmode knows of `image`'s family, or None (adopted as it was)."""
    name = repository(image)
    name = _ALIASES.get(name, name)
    if name in KNOWN:
        return KNOWN[name]
    # `redis/redis-stack-server`, `mysql/mysql-server`: the family's server under another
    # edition's name. A tool named after the family (redis-commander, mongo-express,
    # postgres-exporter) is not its server: it keeps its own settings.
    family, _, rest = name.partition("-")
    family = _ALIASES.get(family, family)
    if family in _FAMILIES and rest and set(rest.split("-")) <= _EDITIONS:
        return KNOWN[family]
    return None
