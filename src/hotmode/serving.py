"""How prod serves the target: one uvicorn command, the same natively and in the prod image.

Prod has no reload engine, so nothing imports the app to inspect it before uvicorn does. What the
engine tells apart by inspecting the callable (hotmode.reload.apps), prod reads from the source
without importing it: the framework the target's module imports (Flask, Django's `wsgi.py`,
Pyramid, Falcon, Bottle are WSGI; FastAPI, Starlette, Litestar, Quart, Django's `asgi.py` are
ASGI), else the framework of the project's modules it imports. A WSGI app is served by uvicorn's
WSGI interface, which runs a2wsgi's adapter (the one the engine uses) when a2wsgi is installed;
a factory (`module:create_app()`) by uvicorn's `--factory`. Without evidence the command is
uvicorn's own (ASGI), as before, and the interface is said to be unknown.
"""

from __future__ import annotations

import ast
from pathlib import Path

from hotmode.errors import ConfigError
from hotmode.target import parse_target

WSGI, ASGI = "wsgi", "asgi"
# Module prefixes: the longest match wins, so `falcon.asgi` is ASGI and `falcon` WSGI.
_FRAMEWORKS = {
    "flask": WSGI,
    "django.core.wsgi": WSGI,
    "pyramid": WSGI,
    "falcon": WSGI,
    "bottle": WSGI,
    "fastapi": ASGI,
    "starlette": ASGI,
    "litestar": ASGI,
    "quart": ASGI,
    "django.core.asgi": ASGI,
    "falcon.asgi": ASGI,
    "channels": ASGI,
}


def _module_file(source: Path, module: str) -> Path | None:
    base = source.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        # Read only what is really in the source: never through a link (the tree is input).
        if path.is_file() and not any(p.is_symlink() for p in (path, *path.parents)
                                      if p.is_relative_to(source) and p != source):  # fmt: skip
            return path
    return None


def _imports(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    package = path.parent.name if path.name == "__init__.py" else None
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level and package:  # `from .views import bp` in a package: its own module
                names.append(f"{package}.{node.module}" if node.module else package)
            elif node.module:
                names.append(node.module)
                names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _framework(name: str) -> str | None:
    matches = [p for p in _FRAMEWORKS if name == p or name.startswith(p + ".")]
    return _FRAMEWORKS[max(matches, key=len)] if matches else None


def interface(source: Path, target: str) -> str | None:
    """`wsgi` or `asgi` from the frameworks the target's module imports (else the project's
    modules it imports, one step on); None when the source does not say, or says both."""
    module = parse_target(target).module
    path = _module_file(source, module)
    if path is None:
        return None
    names = _imports(path)
    kinds = {kind for name in names if (kind := _framework(name))}
    if not kinds:
        for name in names:
            local = _module_file(source, name)
            if local is not None and local != path:
                kinds |= {kind for n in _imports(local) if (kind := _framework(n))}
    return kinds.pop() if len(kinds) == 1 else None


def command(target: str, kind: str | None, host: str, port: str) -> list[str]:
    """The uvicorn command that serves `target` of interface `kind` in prod."""
    parsed = parse_target(target)
    argv = ["uvicorn", f"{parsed.module}:{parsed.attribute}"]
    if parsed.call is not None:
        if parsed.call != ((), {}):
            raise ConfigError(
                f"target {target!r} calls its factory with arguments, which prod's uvicorn "
                "cannot: give the factory defaults and write it called with none, or name "
                "an app object in hotmode.toml's target"
            )
        argv.append("--factory")
    if kind == WSGI:
        argv += ["--interface", WSGI]
    return [*argv, "--host", host, "--port", port]
