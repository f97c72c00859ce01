"""Which service is the app: one model of the roles services play, shared by every rule.

A Compose project is rarely the app alone: a database, a cache, a broker and a proxy sit beside
it, workers and one-shot jobs share its image. Rules about reload, source and revision are about
the app; the hardening rules are about everything. `classify` decides, for a merged `services:`
mapping, what each service is, and says why, so the report can show the judgement and a user
can overrule it (`--app NAME`, or the declaration's `service`):

- the declared app(s), if any; else
- a service that runs a Python web server (uvicorn, gunicorn, hypercorn, granian, daphne,
  `manage.py runserver`, `fastapi run|dev`, `flask run`, `hotmode run`) is the app;
- a task worker or scheduler (celery, rq, dramatiq, arq, huey) is a worker;
- a migration, a test runner or a service that runs once (`restart: "no"`) is a job;
- an official image of a database, cache, broker or proxy is a companion;
- a service built from source, or one that mounts source code, is the app;
- anything else (a frontend, a tool) is other, and only the hardening rules apply to it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from hotmode.audit import commands
from hotmode.audit.build import read_dockerfile


class Kind(enum.Enum):
    """What a service is to the audit."""

    APP = "app"
    WORKER = "worker"
    JOB = "job"
    COMPANION = "companion"
    OTHER = "other"


@dataclass(frozen=True)
class Role:
    """A service's kind, and the evidence it was judged by (one short phrase)."""

    kind: Kind
    reason: str

    @property
    def is_app(self) -> bool:
        return self.kind is Kind.APP


# Official (and widely used vendor) images of what sits beside an app, by repository name.
COMPANIONS = {
    # databases
    "postgres", "postgresql", "postgis", "timescaledb", "mysql", "mariadb", "mongo", "mongodb",
    "cassandra", "couchdb", "elasticsearch", "opensearch", "clickhouse-server", "clickhouse",
    "influxdb", "neo4j", "cockroach", "minio", "qdrant", "weaviate", "chroma", "milvus",
    # caches
    "redis", "redis-stack", "valkey", "keydb", "memcached", "dragonfly",
    # brokers
    "rabbitmq", "kafka", "cp-kafka", "zookeeper", "cp-zookeeper", "nats", "eclipse-mosquitto",
    "activemq", "artemis", "pulsar",
    # proxies
    "nginx", "traefik", "caddy", "haproxy", "envoy", "httpd", "varnish", "openresty",
    # tools beside a backend
    "mailhog", "mailpit", "adminer", "pgadmin4", "flower", "localstack", "jaeger",
    "prometheus", "grafana", "otel-collector", "opentelemetry-collector",
}  # fmt: skip
# The programs companions run, when a local build hides which image they are.
COMPANION_PROGRAMS = {
    "postgres", "redis-server", "valkey-server", "mysqld", "mariadbd", "mongod", "memcached",
    "rabbitmq-server", "nginx", "traefik", "caddy", "haproxy", "envoy", "httpd",
}  # fmt: skip
# Runtimes that are not Python: a service built from one is not the Python app.
NOT_PYTHON = {
    "node", "bun", "deno", "golang", "rust", "ruby", "php", "openjdk", "eclipse-temurin",
    "amazoncorretto", "dotnet", "sdk", "aspnet", "nginx", "httpd", "caddy",
}  # fmt: skip
# Where images usually keep an app's code: a bind mount there is the source.
CODE_TARGETS = {"/app", "/code", "/src", "/usr/src/app", "/srv", "/srv/app", "/opt/app", "/web"}


def repository(image: str) -> str:
    """The last path part of an image reference, without tag or digest: `postgres`, `kafka`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()


def _companion(image: str | None) -> bool:
    if not image:
        return False
    name = repository(image)
    prefixes = ("postgres", "redis", "rabbitmq", "mysql", "mongo")
    return name in COMPANIONS or name.startswith(prefixes) or "/mssql/" in image


def build_of(
    service: Mapping[str, Any], services: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The `build:` that makes a service's image: its own, or that of another service of the
    project built into the same `image:` tag (a worker that reuses the web image)."""
    build = service.get("build")
    if isinstance(build, dict):
        return build
    image = service.get("image")
    for other in (services or {}).values():
        if isinstance(other, Mapping) and image and other.get("image") == image:
            found = other.get("build")
            if isinstance(found, dict):
                return found
    return None


def service_command(
    service: Mapping[str, Any], services: Mapping[str, Any] | None = None
) -> list[str]:
    """What a service runs: its `entrypoint` and `command`, else its Dockerfile's, as words."""
    argv = commands.command_words(service, "entrypoint") + commands.command_words(service)
    if argv:
        return argv
    build = build_of(service, services)
    if build is not None:
        dockerfile = read_dockerfile(build)
        if dockerfile is not None:
            return commands.words(dockerfile.command(build.get("target")))
    return []


def _base_image(service: Mapping[str, Any], services: Mapping[str, Any]) -> str | None:
    build = build_of(service, services)
    if build is None:
        image = service.get("image")
        return image if isinstance(image, str) else None
    dockerfile = read_dockerfile(build)
    if dockerfile is None:
        return None
    return dockerfile.base_image(build.get("target"), build.get("args") or {})


def _code_mount(service: Mapping[str, Any]) -> str | None:
    """The host folder a service mounts where code lives, if it mounts one writable."""
    working_dir = str(service.get("working_dir") or "").rstrip("/")
    for item in service.get("volumes") or []:
        if not isinstance(item, dict) or item.get("type") != "bind" or item.get("read_only"):
            continue
        target = str(item.get("target") or "").rstrip("/")
        if target and (target in CODE_TARGETS or target == working_dir):
            return str(item.get("source") or "")
    return None


def _restarts_never(service: Mapping[str, Any]) -> bool:
    deploy = service.get("deploy")
    policy = deploy.get("restart_policy") if isinstance(deploy, dict) else None
    condition = policy.get("condition") if isinstance(policy, dict) else None
    return service.get("restart") == "no" or condition == "none"


def _named_like_companion(image: str | None, argv: list[str]) -> str | None:
    """A companion's name in a local image's tag (`acme-postgres:16`) or its program
    (`redis-server`), for companions built rather than pulled."""
    programs = commands.programs(argv)
    if programs and programs[0].name in COMPANION_PROGRAMS:
        return f"runs {programs[0].name}"
    tokens = set(re.split(r"[-_.]", repository(image))) if image else set()
    found = sorted(tokens & COMPANIONS)
    return f"{image}, a {found[0]} image" if found else None


def judge(service: Mapping[str, Any], services: Mapping[str, Any] | None = None) -> Role:
    """The role one service plays, from its own shape (no declaration); `services`, the
    project's others, say which images the project builds."""
    services = services or {}
    image = service.get("image") if isinstance(service.get("image"), str) else None
    built = build_of(service, services) is not None
    base = _base_image(service, services)
    if _companion(image if not built else base):
        return Role(Kind.COMPANION, f"{'built from ' if built else ''}{base or image}")
    argv = service_command(service, services)
    named = _named_like_companion(image, argv)
    if named and not (commands.server(argv) or commands.worker(argv) or commands.job(argv)):
        return Role(Kind.COMPANION, named)
    found = commands.server(argv)
    if found:
        return Role(Kind.APP, f"runs {found}")
    found = commands.worker(argv)
    if found:
        return Role(Kind.WORKER, f"runs {found}")
    found = commands.job(argv)
    if found:
        return Role(Kind.JOB, f"runs {found}")
    if _restarts_never(service):
        return Role(Kind.JOB, 'restart: "no", runs once')
    if base and repository(base) in NOT_PYTHON:
        return Role(Kind.OTHER, f"{'built from ' if built else ''}{base}, not Python")
    if built:
        return Role(Kind.APP, "built from source")
    mounted = _code_mount(service)
    if mounted:
        return Role(Kind.APP, f"mounts {PurePosixPath(mounted).name or mounted} as its code")
    return Role(Kind.OTHER, "not built, no source mounted, no Python server")


def classify(
    services: Mapping[str, Any], declared_app: str | Collection[str] | None = None
) -> dict[str, Role]:
    """Every service's role. `declared_app` (the declaration's service, or `--app`) wins."""
    declared = {declared_app} if isinstance(declared_app, str) else set(declared_app or ())
    roles: dict[str, Role] = {}
    for name, service in services.items():
        if not isinstance(service, Mapping):
            continue
        if name in declared:
            roles[str(name)] = Role(Kind.APP, "declared")
            continue
        role = judge(service, services)
        if declared and role.is_app:
            role = Role(Kind.OTHER, f"{role.reason}, but the app is {', '.join(sorted(declared))}")
        roles[str(name)] = role
    return roles
