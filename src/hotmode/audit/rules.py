"""hotmode's own mode rules: the registry, what a rule sees, and the helpers rules share.

A rule is a function registered with its `Rule` (id, severity, the modes it applies to, a title
and a one-line fix). Service rules see one service of one stack's merged configuration; stack
rules see the whole stack, including its files' own text. Each yields `Hit`s naming the path in
the merged configuration that shows the problem; the checker turns paths into file and line.
The rules themselves live in `prod`, `dev` and `every`, one module per mode.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotmode.audit.build import Dockerfile, read_dockerfile
from hotmode.audit.model import Location, Rule, Severity, Stack
from hotmode.audit.sources import Segment, SourceSet


@dataclass(frozen=True)
class Context:
    """One stack under check: its merged configuration and the files it was merged from."""

    stack: Stack
    merged: Mapping[str, Any]
    sources: SourceSet
    _dockerfiles: dict[str, Dockerfile | None] = field(default_factory=dict, compare=False)

    def services(self, apps_only: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
        """The services of the stack; with `apps_only`, the app's own (see `Stack.apps`)."""
        services = self.merged.get("services") or {}
        found = [(str(n), s) for n, s in services.items() if isinstance(s, dict)]
        if apps_only:
            apps = set(self.stack.apps) or {n for n, s in found if "build" in s}
            found = [(n, s) for n, s in found if n in apps] if apps else found
        yield from found

    def is_app(self, name: str) -> bool:
        return any(name == app for app, _ in self.services(apps_only=True))

    def dockerfile(self, name: str, service: Mapping[str, Any]) -> Dockerfile | None:
        if name not in self._dockerfiles:
            build = service.get("build")
            self._dockerfiles[name] = read_dockerfile(build) if isinstance(build, dict) else None
        return self._dockerfiles[name]

    def source_folders(self, service: Mapping[str, Any]) -> list[Path]:
        """The app's source: the declared folder, else the service's local build context."""
        if self.stack.source is not None:
            return [self.stack.source]
        build = service.get("build")
        context = build.get("context") if isinstance(build, dict) else None
        if isinstance(context, str) and Path(context).is_absolute():
            return [Path(context)]
        return []


@dataclass(frozen=True)
class Hit:
    """A rule's finding before it is located: the path in the merged configuration it is about."""

    message: str
    path: tuple[Segment, ...] = ()
    location: Location | None = None


ServiceCheck = Callable[[Context, str, dict[str, Any]], Iterator[Hit]]
StackCheck = Callable[[Context], Iterator[Hit]]


@dataclass(frozen=True)
class Registered:
    rule: Rule
    service_check: ServiceCheck | None = None
    stack_check: StackCheck | None = None
    # compose-lint rules that say the same thing less precisely; their findings are folded in.
    covers: tuple[str, ...] = ()
    # Mode rules are about the app's own services; the rules for every mode, about all.
    every_service: bool = False


REGISTRY: dict[str, Registered] = {}


def service_rule(
    id: str,
    severity: Severity,
    modes: tuple[str, ...],
    title: str,
    fix: str,
    covers: tuple[str, ...] = (),
    every_service: bool = False,
) -> Callable[[ServiceCheck], ServiceCheck]:
    """Register a rule that checks one service at a time (the app's, unless `every_service`)."""

    def register(check: ServiceCheck) -> ServiceCheck:
        rule = Rule(id, severity, modes, title, fix)
        REGISTRY[id] = Registered(rule, check, None, covers, every_service)
        return check

    return register


def stack_rule(
    id: str, severity: Severity, modes: tuple[str, ...], title: str, fix: str
) -> Callable[[StackCheck], StackCheck]:
    """Register a rule that checks a whole stack."""

    def register(check: StackCheck) -> StackCheck:
        REGISTRY[id] = Registered(Rule(id, severity, modes, title, fix), None, check)
        return check

    return register


def cross_rule(id: str, severity: Severity, title: str, fix: str) -> Rule:
    """Register a rule the checker applies across stacks (it has no per-stack function)."""
    rule = Rule(id, severity, ("prod", "dev"), title, fix)
    REGISTRY[id] = Registered(rule)
    return rule


@functools.cache
def load_rules() -> dict[str, Registered]:
    """Every registered rule; importing the rule modules registers them."""
    from hotmode.audit import dev, every, prod  # noqa: F401

    return REGISTRY


# --- helpers the rule modules share ------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
WATCHERS = {"watchfiles", "watchmedo", "nodemon", "entr", "hupper", "reflex", "air"}


def is_true(value: Any) -> bool:
    return str(value).strip().lower() in _TRUE


def command_text(service: Mapping[str, Any], key: str) -> str:
    value = service.get(key)
    if isinstance(value, list):
        return " ".join(str(part) for part in value)
    return str(value) if value is not None else ""


def words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def reload_in(service: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The path of the command (or entrypoint) that reloads or watches, if one does."""
    for key in ("command", "entrypoint"):
        text = command_text(service, key)
        tokens = {Path(word).name for word in words(text)} | set(words(text))
        if re.search(r"(^|\s)--reload\b", text) or tokens & (WATCHERS | {"--watch"}):
            return ("command",) if key == "command" else ("entrypoint",)
    return None


@dataclass(frozen=True)
class Mount:
    """One entry of a service's merged `volumes:`, with its index there."""

    index: int
    type: str
    source: str | None
    target: str
    read_only: bool


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    found = []
    for index, item in enumerate(service.get("volumes") or []):
        if isinstance(item, dict) and isinstance(item.get("target"), str):
            source = item.get("source")
            found.append(
                Mount(
                    index,
                    str(item.get("type", "volume")),
                    str(source) if source else None,
                    item["target"].rstrip("/") or "/",
                    bool(item.get("read_only")),
                )
            )
    return found


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether `path` is `folder` or below it (lexically: Compose gives absolute paths)."""
    child, parent = Path(path), Path(folder)
    return child == parent or parent in child.parents


def source_mounts(context: Context, service: Mapping[str, Any]) -> list[Mount]:
    """The bind mounts of the source folder or of a path inside it."""
    folders = context.source_folders(service)
    binds = [m for m in mounts(service) if m.type == "bind" and m.source]
    if not folders:
        # No declaration and no build context: any folder bind mounted stands in for the source.
        return [m for m in binds if m.source and Path(m.source).is_dir()]
    return [m for m in binds if any(inside(m.source or "", f) for f in folders)]


def table(mapping: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A sub-mapping of the merged configuration, or an empty one."""
    value = mapping.get(key)
    return value if isinstance(value, dict) else {}


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): "" if v is None else str(v) for k, v in env.items()}
    return {}


def split_image(reference: str) -> tuple[str, str]:
    """`registry/repo:tag@digest` -> (repo without docker.io/library, tag or 'latest')."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    tag = "latest"
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        name = name.removeprefix(prefix)
    return name, tag
