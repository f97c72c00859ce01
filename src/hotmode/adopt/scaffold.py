"""`hotmode init`: infer a declaration from a project's files and write it, commented.

Nothing is asked that the files already say: the source folder is the one that holds the ASGI
entry point (`main.py`, `app.py`, `asgi.py`, or the module `pyproject.toml` names), the target is
`module:attribute` of the app object found there, the requirements file is looked for beside it,
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

from hotmode.atomic import write_atomic
from hotmode.config import DECLARATION, DEFAULT_PORT, load_config
from hotmode.errors import StateError, UsageError

_ENTRY_FILES = ("main.py", "app.py", "asgi.py", "server.py")
_SOURCE_DIRS = (".", "backend", "app", "src", "api", "server", "service")
_REQUIREMENTS = (
    "requirements.txt",
    "requirements/base.txt",
    "requirements/prod.txt",
    "requirements/production.txt",
    "requirements/main.txt",
)
# `app = FastAPI(...)`, `application = Starlette(...)`, `app = create_app()`, `app: FastAPI = ...`
_APP_OBJECT = re.compile(
    r"^(?P<name>[A-Za-z_]\w*)\s*(?::\s*[\w.\[\]]+\s*)?=\s*"
    r"(?P<ctor>FastAPI|Starlette|Quart|Litestar|Sanic|create_app|make_app|get_app|"
    r"get_application|build_app|[\w.]*ASGIApp\w*)\s*\(",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Inferred:
    """What `init` found, and where each value came from."""

    name: str
    source: str
    target: str
    port: int
    requirements: str
    notes: tuple[str, ...] = ()


def slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return slug if len(slug) >= 2 else f"app-{slug}" if slug else "app"


def _pyproject(root: Path) -> dict[str, object]:
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def find_app_object(folder: Path) -> tuple[str, str] | None:
    """(module, attribute) of the first ASGI app object defined in an entry file of `folder`."""
    for name in _ENTRY_FILES:
        path = folder / name
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        match = _APP_OBJECT.search(text)
        if match:
            return path.stem, match.group("name")
    return None


def infer(root: Path) -> Inferred:
    """The declaration's values for the project at `root`; `UsageError` if no app is found."""
    notes = []
    found = None
    for candidate in _SOURCE_DIRS:
        folder = (root / candidate).resolve()
        app = find_app_object(folder) if folder.is_dir() else None
        if app is not None:
            found = (candidate, folder, app)
            break
    if found is None:
        raise UsageError(
            f"no ASGI app found in {root} (looked for `app = FastAPI(...)` and the like in "
            f"{', '.join(_ENTRY_FILES)} of {', '.join(_SOURCE_DIRS)}); "
            f"write {DECLARATION} by hand, or run init in the project's folder"
        )
    source, folder, (module, attribute) = found
    notes.append(f"target {module}:{attribute}: the app object in {source}/{module}.py")
    project = _pyproject(root).get("project")
    name = project.get("name") if isinstance(project, dict) else None
    if isinstance(name, str) and name:
        notes.append(f"name from pyproject.toml ({name})")
    else:
        name = root.resolve().name
        notes.append(f"name from the folder ({name})")
    requirements = next((r for r in _REQUIREMENTS if (folder / r).is_file()), "requirements.txt")
    if not (folder / requirements).is_file():
        notes.append(f"no requirements file found in {source}/: {requirements} is assumed")
    return Inferred(
        name=slug(name),
        source=source,
        target=f"{module}:{attribute}",
        port=DEFAULT_PORT,
        requirements=requirements,
        notes=tuple(notes),
    )


def declaration_text(values: Inferred) -> str:
    """The commented `hotmode.toml` for `values`."""
    lines = [
        ("name", values.name, "names images, containers and Compose projects"),
        ("source", values.source, "the app's folder: copied into prod, mounted in dev"),
        ("target", values.target, "the ASGI app, module:attribute, imported from source"),
        ("port", values.port, "the port it serves on, in every mode"),
        ("requirements", values.requirements, "relative to source; baked into the images"),
        ("deployment", "deployment", "where `hotmode render` writes the Compose files"),
    ]
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


def write_text_declaration(root: Path, text: str) -> Path:
    """Write `hotmode.toml` at `root`, once it loads back cleanly; never over an existing one."""
    path = root / DECLARATION
    if path.exists():
        raise StateError(f"{path} exists; init never replaces it (edit it, or move it away)")
    # Checked under another name first, so that a declaration hotmode refuses is never left.
    probe = root / f".{DECLARATION}.init"
    write_atomic(probe, text)
    try:
        load_config(probe)
        # A hard link fails if the name exists: a declaration made meanwhile is never replaced.
        os.link(probe, path)
    except FileExistsError:
        raise StateError(f"{path} exists; init never replaces it") from None
    finally:
        probe.unlink(missing_ok=True)
    return path
