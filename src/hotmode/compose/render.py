"""Rendering the deployment folder from the declaration, deterministically and atomically.

`render_files` is pure: a `Config` in, `{path: text}` out. `write_files` puts them on disk, one
atomic replace each, and never overwrites a file whose content no longer matches the hash in its
header (a hand edit) unless forced.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotmode import serving
from hotmode.atomic import write_atomic
from hotmode.compose import companions, layout
from hotmode.compose.jobs import job_services, waits_for_jobs
from hotmode.config import Config, Edition
from hotmode.modes import Selection
from hotmode.pyproject import is_pyproject, requirement_lines

APP_DIR = "/app"
HOTMODE_DIR = "/opt/hotmode"
# A named volume in dev: the reload engine's learned module list (and byte-code) survive a
# restart of the container, so the first reload after `up` forks from a warm zygote.
CACHE_DIR = "/var/cache/hotmode"
PYCACHE_DIR = f"{CACHE_DIR}/pycache"
PROD_UID = 10001
# The address the server binds inside the container; host networking sets it to 127.0.0.1.
_HOST = "${HOTMODE_HOST:-0.0.0.0}"
_HEADER = re.compile(r"^# hotmode-digest: sha256:([0-9a-f]{64})\n", re.MULTILINE)


class _Override(list[Any]):
    """A YAML sequence tagged `!override`: Compose replaces the base's list instead of merging."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_override(dumper: yaml.SafeDumper, data: _Override) -> yaml.Node:
    return dumper.represent_sequence("!override", list(data))


class _OverrideMap(dict[str, Any]):
    """A YAML mapping tagged `!override`: Compose replaces the base's mapping instead of merging."""


def _represent_override_map(dumper: yaml.SafeDumper, data: _OverrideMap) -> yaml.Node:
    return dumper.represent_mapping("!override", dict(data))


_Dumper.add_representer(_Override, _represent_override)
_Dumper.add_representer(_OverrideMap, _represent_override_map)


def _yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def _port(config: Config) -> str:
    return f"${{PORT:-{config.port}}}"


def _healthcheck(config: Config) -> dict[str, Any]:
    # Slim images have no curl; the image's own Python is always there. With a declared health
    # path, a 2xx from it; without one, any HTTP answer at all (the app has no such route).
    port = f"os.environ.get('PORT', '{config.port}')"
    if config.health:
        probe = (
            "import os, urllib.request; urllib.request.urlopen("
            f"'http://127.0.0.1:%s{config.health}' % {port}, timeout=3)"
        )
    else:
        probe = (
            "import os, http.client; c = http.client.HTTPConnection("
            f"'127.0.0.1', int({port}), timeout=3); c.request('GET', '/'); c.getresponse()"
        )
    return {
        "test": ["CMD", "python", "-c", probe],
        "interval": "10s",
        "timeout": "5s",
        "retries": 3,
        "start_period": "20s",
    }


def _names(config: Config, selection: Selection) -> dict[str, str]:
    project = layout.project_name(config, selection)
    return {
        "project": project,
        "container": project,
        "logs": f"{project}_logs",
        "cache": f"{project}_cache",
    }


def _env_files(edition: Edition) -> list[dict[str, Any]]:
    return [{"path": edition.env_file, "required": False}] if edition.env_file else []


def _interface(config: Config) -> str | None:
    return serving.interface(config.source, config.target)


def base_document(config: Config) -> dict[str, Any]:
    """Prod, default edition: the source baked in, read-only, non-root, nothing mounted over it."""
    edition = config.default_edition
    selection = Selection("prod", edition.name, "render", "render")
    names = _names(config, selection)
    port = _port(config)
    context = _relative(config.source, config.deployment)
    service: dict[str, Any] = {
        "build": {
            "context": context,
            "dockerfile": _relative(config.deployment / "Dockerfile", config.source),
            "target": "prod",
            "args": {
                "BASE_IMAGE": f"${{BASE_IMAGE:-{config.base_image}}}",
                "REVISION": "${HOTMODE_REVISION:-unknown}",
                "SOURCE_DIGEST": "${HOTMODE_SOURCE_DIGEST:-unknown}",
            },
        },
        "image": layout.image_name(config, "prod"),
        "container_name": names["container"],
        "command": serving.command(config.target, _interface(config), _HOST, port),
        "environment": {
            **edition.env,
            "PORT": port,
            "HOTMODE_MODE": "prod",
        },
        "ports": [f"${{HOTMODE_BIND:-127.0.0.1}}:{port}:{port}"],
        "volumes": [
            {"type": "volume", "source": "logs", "target": f"{APP_DIR}/logs"},
            {
                "type": "bind",
                "source": "./.env",
                "target": f"{APP_DIR}/.env",
                "read_only": True,
                "bind": {"create_host_path": False},
            },
        ],
        "read_only": True,
        "tmpfs": ["/tmp"],
        "user": f"{PROD_UID}:{PROD_UID}",
        "security_opt": ["no-new-privileges:true"],
        "cap_drop": ["ALL"],
        "healthcheck": _healthcheck(config),
        "deploy": {
            "resources": {
                "limits": {
                    "memory": f"${{HOTMODE_MEMORY:-{config.memory}}}",
                    "cpus": f"${{HOTMODE_CPUS:-{config.cpus}}}",
                }
            }
        },
        "restart": "unless-stopped",
        "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}},
        "labels": _labels(config, selection),
    }
    env_files = _env_files(edition)
    if env_files:
        service["env_file"] = env_files
    if config.services:
        _companion_settings(config, "prod", service)
        service["depends_on"] = companions.depends_on(config)
    secrets = companions.secrets_documents(config, "prod", _OverrideMap)
    if secrets:
        service["secrets"] = list(secrets)
    services = {config.service: service, **job_services(config, service, whole=True)}
    if config.jobs:
        service["depends_on"] = {**service.get("depends_on", {}), **waits_for_jobs(config)}
    for companion in config.services:
        services[companion.name] = companions.prod_service(
            config, companion, names["project"], edition.name
        )
    document = {
        "name": names["project"],
        "services": services,
        "volumes": {
            "logs": {"name": names["logs"]},
            **companions.volume_names(config, names["project"], "prod", selection.edition),
        },
    }
    if secrets:
        document["secrets"] = secrets
    return document


def _companion_settings(config: Config, mode: str, service: dict[str, Any]) -> None:
    """The app's settings that name its companions; a URL's password stays in its secret file,
    put back by the launcher in front of the server."""
    env, secrets = companions.split_url_secrets(companions.app_environment(config, mode))
    service["environment"].update(env)
    if secrets:
        service["environment"][companions.URL_SECRETS_VARIABLE] = secrets
        service["command"] = companions.launch(service["command"], secrets)


def _labels(config: Config, selection: Selection) -> dict[str, str]:
    return {
        "hotmode.app": config.name,
        "hotmode.mode": selection.mode,
        "hotmode.edition": selection.edition,
    }


def edition_document(config: Config, edition: Edition) -> dict[str, Any]:
    """A prod overlay for a non-default edition: its env, env file and its own names."""
    selection = Selection("prod", edition.name, "render", "render")
    names = _names(config, selection)
    service: dict[str, Any] = {
        "container_name": names["container"],
        "environment": dict(edition.env),
        "labels": _labels(config, selection),
    }
    env_files = _env_files(edition)
    # Replace the base's list even when empty: the default edition's env file is not this one's.
    if env_files or config.default_edition.env_file:
        service["env_file"] = _Override(env_files)
    return {
        "name": names["project"],
        "services": {
            config.service: service,
            **job_services(config, service, whole=False),
            **_overlay_companions(config, selection),
        },
        "volumes": {
            "logs": {"name": names["logs"]},
            **companions.volume_names(config, names["project"], "prod", selection.edition),
        },
    }


def _overlay_companions(config: Config, selection: Selection) -> dict[str, Any]:
    project = layout.project_name(config, selection)
    return {
        companion.name: companions.overlay_service(
            config, companion, project, selection.mode, selection.edition, _Override
        )
        for companion in config.services
    }


def dev_document(config: Config) -> dict[str, Any]:
    """Dev over prod: the dev image, the source bind-mounted, the reload engine, debug."""
    selection = Selection("dev", config.default_edition.name, "render", "render")
    names = _names(config, selection)
    port = _port(config)
    command = [
        "python", "-m", "hotmode", "run", config.target, "--reload",
        "--host", _HOST, "--port", port, "--log-level", config.dev.log_level,
        # A requirements change installs in place (the dev venv is writable), then reloads.
        "--install", config.install_command, *config.watch_options,
    ]  # fmt: skip
    env_files: list[Any] = [{"path": ".env", "required": False}]
    env_files.extend(_env_files(config.default_edition))
    service: dict[str, Any] = {
        "build": {"target": "dev"},
        "image": layout.image_name(config, "dev"),
        "container_name": names["container"],
        "command": command,
        # The host's user, so that nothing the server writes into the mounted tree is root's.
        "user": "${HOST_UID:-1000}:${HOST_GID:-1000}",
        "environment": {
            **config.dev.env,
            "HOTMODE_MODE": "dev",
            "HOT_RELOAD_ENABLED": "true",
            "HOTMODE_REVISION": "${HOTMODE_REVISION:-working-tree}",
            "PYTHONPYCACHEPREFIX": PYCACHE_DIR,
            "PYTHONPATH": HOTMODE_DIR,
        },
        # The .env is read as an env file, not mounted: a mount inside the source bind mount
        # would leave a root-owned stub file in the host tree.
        "env_file": _Override(env_files),
        "volumes": _Override(
            [
                {
                    "type": "bind",
                    "source": _relative(config.source, config.deployment),
                    "target": APP_DIR,
                },
                {
                    "type": "bind",
                    "source": "${HOTMODE_HOME:?run through hotmode, or eval $(hotmode env)}",
                    "target": f"{HOTMODE_DIR}/hotmode",
                    "read_only": True,
                },
                {"type": "volume", "source": "cache", "target": CACHE_DIR},
            ]
        ),
        # Dev may reinstall dependencies in place when the requirements change.
        "read_only": False,
        "labels": _labels(config, selection),
    }
    if config.services:
        _companion_settings(config, "dev", service)
    document = {
        "name": names["project"],
        "services": {
            config.service: service,
            **job_services(config, service, whole=False),
            **_overlay_companions(config, selection),
        },
        "volumes": {
            "logs": {"name": names["logs"]},
            "cache": {"name": names["cache"]},
            **companions.volume_names(config, names["project"], "dev", selection.edition),
        },
    }
    secrets = companions.secrets_documents(config, "dev", _OverrideMap)
    if secrets:
        document["secrets"] = secrets
    return document


def dev_edition_document(config: Config, edition: Edition) -> dict[str, Any]:
    """Dev for a non-default edition: that combination's own project, container and volumes."""
    selection = Selection("dev", edition.name, "render", "render")
    names = _names(config, selection)
    env_files: list[Any] = [{"path": ".env", "required": False}, *_env_files(edition)]
    service = {
        "container_name": names["container"],
        "environment": dict(edition.env),
        "env_file": _Override(env_files),
        "labels": _labels(config, selection),
    }
    return {
        "name": names["project"],
        "services": {
            config.service: service,
            **job_services(config, service, whole=False),
            **_overlay_companions(config, selection),
        },
        "volumes": {
            "logs": {"name": names["logs"]},
            "cache": {"name": names["cache"]},
            **companions.volume_names(config, names["project"], "dev", selection.edition),
        },
    }


def _requirements_stage(config: Config) -> tuple[str, str]:
    """The Dockerfile lines that put the requirements file into the deps stage, and its path
    there. A pyproject.toml's are its lock's pins, written out: the image installs what the team
    installs, and `render --check` sees a lock that changed."""
    if is_pyproject(config.requirements):
        lines = requirement_lines(config.source / config.requirements)
        listed = " \\\n    ".join(shlex.quote(line) for line in lines)
        source = f"# {config.requirements}'s dependencies, as its lock pins them.\n"
        source += f"RUN mkdir -p /tmp/requirements && printf '%s\\n' \\\n    {listed} \\\n"
        source += "    > /tmp/requirements/requirements.txt"
        return source, "/tmp/requirements/requirements.txt"
    requirements_dir = Path(config.requirements).parent.as_posix()
    copy_requirements = (
        f"COPY {config.requirements} /tmp/requirements/{Path(config.requirements).name}"
        if requirements_dir in ("", ".")
        else f"COPY {requirements_dir}/ /tmp/requirements/"
    )
    # A path inside the image's build stage, not on the host.
    return copy_requirements, f"/tmp/requirements/{Path(config.requirements).name}"


def dockerfile(config: Config) -> str:
    """The multi-stage Dockerfile: `deps`, `dev` (dependencies baked in) and `prod`."""
    copy_requirements, requirements = _requirements_stage(config)
    kind = _interface(config)
    # A WSGI app is served through a2wsgi's adapter, as the reload engine serves it in dev.
    servers = "uvicorn a2wsgi" if kind == serving.WSGI else "uvicorn"
    return f"""\
ARG BASE_IMAGE={config.base_image}

# deps: a virtualenv with the app's dependencies, shared by dev and prod.
FROM ${{BASE_IMAGE}} AS deps
ENV VIRTUAL_ENV=/opt/venv \\
    PATH=/opt/venv/bin:$PATH \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
RUN python3 -m venv /opt/venv
{copy_requirements}
# uvicorn with no version: the app's own pin when it has one, so dev and prod serve with the
# same server (the reload engine says at start what an older one lacks).
RUN pip install -r {requirements} && pip install {servers}

# dev: dependencies baked in, so nothing installs at start; the source is mounted at run time.
FROM deps AS dev
RUN pip install "watchfiles>=0.21" "click>=8.1" "rich>=13" "PyYAML>=6" "a2wsgi>=1.10" \\
    && chmod -R a+rwX /opt/venv \\
    && mkdir -p {PYCACHE_DIR} && chmod -R 1777 {CACHE_DIR}
# Bytecode is written, under the cache volume: kept from one start to the next.
ENV PYTHONPYCACHEPREFIX={PYCACHE_DIR} \\
    PYTHONDONTWRITEBYTECODE= \\
    PYTHONPATH={HOTMODE_DIR}
WORKDIR {APP_DIR}
EXPOSE {config.port}

# prod: the source copied in, owned by root and read-only to the non-root user that runs it.
FROM deps AS prod
ARG REVISION=unknown
ARG SOURCE_DIGEST=unknown
LABEL org.opencontainers.image.revision=$REVISION \\
      hotmode.source-digest=$SOURCE_DIGEST
ENV HOTMODE_REVISION=$REVISION \\
    HOTMODE_MODE=prod
RUN groupadd --system --gid {PROD_UID} app \\
    && useradd --system --uid {PROD_UID} --gid {PROD_UID} --no-create-home app
WORKDIR {APP_DIR}
COPY . {APP_DIR}
RUN mkdir -p {APP_DIR}/logs && chown {PROD_UID}:{PROD_UID} {APP_DIR}/logs \\
    && chmod -R a-w,a+rX {APP_DIR} && chmod u+w {APP_DIR}/logs
USER {PROD_UID}:{PROD_UID}
EXPOSE {config.port}
CMD {json.dumps(serving.command(config.target, kind, "0.0.0.0", str(config.port)))}
"""


DOCKERIGNORE = """\
# Secrets, history and local state never enter an image.
.env
.env.*
!.env.example
.git
.gitignore
.hotmode
logs
*.log
__pycache__
*.py[cod]
.pytest_cache
.mypy_cache
.ruff_cache
.venv
venv
node_modules
*.sqlite3-wal
*.sqlite3-shm
"""


def env_example(config: Config) -> str:
    lines = [
        "# Copy to .env (git-ignored). The mode toggle: true = dev (hot reload), false = prod.",
        "HOT_RELOAD_ENABLED=false",
        "# Or name the mode outright: HOTMODE_MODE=dev|prod (wins over HOT_RELOAD_ENABLED).",
        "# HOTMODE_MODE=prod",
        f"# The edition: {', '.join(e.name for e in config.editions)}.",
        f"{config.edition_variable}={config.default_edition.name}",
        f"PORT={config.port}",
        "# The address published ports bind to.",
        "HOTMODE_BIND=127.0.0.1",
        "# The address the server binds inside the container (127.0.0.1 with host networking).",
        "# HOTMODE_HOST=0.0.0.0",
        "# Dev containers run as this user, so files they write stay yours.",
        "HOST_UID=1000",
        "HOST_GID=1000",
    ]
    for name in companions.secret_names(config):
        lines.append(
            f"# Secret {name}: not a variable but the file secrets/{name} beside this one "
            "(git-ignored; readable by the container's user). Prod needs it; dev uses "
            f"{companions.DEV_SECRETS}/{name}."
        )
    return "\n".join(lines) + "\n"


GITIGNORE = """\
# Local, never committed: secrets and site-specific overlays.
.env
.env.*
!.env.example
secrets/
docker-compose.local.yml
# `render --swarm` resolves .env into it: a site file, like .env.
docker-stack.yml
"""


def render_files(config: Config) -> dict[Path, str]:
    """Every file of the deployment, with its header, keyed by absolute path. Pure."""
    out = config.deployment
    bodies: dict[Path, str] = {
        out / layout.BASE: _yaml(base_document(config)),
    }
    for edition in config.editions[1:]:
        bodies[out / layout.edition_file(edition.name)] = _yaml(edition_document(config, edition))
    bodies[out / layout.DEV] = _yaml(dev_document(config))
    for edition in config.editions[1:]:
        bodies[out / layout.dev_edition_file(edition.name)] = _yaml(
            dev_edition_document(config, edition)
        )
    bodies[out / "Dockerfile"] = dockerfile(config)
    bodies[out / ".env.example"] = env_example(config)
    bodies[out / ".gitignore"] = GITIGNORE
    bodies[config.source / ".dockerignore"] = DOCKERIGNORE
    declaration = _relative(config.path, config.root)
    files = {path: _with_header(body, declaration) for path, body in bodies.items()}
    # Dev-only secret values: the file is the value, so it carries no header.
    for name, value in companions.dev_secret_values(config).items():
        files[out / companions.DEV_SECRETS / name] = value
    return files


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _with_header(body: str, declaration: str) -> str:
    return with_header(body, declaration)


def with_header(body: str, declaration: str, command: str = "hotmode render") -> str:
    """`body` under hotmode's header: where it comes from and the digest of what was written."""
    return (
        f"# Rendered by hotmode from {declaration}. Change that, then run `{command}`.\n"
        "# A hand edit here is kept and reported, never overwritten without --force.\n"
        f"# hotmode-digest: sha256:{_digest(body)}\n"
        f"{body}"
    )


def has_header(path: Path) -> bool:
    """True if the file at `path` carries hotmode's header (so hotmode wrote it once)."""
    try:
        return _HEADER.search(path.read_text(encoding="utf-8")) is not None
    except (OSError, UnicodeDecodeError):
        return False


def is_hand_edited(text: str) -> bool:
    """True if a file carries no hotmode header, or its body no longer matches the header."""
    match = _HEADER.search(text)
    if match is None:
        return True
    return _digest(text[match.end() :]) != match.group(1)


@dataclass
class RenderReport:
    """What `write_files` did to each file."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def stale_files(rendered: dict[Path, str]) -> list[Path]:
    """The files whose content on disk differs from what would be rendered."""
    stale = []
    for path, text in rendered.items():
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            stale.append(path)
    return stale


def leftover_files(config: Config, rendered: dict[Path, str]) -> list[Path]:
    """Compose files hotmode once rendered that the declaration no longer asks for.

    A renamed or removed edition leaves its overlays behind; they carry hotmode's header.
    """
    leftovers = []
    for path in sorted(config.deployment.glob("docker-compose*.yml")):
        if path in rendered or path.name == layout.LOCAL:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        if _HEADER.search(text):
            leftovers.append(path)
    return leftovers


def remove_leftovers(paths: list[Path], *, force: bool = False) -> RenderReport:
    """Delete leftovers hotmode wrote; keep (and report) the ones edited by hand unless `force`."""
    report = RenderReport()
    for path in paths:
        if is_hand_edited(path.read_text(encoding="utf-8")) and not force:
            report.kept.append(path)
        else:
            path.unlink()
            report.removed.append(path)
    return report


def write_files(rendered: dict[Path, str], *, force: bool = False) -> RenderReport:
    """Write each file atomically; keep (and report) hand-edited ones unless `force`."""
    report = RenderReport()
    for path, text in rendered.items():
        try:
            current: str | None = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current == text:
            report.unchanged.append(path)
            continue
        # A dev-only secret is its value, with no header; the declaration is its only source.
        owned = path.parent.name == companions.DEV_SECRETS
        if current is not None and is_hand_edited(current) and not force and not owned:
            report.kept.append(path)
            continue
        write_atomic(path, text)
        report.written.append(path)
    return report
