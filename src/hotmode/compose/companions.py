"""Rendering companion services into each mode x edition's Compose documents. Pure.

Every companion gets, per mode and edition, its own container name and its own data volumes
(`<project>_<volume>`), so dev data never touches prod data, unless the declaration shares a
volume on purpose. Prod hardens it as far as the image allows; what the image cannot take is
written into the service's `x-hotmode-waivers`, which the rendered file shows and `check`
reports as waived. Secrets are files (`deployment/secrets/NAME`) mounted at
`/run/secrets/NAME`; dev may use a rendered dev-only file instead (`deployment/dev-secrets/`).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hotmode.config import Config
from hotmode.services import URL_SECRET, Companion, ServiceSpec, without_secrets

WAIVERS = "x-hotmode-waivers"
LABEL = "hotmode.companion"


def container_name(project: str, companion: str) -> str:
    return f"{project}-{companion}"


SECRETS_DIR = "/run/secrets"


def secret_names(config: Config) -> list[str]:
    """Every secret the companions declare, in order, once."""
    return list(dict.fromkeys(n for c in config.services for n in c.prod.secrets))


def dev_secret_values(config: Config) -> dict[str, str]:
    """The dev-only values of the secrets that have one."""
    values: dict[str, str] = {}
    for companion in config.services:
        for name, value in companion.dev.secrets.items():
            if value is not None:
                values.setdefault(name, value)
    return values


URL_SECRETS_VARIABLE = "HOTMODE_URL_FILES"
# Runs before the app's server in Docker: puts each secret file's content, URL-quoted, back into
# the URL it was taken from (or as the whole value, unquoted), then becomes the server. No
# password is ever written into a Compose file, and the app reads the complete URL (or password)
# it always read. Plain Python: any image has it.
URL_SECRETS_LAUNCHER = (
    "import os, sys, urllib.parse as q\n"
    f"for item in os.environ.pop('{URL_SECRETS_VARIABLE}', '').split():\n"
    "    key, name = item.split('=')\n"
    f"    secret = open('{SECRETS_DIR}/' + name).read().rstrip('\\r\\n')\n"
    "    head, at, tail = os.environ.get(key, '').partition('@')\n"
    "    os.environ[key] = head + ':' + q.quote(secret, safe='') + '@' + tail if at else secret\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def split_url_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The environment with each `:{secret:NAME}@` taken out of its URL, and the launcher's
    `VARIABLE=NAME ...` list that puts the secrets back at start."""
    plain: dict[str, str] = {}
    wanted = []
    for key, value in env.items():
        match = URL_SECRET.search(value)
        if match:
            wanted.append(f"{key}={match.group('name')}")
            value = without_secrets(value)
        plain[key] = value
    return plain, " ".join(wanted)


def fill_url_secrets(env: Mapping[str, str], read: Callable[[str], str]) -> dict[str, str]:
    """The environment with each `{secret:NAME}` of a URL replaced by the secret, URL-quoted
    (a native app reads its files here, on the host)."""
    return {
        key: URL_SECRET.sub(
            lambda m: (
                ":" + urllib.parse.quote(read(m.group("name")), safe="") + "@"
                if m.group("url")
                else read(m.group("name"))
            ),
            value,
        )
        for key, value in env.items()
    }


def secret_file(config: Config, mode: str, name: str) -> Path:
    """Where a mode reads a secret: dev's rendered dev-only file where it has one."""
    dev_only = mode == "dev" and name in dev_secret_values(config)
    return config.deployment / (DEV_SECRETS if dev_only else "secrets") / name


def launch(command: list[str], secrets: str) -> list[str]:
    """The app's command, behind the launcher when its URLs carry secrets."""
    return ["python", "-c", URL_SECRETS_LAUNCHER, *command] if secrets else command


def companion_environment(
    companion: Companion, mode: str, host: str, port: int | None, secrets: str = SECRETS_DIR
) -> dict[str, str]:
    """What the app is told about one companion: `{host}`, `{port}` and `{secrets}` filled."""
    values = {"{host}": host, "{port}": str(port), "{secrets}": secrets}
    env = {}
    for name, value in companion.spec(mode).app_env.items():
        for key, filled in values.items():
            value = value.replace(key, filled)
        env[name] = value
    return env


def app_environment(config: Config, mode: str) -> dict[str, str]:
    """The app's environment for its companions in Compose: each by its service name."""
    env: dict[str, str] = {}
    for companion in config.services:
        spec = companion.spec(mode)
        env.update(companion_environment(companion, mode, companion.name, spec.port))
    return env


def _environment(spec: ServiceSpec) -> dict[str, str]:
    return {n: v.replace("{secrets}", SECRETS_DIR) for n, v in spec.environment.items()}


def _healthcheck(spec: ServiceSpec) -> dict[str, Any] | None:
    check = spec.healthcheck
    if check is None:
        return None
    return {
        "test": ["CMD", *check.test],
        "interval": check.interval,
        "timeout": check.timeout,
        "retries": check.retries,
        "start_period": check.start_period,
    }


def _volumes(config: Config, spec: ServiceSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"type": "volume", "source": volume.key, "target": volume.target} for volume in spec.volumes
    ]
    for source, target in spec.mounts:
        relative = os.path.relpath(source, config.deployment).replace(os.sep, "/")
        volumes.append(
            {
                "type": "bind",
                "source": relative,
                "target": target,
                "read_only": True,
                "bind": {"create_host_path": False},
            }
        )
    return volumes


def _waivers(spec: ServiceSpec) -> dict[str, str]:
    waivers = dict(spec.waivers)
    if not spec.hardened:
        why = "an image hotmode does not know runs as it was adopted"
        return {"CL-0003": why, "CL-0006": why, "CL-0007": why, **waivers}
    if not spec.read_only:
        waivers["CL-0007"] = "the image writes outside its volumes; read-only root declined"
    if spec.cap_add:
        waivers["CL-0006"] = f"the image needs {', '.join(spec.cap_add)} after cap_drop ALL"
    return waivers


def _labels(config: Config, name: str, mode: str, edition: str) -> dict[str, str]:
    return {
        "hotmode.app": config.name,
        "hotmode.mode": mode,
        "hotmode.edition": edition,
        LABEL: name,
    }


def prod_service(
    config: Config, companion: Companion, project: str, edition: str
) -> dict[str, Any]:
    """A companion in the base file: prod, hardened as far as the image allows."""
    spec = companion.prod
    service: dict[str, Any] = {}
    if spec.build is not None:
        build: dict[str, Any] = {
            "context": os.path.relpath(spec.build.context, config.deployment).replace(os.sep, "/")
        }
        if spec.build.dockerfile:
            build["dockerfile"] = spec.build.dockerfile
        service["build"] = build
    if spec.image is not None:
        service["image"] = spec.image
    service["container_name"] = container_name(project, companion.name)
    if spec.command is not None:
        service["command"] = list(spec.command)
    if spec.user is not None:
        service["user"] = spec.user
    if spec.environment:
        service["environment"] = _environment(spec)
    if spec.env_file:
        service["env_file"] = [{"path": spec.env_file, "required": False}]
    if spec.secrets:
        service["secrets"] = list(spec.secrets)
    if spec.ports:
        service["ports"] = [port.compose() for port in spec.ports]
    volumes = _volumes(config, spec)
    if volumes:
        service["volumes"] = volumes
    service["read_only"] = spec.read_only and spec.hardened
    if spec.tmpfs:
        service["tmpfs"] = list(spec.tmpfs)
    if spec.hardened:
        service["security_opt"] = ["no-new-privileges:true"]
        service["cap_drop"] = ["ALL"]
    if spec.cap_add and spec.hardened:
        service["cap_add"] = list(spec.cap_add)
    health = _healthcheck(spec)
    if health is not None:
        service["healthcheck"] = health
    service["deploy"] = {"resources": {"limits": {"memory": spec.memory, "cpus": spec.cpus}}}
    service["restart"] = "unless-stopped"
    service["logging"] = {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
    service["labels"] = _labels(config, companion.name, "prod", edition)
    waivers = _waivers(spec)
    if waivers:
        service[WAIVERS] = waivers
    return service


def overlay_service(
    config: Config,
    companion: Companion,
    project: str,
    mode: str,
    edition: str,
    override: type[list[Any]],
) -> dict[str, Any]:
    """A companion in an overlay: its names for `project`, and what `mode` changes from prod."""
    prod, spec = companion.prod, companion.spec(mode)
    service: dict[str, Any] = {"container_name": container_name(project, companion.name)}
    if spec.image != prod.image and spec.image is not None:
        service["image"] = spec.image
    if spec.command != prod.command and spec.command is not None:
        service["command"] = override(spec.command)
    if spec.user != prod.user and spec.user is not None:
        service["user"] = spec.user
    environment = _environment(spec)
    changed = {k: v for k, v in environment.items() if _environment(prod).get(k) != v}
    if changed:
        service["environment"] = changed
    if spec.ports != prod.ports:
        service["ports"] = override(port.compose() for port in spec.ports)
    if spec.volumes != prod.volumes or spec.mounts != prod.mounts:
        service["volumes"] = override(_volumes(config, spec))
    if spec.healthcheck != prod.healthcheck and spec.healthcheck is not None:
        service["healthcheck"] = _healthcheck(spec)
    service["labels"] = _labels(config, companion.name, mode, edition)
    return service


def volume_names(
    config: Config, project: str, mode: str, edition: str
) -> dict[str, dict[str, str]]:
    """The top-level `volumes:` entries of the companions' data for one mode x edition."""
    names: dict[str, dict[str, str]] = {}
    for companion in config.services:
        for volume in companion.spec(mode).volumes:
            names[volume.key] = {"name": volume.real_name(project, edition)}
    return names


def depends_on(config: Config) -> dict[str, dict[str, str]]:
    """The app waits for each companion: healthy if it has a health check, else started."""
    return {
        companion.name: {
            "condition": "service_healthy" if companion.prod.healthcheck else "service_started"
        }
        for companion in config.services
    }


def secrets_documents(config: Config, mode: str, override: type[dict[str, Any]]) -> dict[str, Any]:
    """The top-level `secrets:` of a mode: prod's files in `secrets/`, dev's own where declared."""
    if mode == "prod":
        return {name: {"file": f"./secrets/{name}"} for name in secret_names(config)}
    return {
        name: override({"file": f"./{DEV_SECRETS}/{name}"}) for name in dev_secret_values(config)
    }


DEV_SECRETS = "dev-secrets"
