"""The adopted app's own facts: its source folder, target, port and requirements file.

Read off the app's merged services (prod's first, then dev's) and off the source on disk, never
guessed: a fact with no evidence is an error naming what is missing and the flag that gives it
(`--target`, `--port`, `--requirements`). A checkout that holds the Compose files but not the
app's source (a build context or a Dockerfile that is not there) is named as such.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hotmode.adopt.old import command_text
from hotmode.errors import StateError, UsageError
from hotmode.pyproject import declares_dependencies

# `--port 8000`, `--bind 0.0.0.0:8000`, `-b :8000`, `runserver 0.0.0.0:8000`, `flask run -p 5000`.
_PORT_FLAG = re.compile(
    r"(?:--port[= ]|(?:--bind|-b)[= ]\S*:|\brunserver(?:_plus)?\s+\S*:|\s-p\s+)(?P<port>\d{1,5})\b"
)
_LOG_LEVEL = re.compile(r"--log-level[= ](?P<level>[a-z]+)\b")
_REQUIREMENTS = re.compile(r"-r\s+(?P<path>[\w./-]+\.(?:txt|in))")
# `curl -f http://localhost:8000/api/health/`, `wget -q http://127.0.0.1:80/ping`.
_PROBE = re.compile(r"https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0)(?::\d+)?(?P<path>/[^\s'\"]*)")
_BESIDE = ("requirements.txt", "requirements/base.txt", "requirements/prod.txt")


def server_facts(service: Mapping[str, Any]) -> dict[str, str]:
    """Port, log level and requirements file, as the command line says them."""
    text = command_text(service)
    facts = {}
    if match := _PORT_FLAG.search(text):
        facts["port"] = match.group("port")
    if match := _LOG_LEVEL.search(text):
        facts["log_level"] = match.group("level")
    if match := _REQUIREMENTS.search(text):
        facts["requirements"] = match.group("path")
    return facts


def health_probe(service: Mapping[str, Any]) -> str | None:
    """The path the service's own healthcheck asks for over HTTP, if it asks one."""
    test = (service.get("healthcheck") or {}).get("test") or []
    match = _PROBE.search(" ".join(str(part) for part in test))
    return match.group("path") if match and match.group("path") != "/" else None


def _context(service: Mapping[str, Any]) -> Path | None:
    build = service.get("build")
    if isinstance(build, dict) and build.get("context"):
        return Path(str(build["context"]))
    return None


def source_of(service: Mapping[str, Any], root: Path) -> Path | None:
    """The app's source folder: its build context, else the project folder it mounts."""
    context = _context(service)
    if context is not None and context.is_dir() and context.resolve().is_relative_to(root):
        return context.resolve()
    for volume in service.get("volumes") or []:
        source = Path(str(volume.get("source", "")))
        mounted = volume.get("type") == "bind" and source.is_dir()
        if mounted and source.is_relative_to(root) and any(source.glob("*.py")):
            return source.resolve()
    return None


def _shown(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def app_source(services: Sequence[Mapping[str, Any]], app: str, root: Path) -> Path:
    """The source folder of the first of `services` that names one, or why there is none."""
    root = root.resolve()
    for service in services:
        source = source_of(service, root)
        if source is not None:
            return source
    service = next((s for s in services if s), {})
    context = _context(service)
    if context is not None and not context.is_dir():
        raise UsageError(
            f"service {app!r} is built from {_shown(context, root)}/, which is not here: "
            "hotmode builds the app from its source; run init --from in a checkout that has it"
        )
    if context is not None:
        raise UsageError(
            f"service {app!r} is built from {_shown(context, root)}/, outside the project "
            f"folder {root}; run init in the folder that holds both"
        )
    image = service.get("image") or "an image"
    raise UsageError(
        f"service {app!r} runs {image} and mounts no source folder: hotmode builds the app "
        "from its source; run init --from in the app's own repository (or pass --app NAME for "
        "the service built from it)"
    )


def _lacking(service: Mapping[str, Any], source: Path) -> str:
    """' (nor is the Dockerfile ...)' when the build names a Dockerfile that is missing: the
    checkout holds the Compose files but not the app's source."""
    build = service.get("build")
    if not isinstance(build, dict):
        return ""
    context = Path(str(build.get("context", source)))
    dockerfile = context / str(build.get("dockerfile") or "Dockerfile")
    if dockerfile.is_file():
        return ""
    return (
        f" (nor is the Dockerfile {_shown(dockerfile, context)} the build names: is the app's "
        "source in this checkout?)"
    )


def app_target(
    services: Sequence[Mapping[str, Any]],
    source: Path,
    root: Path,
    given: str | None,
    notes: list[str],
) -> tuple[str, Path]:
    """The target (ASGI or WSGI) and the folder it is imported from: `--target`, else what the
    evidence names (hotmode.adopt.targets: the server command, Django's settings, FLASK_APP, an
    app a framework builds), in the source or a folder below it."""
    from hotmode.adopt.scaffold import find_app_below
    from hotmode.adopt.targets import find_target

    if given:
        return given, source
    commands = [command_text(s) for s in services if s]
    env: dict[str, str] = {}
    for service in reversed([s for s in services if s]):
        environment = service.get("environment") or {}
        env.update({str(k): str(v) for k, v in environment.items() if v is not None})
    found = find_target(source, commands, env)
    if found is not None:
        notes.append(f"target {found.target}: {found.said(root)}")
        return found.target, found.source
    below = find_app_below(source)
    if below is None:
        raise StateError(
            f"cannot tell the app's target: no server command names it, no Django manage.py or "
            f"FLASK_APP, and no app object in {_shown(source, root)}/"
            f"{_lacking(services[0] or services[-1], source)}; pass --target MODULE:ATTRIBUTE"
        )
    folder, module, attribute = below
    target = f"{module}:{attribute}"
    where = f"{_shown(folder, root)}/{module.replace('.', '/')}.py"
    notes.append(f"target {target}: the app object in {where} (no command names it)")
    return target, folder


def app_port(services: Sequence[Mapping[str, Any]], given: int | None, env_port: str | None) -> int:
    """`--port`, a server command's, `PORT`, else a port the app publishes or exposes."""
    candidates = [str(given or "")]
    candidates += [server_facts(s).get("port", "") for s in services]
    candidates.append(env_port or "")
    for service in services:
        candidates += [str(p.get("target")) for p in service.get("ports") or []]
        candidates += [str(p).split("/")[0] for p in service.get("expose") or []]
    port = next((p for p in candidates if p.isdigit()), None)
    if port is None:
        raise StateError(
            "cannot tell the app's port: no --port in its command, no PORT and no published "
            "port; pass --port PORT"
        )
    return int(port)


def app_requirements(services: Sequence[Mapping[str, Any]], source: Path, given: str | None) -> str:
    """`--requirements`, a command's `-r FILE`, the Dockerfile's, else a usual file beside the
    source or its build context (relative to the source folder)."""
    named = given or next(
        (f["requirements"] for s in services if "requirements" in (f := server_facts(s))), None
    )
    if named:
        return named
    folders = [source, *(c for s in services if (c := _context(s)) is not None)]
    for folder in dict.fromkeys(f.resolve() for f in folders if f.is_dir()):
        dockerfile = folder / "Dockerfile"
        text = dockerfile.read_text(encoding="utf-8") if dockerfile.is_file() else ""
        match = _REQUIREMENTS.search(text)
        if match and (folder / match.group("path")).is_file():
            return os.path.relpath(folder / match.group("path"), source)
        beside = next((r for r in _BESIDE if (folder / r).is_file()), None)
        if beside is not None:
            return os.path.relpath(folder / beside, source)
        if match:
            return match.group("path")
    # No requirements file: the dependencies pyproject.toml declares (pinned by its lock).
    for folder in dict.fromkeys(f.resolve() for f in folders if f.is_dir()):
        if declares_dependencies(folder / "pyproject.toml"):
            return os.path.relpath(folder / "pyproject.toml", source)
    raise StateError(
        f"no requirements file in {source} or its Dockerfile, and no dependencies in a "
        "pyproject.toml; pass --requirements FILE"
    )
