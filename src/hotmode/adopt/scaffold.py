"""`hotmode init`: infer a declaration from a project's files and write it, commented.

Nothing is asked that the files already say: the source folder is the one that holds the app, the
target is what the evidence names (hotmode.adopt.targets: a server command, Django's manage.py
and settings, FLASK_APP, an app a framework builds), the requirements file is looked for beside it,
and the name comes from `pyproject.toml` or the folder. The text is loaded back through
`load_config` before it is written, so `init` never writes a declaration hotmode would refuse,
and it never replaces one that exists.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from hotmode.adopt.targets import CONSTRUCTED
from hotmode.atomic import write_atomic
from hotmode.config import DECLARATION, DEFAULT_PORT, load_config
from hotmode.errors import ConfigError, StateError, UsageError
from hotmode.pyproject import declares_dependencies

_ENTRY_FILES = ("main.py", "app.py", "asgi.py", "server.py")
_SOURCE_DIRS = (".", "backend", "app", "src", "api", "server", "service")
_REQUIREMENTS = (
    "requirements.txt",
    "requirements/base.txt",
    "requirements/prod.txt",
    "requirements/production.txt",
    "requirements/main.txt",
)


@dataclass(frozen=True)
class Inferred:
    """What `init` found, and where each value came from."""

    name: str
    source: str
    target: str
    port: int
    requirements: str  # "" when none was found: asked for, never assumed
    notes: tuple[str, ...] = ()
    health: str | None = None


def slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return slug if len(slug) >= 2 else f"app-{slug}" if slug else "app"


def _pyproject(root: Path) -> dict[str, object]:
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


_SKIP = {".git", ".hotmode", ".venv", "venv", "node_modules", "__pycache__", "tests", "test",
         "site-packages", "migrations", "alembic", "docs"}  # fmt: skip
_IMPORT = re.compile(r"^\s*(?:from|import)\s+(?P<top>[A-Za-z_]\w*)(?:\.[\w.]+)?\b", re.MULTILINE)
_HEALTH_ROUTE = re.compile(
    r"@(?P<owner>\w+)\.(?:get|api_route|route|head)\(\s*[\"'](?P<path>/(?:health|healthz|"
    r"healthcheck|health-check|ping|livez|readyz)/?)[\"']"
)


def _python_files(root: Path, depth: int = 4) -> list[Path]:
    """The project's own Python files, shallow first, virtualenvs and tests left out."""
    found: list[Path] = []
    level = [root]
    for _ in range(depth):
        below = []
        for folder in level:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            found += [e for e in entries if e.suffix == ".py" and e.is_file()]
            below += [e for e in entries if e.is_dir() and e.name not in _SKIP
                      and not e.name.startswith(".")]  # fmt: skip
        level = below
    return found


def import_root(path: Path, top: Path) -> tuple[Path, str]:
    """The folder the app is imported from, and its module: `project`, `app.main` for
    `project/app/main.py` that imports `app.db` (its own imports say which package it is in)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    tops = set(_IMPORT.findall(text))
    for folder in path.parents:
        if folder == top.parent or not folder.is_relative_to(top):
            break
        if folder.name in tops:
            dotted = path.relative_to(folder.parent).with_suffix("").parts
            return folder.parent, ".".join(dotted)
    return path.parent, path.stem


def find_app_below(top: Path) -> tuple[Path, str, str] | None:
    """(import root, module, attribute) of the first file below `top` that builds an app with a
    framework's constructor (an `app = ...` alone is not evidence), imported as its own imports
    say (`project/app/main.py` importing `app.db`: the import root `project`, the module
    `app.main`)."""
    for path in _python_files(top):
        match = CONSTRUCTED.search(path.read_text(encoding="utf-8", errors="replace"))
        if match is not None:
            folder, module = import_root(path, top)
            return folder, module, match.group("name")
    return None


def find_health(source: Path) -> str | None:
    """The app's own health route (`@app.get("/health")`), with its router's literal prefix."""
    for path in _python_files(source):
        text = path.read_text(encoding="utf-8", errors="replace")
        match = _HEALTH_ROUTE.search(text)
        if match is None:
            continue
        prefix = re.search(
            rf"{match.group('owner')}\s*=\s*\w*Router\([^)]*prefix\s*=\s*[\"'](?P<p>/[^\"']*)",
            text,
        )
        return (prefix.group("p").rstrip("/") if prefix else "") + match.group("path")
    return None


def infer(root: Path) -> Inferred:
    """The declaration's values for the project at `root`; `UsageError` if no app is found."""
    from hotmode.adopt.targets import find_target

    notes = []
    found = None
    for candidate in _SOURCE_DIRS:
        folder = (root / candidate).resolve()
        evidence = find_target(folder) if folder.is_dir() else None
        if evidence is not None:
            found = (evidence.source, evidence.target, evidence.said(root.resolve()))
            break
    if found is None:
        below = find_app_below(root.resolve())
        if below is not None:
            folder, module, attribute = below
            where = f"{folder.relative_to(root.resolve()).as_posix() or '.'}/{module}.py"
            found = (folder, f"{module}:{attribute}", f"the app object in {where}")
    if found is None:
        raise UsageError(
            f"no app found in {root}: no server command (Dockerfile, Procfile), no Django "
            f"manage.py, no FLASK_APP, no app object (`app = FastAPI(...)`, `app = Flask(...)` "
            f"and the like) in {', '.join(_ENTRY_FILES)} of {', '.join(_SOURCE_DIRS)}; "
            f"pass --target MODULE:ATTRIBUTE, or run init in the project's folder"
        )
    folder, target, why = found
    source = folder.relative_to(root.resolve()).as_posix() or "."
    notes.append(f"target {target}: {why}")
    health = find_health(folder)
    notes.append(
        f"health {health}: the app's own route" if health else
        "health: no health route found; ready means the server answers HTTP at all"
    )  # fmt: skip
    project = _pyproject(root).get("project")
    name = project.get("name") if isinstance(project, dict) else None
    if isinstance(name, str) and name:
        notes.append(f"name from pyproject.toml ({name})")
    else:
        name = root.resolve().name
        notes.append(f"name from the folder ({name})")
    requirements = next((r for r in _REQUIREMENTS if (folder / r).is_file()), "")
    if not requirements and declares_dependencies(folder / "pyproject.toml"):
        requirements = "pyproject.toml"
        notes.append("requirements: the dependencies pyproject.toml declares (pinned by its lock)")
    return Inferred(
        name=slug(name),
        source=source,
        target=target,
        port=DEFAULT_PORT,
        requirements=requirements,
        notes=tuple(notes),
        health=health,
    )


def declaration_text(values: Inferred) -> str:
    """The commented `hotmode.toml` for `values`."""
    lines = [
        ("name", values.name, "names images, containers and Compose projects"),
        ("source", values.source, "the app's folder: copied into prod, mounted in dev"),
        ("target", values.target, "the app (ASGI or WSGI), imported from source"),
        ("port", values.port, "the port it serves on, in every mode"),
        ("requirements", values.requirements, "relative to source; baked into the images"),
        ("deployment", "deployment", "where `hotmode render` writes the Compose files"),
    ]
    if values.health:
        lines.append(("health", values.health, "answers 200 once the app is ready"))
    body = "\n".join(
        f"{f'{key} = {json.dumps(value)}':<40} # {comment}" for key, value, comment in lines
    )
    return f"""\
# hotmode: one declaration for every mode (prod, dev) x edition of this app.
# `hotmode render` writes the Compose files from it; `hotmode up --dev` runs it with hot reload.
{body}

# Editions change environment and names (uncomment to add them):
# edition_variable = "APP_EDITION"
# [editions.core]
# default = true
# [editions.saas]
# env_file = ".env.prod.saas"           # a file of the deployment folder

[dev]
env = {{ DEBUG = "true", LOG_LEVEL = "DEBUG", PYTHONUNBUFFERED = "1" }}
log_level = "debug"
"""


def write_declaration(root: Path, values: Inferred) -> Path:
    """Write `hotmode.toml` for `values` at `root`; see `write_text_declaration`."""
    return write_text_declaration(root, declaration_text(values))


def refuse_existing(root: Path) -> None:
    """Init never replaces a declaration: say so before inferring anything."""
    if (root / DECLARATION).exists():
        raise StateError(
            f"{root / DECLARATION} exists; init never replaces it (edit it, or move it away)"
        )


def write_text_declaration(root: Path, text: str) -> Path:
    """Write `hotmode.toml` at `root`, once it loads back cleanly; never over an existing one."""
    path = root / DECLARATION
    if path.exists():
        raise StateError(f"{path} exists; init never replaces it (edit it, or move it away)")
    # Checked under another name first, so that a declaration hotmode refuses is never left.
    probe = root / f".{DECLARATION}.init"
    write_atomic(probe, text)
    try:
        try:
            load_config(probe)
        except ConfigError as exc:
            # Named as the file it would be, not the probe no one will ever see.
            raise ConfigError(str(exc).replace(str(probe), str(path))) from None
        # A hard link fails if the name exists: a declaration made meanwhile is never replaced.
        os.link(probe, path)
    except FileExistsError:
        raise StateError(f"{path} exists; init never replaces it") from None
    finally:
        probe.unlink(missing_ok=True)
    return path
