"""The dependencies a project declares only in its `pyproject.toml`, as requirement lines.

An app whose dependencies are in `pyproject.toml` (PEP 621 `[project] dependencies`, Poetry's
`[tool.poetry.dependencies]`, uv) names its requirements file as `pyproject.toml`. What is
installed is what the team installs: the versions its lock pins (`poetry.lock`, `uv.lock`,
beside the pyproject), walked from the app's own main dependencies and the extras they ask for
(never a dev group); with no lock, the declared ranges (Poetry's `^`/`~` written as PEP 440).
The lines feed `pip install -r` natively (`hotmode requirements --install`) and are written into
the rendered Dockerfile, so `render --check` sees a lock that changed.

A package reached only through edges with environment markers keeps those markers (pip
evaluates them); markers are not combined along a path, so a package may be installed where it
is not needed, never left out where it is.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hotmode.errors import ConfigError

LOCKS = ("poetry.lock", "uv.lock")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_pyproject(requirements: str) -> bool:
    """True when the declared requirements file is a pyproject.toml."""
    return Path(requirements).name == "pyproject.toml"


def declares_dependencies(pyproject: Path) -> bool:
    """True when `pyproject` declares the project's runtime dependencies (PEP 621 or Poetry)."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return bool(_roots(data))


def requirement_lines(pyproject: Path) -> list[str]:
    """The pinned requirement lines of `pyproject` (by its lock when one is beside it)."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read it ({exc}); fix the file") from None
    roots = _roots(data)
    if not roots:
        raise ConfigError(
            f"{pyproject}: declares no dependencies ([project] dependencies or "
            "[tool.poetry.dependencies]); name a requirements file instead"
        )
    for lock_name in LOCKS:
        lock = pyproject.parent / lock_name
        if lock.is_file():
            try:
                packages = _read_lock(lock, data)
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{lock}: cannot read it ({exc}); fix the file") from None
            return _walk(roots, packages, lock)
    return [line for _, _, line in roots]


# ---- what the project asks for ------------------------------------------------------------


def _roots(data: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...], str]]:
    """(name, extras, requirement line) of each main dependency the project declares."""
    roots = []
    for text in (data.get("project") or {}).get("dependencies") or []:
        match = _NAME.match(str(text))
        if match:
            extras = tuple(e.strip() for e in (match.group(2) or "").split(",") if e.strip())
            roots.append((normalized(match.group(1)), extras, str(text)))
    poetry = ((data.get("tool") or {}).get("poetry") or {}).get("dependencies") or {}
    for name, spec in poetry.items():
        if normalized(name) == "python" or normalized(name) in {r[0] for r in roots}:
            continue
        line = _poetry_line(name, spec)
        if line is not None:
            table = spec if isinstance(spec, dict) else {}
            roots.append((normalized(name), tuple(table.get("extras") or ()), line))
    return roots


def _poetry_line(name: str, spec: Any) -> str | None:
    """A Poetry dependency as a PEP 508 line; None for an optional one (an extra's)."""
    table = spec if isinstance(spec, dict) else {"version": spec}
    if table.get("optional"):
        return None
    extras = table.get("extras") or []
    head = f"{name}[{','.join(extras)}]" if extras else name
    for key in ("git", "path", "url"):
        if key in table:
            where = table[key]
            return f"{head} @ {where}" if key != "path" else f"{head} @ file:{where}"
    version = _pep440(str(table.get("version") or "*"))
    marker = str(table.get("markers") or "")
    return f"{head}{version}" + (f" ; {marker}" if marker else "")


def _pep440(constraint: str) -> str:
    """Poetry's version constraint as a PEP 440 specifier ('' for any)."""
    parts = []
    for piece in (p.strip() for p in constraint.split(",")):
        if piece in ("", "*"):
            continue
        if piece.startswith(("^", "~")) and not piece.startswith("~="):
            caret = piece[0] == "^"
            numbers = [int(n) for n in re.findall(r"\d+", piece[1:])[:3]]
            release = ".".join(str(n) for n in numbers)
            if caret:
                first = next((i for i, n in enumerate(numbers) if n), len(numbers) - 1)
            else:
                first = 0 if len(numbers) == 1 else 1
            upper = [*numbers[:first], numbers[first] + 1]
            parts.append(f">={release},<{'.'.join(str(n) for n in upper)}")
        elif re.fullmatch(r"\d[\w.]*", piece):
            parts.append(f"=={piece}")
        else:
            parts.append(piece)
    return ",".join(parts)


# ---- what the lock pins ---------------------------------------------------------------------


class _Locked:
    """One locked package: its version, and the edges to what it needs (plain, and per extra)."""

    def __init__(self, version: str) -> None:
        self.version = version
        # (name, extras, marker) of each dependency; per extra, the same.
        self.needs: list[tuple[str, tuple[str, ...], str]] = []
        self.extras: dict[str, list[tuple[str, tuple[str, ...], str]]] = {}


def _read_lock(lock: Path, project: Mapping[str, Any]) -> dict[str, _Locked]:
    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    packages: dict[str, _Locked] = {}
    own = normalized(str((project.get("project") or {}).get("name") or ""))
    for entry in data.get("package") or []:
        name = normalized(str(entry.get("name", "")))
        if not name or name == own or name in packages:
            continue
        locked = packages[name] = _Locked(str(entry.get("version", "")))
        if lock.name == "uv.lock":
            locked.needs = [_uv_edge(d) for d in entry.get("dependencies") or []]
            for extra, edges in (entry.get("optional-dependencies") or {}).items():
                locked.extras[normalized(extra)] = [_uv_edge(d) for d in edges]
            continue
        optional = set()
        for dep, spec in (entry.get("dependencies") or {}).items():
            table = spec if isinstance(spec, dict) else {}
            if table.get("optional"):
                optional.add(normalized(dep))
                continue
            marker = str(table.get("markers") or "")
            locked.needs.append((normalized(dep), tuple(table.get("extras") or ()), marker))
        for extra, lines in (entry.get("extras") or {}).items():
            locked.extras[normalized(extra)] = [
                (normalized(m.group(1)), (), "") for line in lines if (m := _NAME.match(str(line)))
            ]
    return packages


def _uv_edge(dep: Mapping[str, Any]) -> tuple[str, tuple[str, ...], str]:
    marker = str(dep.get("marker") or "").replace("'", '"')
    return normalized(str(dep.get("name", ""))), tuple(dep.get("extra") or ()), marker


def _walk(
    roots: Iterable[tuple[str, tuple[str, ...], str]], packages: Mapping[str, _Locked], lock: Path
) -> list[str]:
    """Every package reached from the roots, pinned to the lock's version, with the markers of
    the edges that reach it (none when one edge reaches it unconditionally)."""
    markers: dict[str, set[str]] = {}
    todo = [(name, extras, "") for name, extras, _ in roots]
    expanded: set[tuple[str, str]] = set()
    while todo:
        name, extras, marker = todo.pop()
        if name not in packages:
            raise ConfigError(
                f"{lock}: {name} is a dependency but the lock has no entry for it; the lock is "
                "out of date: lock again (poetry lock, uv lock)"
            )
        seen = markers.setdefault(name, set())
        seen.add(marker)
        for key in ("", *(normalized(e) for e in extras)):
            if (name, key) in expanded:
                continue
            expanded.add((name, key))
            locked = packages[name]
            todo += locked.needs if not key else locked.extras.get(key, [])
    lines = []
    for name in sorted(markers):
        line = f"{name}=={packages[name].version}"
        found = markers[name]
        if "" not in found:
            line += " ; " + " or ".join(f"({m})" for m in sorted(found))
        lines.append(line)
    return lines
