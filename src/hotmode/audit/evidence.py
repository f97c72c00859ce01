"""What one service's configuration says about the role it plays: each fact with its phrase.

`roles` weighs these facts across a project; this module only reads them, one question per
function, from a merged `services:` mapping (and, where a fact lives on disk, the disk): what the
service's image or Dockerfile is, whether it is a known companion, what its command runs, whether
it runs once, which host folders of Python source it mounts, who depends on it and how, and
which other services share its build or image. Each answer is a short phrase a report can show
("runs gunicorn", "built from debian:12, runs postgres"), or None when the configuration does not
say.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from hotmode.audit import commands, scripts
from hotmode.audit.build import Dockerfile, read_dockerfile
from hotmode.audit.names import (
    BASES,
    COMPANION_PROGRAMS,
    COMPANIONS,
    DATA_DIRS,
    DB_PACKAGES,
    DB_PORTS,
    DB_VARIABLES,
    DISTRIBUTIONS,
    JOB_WORDS,
    MONITOR_WORDS,
    NOT_PYTHON,
    NOT_PYTHON_PROGRAMS,
    OTHER_SERVERS,
    PYTHON_VALUES,
    PYTHON_VARIABLES,
    URL_SCHEMES,
    WORKER_WORDS,
    known_companion,
    repository,
)

_SCAN_LIMIT = 2000
# Commands that set up before the program a command line is for.
_CHORES = {
    "service", "chmod", "chown", "mkdir", "cd", "echo", "export", "set", "sleep", "wait-for-it",
    "wait-for-it.sh", "true", "test", "[", "if", "then", "else", "fi", "trap", "exec", "cp",
}  # fmt: skip
# Where Python keeps its packages: a volume there holds a Python installation.
_PYTHON_PLACES = re.compile(r"/site-packages/?$|/dist-packages/?$|/\.cache/pip/?$")


def image_of(service: Mapping[str, Any]) -> str | None:
    image = service.get("image")
    return image if isinstance(image, str) and image else None


def build_of(
    service: Mapping[str, Any], services: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The `build:` that makes a service's image: its own, or that of another service of the
    project built into the same `image:` tag (a worker that reuses the web image)."""
    build = service.get("build")
    if isinstance(build, dict):
        return build
    image = image_of(service)
    for other in (services or {}).values():
        if isinstance(other, Mapping) and image and other.get("image") == image:
            found = other.get("build")
            if isinstance(found, dict):
                return found
    return None


def dockerfile_of(
    service: Mapping[str, Any], services: Mapping[str, Any] | None = None
) -> Dockerfile | None:
    build = build_of(service, services)
    return read_dockerfile(build) if build is not None else None


def build_name(build: Mapping[str, Any]) -> str:
    """How a report names a build: its Dockerfile's path, relative to the working directory
    where it can be (`nginx/Dockerfile`, `apps/web/Dockerfile.web`)."""
    context = str(build.get("context") or ".")
    path = os.path.normpath(os.path.join(context, str(build.get("dockerfile") or "Dockerfile")))
    return _shown(path)


def shared_key(service: Mapping[str, Any]) -> tuple[str, ...] | None:
    """What a service shares with others that run the same code: its build (context, Dockerfile,
    target), or its image when that is not a public base image."""
    build = service.get("build")
    if isinstance(build, dict):
        # The same build tagged as two images is two images when nothing shows the build is
        # one (a context from an unset variable); a Dockerfile that is here is one build, each
        # service tagging it its own way (cookiecutter-django's `project_celeryworker`).
        here = read_dockerfile(build) is not None
        return (
            "build",
            str(build.get("context")),
            str(build.get("dockerfile") or "Dockerfile"),
            str(build.get("target") or ""),
            "" if here else image_of(service) or "",
        )
    image = image_of(service)
    if image and repository(image) not in BASES:
        return ("image", image)
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


def resolved_command(
    service: Mapping[str, Any], services: Mapping[str, Any] | None = None
) -> list[str]:
    """What a service runs, with the scripts its build copies into the image read in (see
    `scripts`): `/start-celeryworker` and the `celery ... worker` it runs."""
    argv = service_command(service, services)
    return scripts.resolve(argv, build_of(service, services), service)[0]


def overrides_command(service: Mapping[str, Any]) -> bool:
    return bool(service.get("command") or service.get("entrypoint"))


def base_image(service: Mapping[str, Any], services: Mapping[str, Any]) -> str | None:
    """The image a service's build starts from (its Dockerfile's, here), else its `image:`."""
    build = build_of(service, services)
    if build is None:
        return image_of(service)
    dockerfile = read_dockerfile(build)
    if dockerfile is None:
        return None
    return dockerfile.base_image(build.get("target"), build.get("args") or {})


def _tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", text.lower()) if t}


def companion(name: str, service: Mapping[str, Any], services: Mapping[str, Any]) -> str | None:
    """Why a service is a database, cache, broker, proxy or tool beside the app, if it is."""
    image = image_of(service)
    build = build_of(service, services)
    argv = resolved_command(service, services)
    server = commands.server(argv)
    if build is None and known_companion(image):
        return str(image)
    dockerfile = read_dockerfile(build) if build is not None else None
    base = base_image(service, services)
    if build is not None and known_companion(base):
        return f"built from {base}"
    programs = commands.programs(argv)
    if programs and programs[0].name in COMPANION_PROGRAMS:
        return f"runs {programs[0].name}"
    # What runs decides over what the image has installed (a client, an installer's option).
    if server or commands.worker(argv) or commands.job(argv):
        return None
    if dockerfile is not None and base and repository(base) in DISTRIBUTIONS:
        target = build.get("target") if build else None
        shipped = _database_in(dockerfile, target)
        if shipped:
            return f"built from {base}, {shipped}"
    running = [p for p in programs if p.name not in _CHORES]
    script = _tokens(PurePosixPath(running[-1].name).stem) if running else set()
    if running and running[-1].name.endswith(".sh") and script & COMPANION_PROGRAMS:
        return f"runs {running[-1].name}, {sorted(script & COMPANION_PROGRAMS)[0]} by its name"
    named = _named_like_companion(image, build)
    if named:
        return named
    for mount in service.get("volumes") or []:
        target = str(mount.get("target") or "").rstrip("/") if isinstance(mount, dict) else ""
        if target in DATA_DIRS:
            return f"keeps {DATA_DIRS[target]}'s data directory {target}"
    return _listens_as_database(name, service, services)


def _database_in(dockerfile: Dockerfile, target: str | None) -> str | None:
    """What in a distribution-based Dockerfile makes it a database: its command, its data
    directory, or the server package it installs."""
    programs = commands.programs(commands.words(dockerfile.command(target)))
    # `ENTRYPOINT ["docker-entrypoint.sh"] CMD ["postgres"]`: the program is the first argument.
    names = {p.name for p in programs} | {PurePosixPath(p.args[0]).name for p in programs if p.args}
    running = sorted(names & COMPANION_PROGRAMS)
    if running:
        return f"runs {running[0]}"
    for volume in dockerfile.volumes(target):
        program = DATA_DIRS.get(volume.rstrip("/"))
        if program:
            return f"ships {program}'s data directory {volume}"
    installed = DB_PACKAGES.search(dockerfile.runs(target))
    return f"installs {installed.group(1)}" if installed else None


def _named_like_companion(image: str | None, build: Mapping[str, Any] | None) -> str | None:
    """A companion's name in a local image's tag (`acme-postgres:16`) or in the name of the
    Dockerfile it is built with (`Dockerfile.nginx`), for companions built rather than pulled."""
    if image:
        found = sorted(_tokens(repository(image)) & COMPANIONS)
        if found:
            return f"{image}, a {found[0]} image"
    if build is not None:
        # The Dockerfile's own name (`Dockerfile.nginx`) says what it builds; the folder it
        # sits in is named for the project as often as for its content (`app-pg-redis-docker`).
        dockerfile = PurePosixPath(str(build.get("dockerfile") or "")).name
        found = sorted(_tokens(dockerfile) & COMPANIONS)
        if found:
            return f"built from {build_name(build)}, a {found[0]} build"
    return None


def ports(service: Mapping[str, Any]) -> set[str]:
    """The container ports a service publishes or exposes."""
    found = {str(port) for port in service.get("expose") or []}
    for port in service.get("ports") or []:
        if isinstance(port, dict) and port.get("target") is not None:
            found.add(str(port["target"]))
    return {port.split("/")[0] for port in found}


def _listens_as_database(
    name: str, service: Mapping[str, Any], services: Mapping[str, Any]
) -> str | None:
    """A database recognised by how it is used: another service connects to it by URL
    (`postgres://...@NAME`), or it takes the image's variables and listens on the port."""
    for other_name, other in services.items():
        if other_name == name or not isinstance(other, Mapping):
            continue
        for variable, value in environment(other).items():
            match = re.search(rf"\b([a-z]+)(\+\w+)?://[^\s/]*@{re.escape(name)}(:|/|$)", value)
            kind = URL_SCHEMES.get(match.group(1)) if match else None
            if kind:
                return f"{other_name}'s {variable} connects to it as {kind}"
    listening = ports(service)
    env = environment(service)
    for port, kind in DB_PORTS.items():
        named = [v for v in DB_VARIABLES[kind] if v in env]
        if port in listening and named:
            return f"takes {named[0]} and listens on {port}, as {kind} does"
    return None


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): "" if v is None else str(v) for k, v in env.items()}
    return {}


def idles(argv: list[str]) -> str | None:
    """A command that only keeps the container up (`sleep infinity`, `tail -f /dev/null`): a
    dev container or a toolbox that people exec into, not a server."""
    found = commands.programs(argv)
    if len(found) != 1:
        return None
    program = found[0]
    forever = program.name == "sleep" and program.args[:1] in (("infinity",), ("inf",))
    if forever or (program.name == "tail" and "/dev/null" in program.args):
        return f"idles ({shown_command(argv)}): a dev container or toolbox people exec into"
    return None


def not_python(service: Mapping[str, Any], services: Mapping[str, Any]) -> str | None:
    """Why a service runs something other than Python: its Dockerfile's base image, its image,
    or the name of the Dockerfile it is built with (`Dockerfile.playwright`)."""
    base = base_image(service, services)
    built = build_of(service, services) is not None
    if base and repository(base) in NOT_PYTHON:
        return f"{'built from ' if built else ''}{base}, not Python"
    build = service.get("build")
    if isinstance(build, dict) and base is None:
        dockerfile = PurePosixPath(str(build.get("dockerfile") or "")).name
        found = sorted(_tokens(dockerfile) & NOT_PYTHON)
        if found:
            return f"built with {dockerfile}, a {found[0]} image"
    return None


def python(service: Mapping[str, Any], services: Mapping[str, Any]) -> str | None:
    """Evidence that a service runs Python code of its own: a Python base image in its
    Dockerfile, a mounted host folder holding Python source, or Python-only settings."""
    base = base_image(service, services)
    if base and repository(base) in {"python", "pypy"}:
        return f"built from {base}" if build_of(service, services) is not None else f"runs {base}"
    for mount in bind_mounts(service):
        if Path(mount).is_dir() and holds_python(Path(mount)):
            return f"mounts {_shown(mount)}, which holds Python source"
    for item in service.get("volumes") or []:
        target = str(item.get("target") or "") if isinstance(item, dict) else ""
        if _PYTHON_PLACES.search(target):
            return f"keeps a volume at {target}, where Python keeps its packages"
    for variable, value in environment(service).items():
        if PYTHON_VARIABLES.match(variable):
            return f"sets {variable}"
        found = PYTHON_VALUES.search(value)
        if found:
            return f"its {variable} names {found.group(0)}"
    return None


def _shown(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return relative if not relative.startswith("../../..") else path


def bind_mounts(service: Mapping[str, Any]) -> list[str]:
    """The host folders a service bind-mounts writable."""
    found = []
    for item in service.get("volumes") or []:
        if isinstance(item, dict) and item.get("type") == "bind" and not item.get("read_only"):
            source = item.get("source")
            if isinstance(source, str) and source:
                found.append(source)
    return found


def holds_python(folder: Path) -> bool:
    """Whether a folder holds Python source (a bounded look, a few levels deep)."""
    seen = 0
    for root, dirs, files in os.walk(folder):
        if any(name.endswith(".py") for name in files):
            return True
        seen += len(files) + len(dirs)
        if seen > _SCAN_LIMIT:
            return False
        deep = len(Path(root).relative_to(folder).parts) >= 2
        skipped = {"node_modules", "venv", "__pycache__"}
        dirs[:] = [] if deep else [d for d in dirs if not d.startswith(".") and d not in skipped]
    return False


def command_role(argv: list[str]) -> tuple[str, str] | None:
    """What a command line starts, as ("app" | "worker" | "job", phrase): a Python server, a
    task worker, a one-shot job, or, for a script or an entrypoint's subcommand, what its words
    say (`docker-entrypoint-worker.sh`, `dev_scheduler`)."""
    found = commands.server(argv)
    if found:
        return "app", f"runs {found}"
    found = commands.worker(argv)
    if found:
        return "worker", f"runs {found}"
    found = commands.job(argv)
    if found:
        return "job", f"runs {found}"
    programs = commands.programs(argv)
    if not programs:
        return None
    # `service cron start` starts a daemon on the side; what follows is the command.
    first = next((p for p in programs if p.name not in _CHORES), programs[0])
    words = _tokens(PurePosixPath(first.name).stem)
    for arg in first.args[:1]:
        if not arg.startswith("-"):
            words |= _tokens(arg)
    # Scripts a wrapper runs in turn (`wait-for-it.sh db -- /app/worker.sh start`).
    words |= _script_words(argv)
    if words & MONITOR_WORDS:
        return "other", f"runs {shown_command(argv)}, a monitoring UI by its name"
    if words & WORKER_WORDS:
        return "worker", f"runs {shown_command(argv)}, a worker by its name"
    if words & JOB_WORDS:
        return "job", f"runs {shown_command(argv)}, a one-shot job by its name"
    return None


def _script_words(argv: list[str]) -> set[str]:
    """The words of the scripts a command runs (`nginx-entrypoint.sh`, `/webodm/worker.sh`)."""
    found: set[str] = set()
    for word in argv:
        if word.endswith((".sh", ".py")) and not word.startswith("-"):
            found |= _tokens(PurePosixPath(word).stem)
    return found


def mounts_tree(service: Mapping[str, Any], project: Path | None) -> str | None:
    """A service that bind-mounts the project's own tree (the Compose file's folder or one
    above it): a dev container people work in."""
    if project is None:
        return None
    for mount in bind_mounts(service):
        folder = Path(mount)
        if folder == project or folder in project.parents:
            return f"mounts {_shown(mount)}, the project's own tree"
    return None


def runs_other(argv: list[str]) -> str | None:
    """A command that ends by running something other than a Python app: a Node or other
    runtime (`npm run build:watch`), or a server of documents or files (`mkdocs serve`)."""
    found = [p for p in commands.programs(argv) if p.name not in _CHORES]
    if not found:
        return None
    last = found[-1]
    if last.name in NOT_PYTHON_PROGRAMS:
        return f"runs {last.name}, not Python"
    for program in found:
        if program.name in OTHER_SERVERS:
            return f"runs {program.name}, a server of something other than the app"
    return None


def shown_command(argv: list[str], limit: int = 60) -> str:
    text = " ".join(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def runs_once(name: str, service: Mapping[str, Any], services: Mapping[str, Any]) -> str | None:
    """Why a service runs once and exits: its restart policy, or how others wait for it."""
    deploy = service.get("deploy")
    policy = deploy.get("restart_policy") if isinstance(deploy, dict) else None
    condition = policy.get("condition") if isinstance(policy, dict) else None
    if service.get("restart") in ("no", False) or condition == "none":
        return 'restart: "no", runs once'
    for other_name, other in services.items():
        depends = other.get("depends_on") if isinstance(other, Mapping) else None
        entry = depends.get(name) if isinstance(depends, dict) else None
        if isinstance(entry, dict) and entry.get("condition") == "service_completed_successfully":
            return f"{other_name} waits for it to complete"
    return None


def depends_on(service: Mapping[str, Any]) -> set[str]:
    depends = service.get("depends_on") or {}
    return {str(name) for name in depends} if isinstance(depends, dict | list) else set()


def fronts(service: Mapping[str, Any]) -> bool:
    """Whether a service listens only on the web's ports (80, 443): a proxy in front."""
    listening = ports(service)
    return bool(listening) and listening <= {"80", "443", "8080", "8443"}
