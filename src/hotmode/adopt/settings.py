"""Where the app's own source names a companion's Compose host, and the variable that overrides it.

An app may reach its database through a default in its own settings (`db_host: str = "db"` in a
pydantic-settings class, `os.getenv("DATABASE_URL", "postgresql://...@db:5432/app")`) rather than
through its Compose environment. Natively the companion runs elsewhere, so the value must be
pointed there, as the same variable the settings read: the field's environment name (with the
class's `env_prefix`), or the variable `getenv` reads. A port beside such a host (`db_port: int =
5432`, the companion's own port) is pointed at the companion's port likewise. A URL naming the
host that no variable overrides is named by file and line, never rewritten in the team's file.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Folders that are not the app's own code.
_SKIP = {"tests", "test", "node_modules", "venv", "site-packages", "migrations", "alembic"}
_LARGEST = 200_000
_GETTERS = {"getenv", "get", "config", "env", "str"}


_PASSWORD = re.compile(r"PASSWORD|PASSWD|PASS$|PWD$", re.IGNORECASE)


@dataclass
class Named:
    """What the app's source says about one companion's host: the variables that override it
    (name -> the value the source defaults it to), and the places no variable overrides."""

    variables: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    # A password field beside the host's (`DB_PASSWORD`), with the value the source defaults it to.
    passwords: dict[str, str] = field(default_factory=dict)


def names_host(text: str, host: str) -> bool:
    """True when `text` is the host itself or a URL (or host:port) naming it."""
    if text == host:
        return True
    return bool(re.search(rf"(?:[@/]|^){re.escape(host)}(?::\d+)?(?:[/?]|$)", text))


def _python_files(source: Path) -> Iterator[Path]:
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source).parts
        if any(part.startswith(".") or part in _SKIP for part in relative[:-1]):
            continue
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _LARGEST:
            continue
        yield path


def _is_settings(node: ast.ClassDef) -> bool:
    for base in node.bases:
        name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
        if str(name).endswith("BaseSettings"):
            return True
    return False


def _text(value: ast.expr | None) -> str | None:
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value
    return None


def _prefix(node: ast.ClassDef) -> str:
    """The class's `env_prefix` (model_config, or the inner `class Config`)."""
    for item in ast.walk(node):
        pairs: list[tuple[str | None, ast.expr | None]] = []
        if isinstance(item, ast.keyword):
            pairs.append((item.arg, item.value))
        elif isinstance(item, ast.Dict):
            pairs += [(_text(k), v) for k, v in zip(item.keys, item.values, strict=True)]
        elif isinstance(item, ast.Assign):
            pairs += [(t.id, item.value) for t in item.targets if isinstance(t, ast.Name)]
        prefix = next((_text(v) for k, v in pairs if k == "env_prefix" and _text(v)), None)
        if prefix is not None:
            return prefix
    return ""


def _default(value: ast.expr | None) -> tuple[object, str | None]:
    """A field's default, and the environment name a `Field(alias=...)` gives it."""
    if isinstance(value, ast.Constant):
        return value.value, None
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Field":
        default: object = None
        if value.args and isinstance(value.args[0], ast.Constant):
            default = value.args[0].value
        alias = None
        for keyword in value.keywords:
            if keyword.arg == "default" and isinstance(keyword.value, ast.Constant):
                default = keyword.value.value
            if keyword.arg in ("alias", "validation_alias", "env") and _text(keyword.value):
                alias = _text(keyword.value)
        return default, alias
    return None, None


def _fields(node: ast.ClassDef) -> Iterator[tuple[str, object, int]]:
    """(environment name, default, line) of each field of a settings class."""
    prefix = _prefix(node)
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            default, alias = _default(item.value)
            yield (alias or f"{prefix}{item.target.id}").upper(), default, item.lineno


def _getter_calls(tree: ast.AST) -> Iterator[tuple[str, object, int]]:
    """(variable, default, line) of `os.getenv("X", d)`, `os.environ.get("X", d)`,
    `config("X", default=d)`."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or len(node.args) < 1:
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        first = node.args[0]
        if name not in _GETTERS or not isinstance(first, ast.Constant):
            continue
        if not isinstance(first.value, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", first.value):
            continue
        default: object = None
        if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
            default = node.args[1].value
        for keyword in node.keywords:
            if keyword.arg == "default" and isinstance(keyword.value, ast.Constant):
                default = keyword.value.value
        yield first.value, default, node.lineno


def named_in_source(source: Path, host: str, port: object) -> Named:
    """What the app's source at `source` says about the companion `host` (its port `port`)."""
    found = Named()
    for path in _python_files(source):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        overridden: set[int] = set()
        groups: list[list[tuple[str, object, int]]] = [
            list(_fields(node))
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and _is_settings(node)
        ]
        groups.append(list(_getter_calls(tree)))
        for group in groups:
            hosts = [(n, d, line) for n, d, line in group
                     if isinstance(d, str) and names_host(d, host)]  # fmt: skip
            for name, default, line in hosts:
                found.variables.setdefault(name, str(default))
                overridden.add(line)
            if hosts:
                found.passwords.update(
                    (n, d) for n, d, _ in group
                    if isinstance(d, str) and d and _PASSWORD.search(n)
                )  # fmt: skip
            if hosts and port:
                found.ports += [
                    n for n, d, _ in group
                    if "PORT" in n and str(d) == str(port) and n not in found.ports
                ]  # fmt: skip
        literals = [n for n in ast.walk(tree) if isinstance(n, ast.Constant)]
        for node in literals:
            text = _text(node)
            if text is None or "://" not in text or not names_host(text, host):
                continue
            if node.lineno in overridden or _in_field(tree, node):
                continue
            where = f"{path.relative_to(source).as_posix()}:{node.lineno}"
            found.places.append(where)
    return found


def _in_field(tree: ast.AST, literal: ast.Constant) -> bool:
    """True when the literal is a settings field's default or a getter's (already carried)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and _is_settings(node):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and any(n is literal for n in ast.walk(item)):
                    return True
    return False
