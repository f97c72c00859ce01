"""The team's old Compose files: found, sorted by role, parsed one by one, and merged per mode.

The old files are never trusted to be whole. Each is parsed on its own first (`yaml_problem`), so
a file with invalid YAML is named with its line and left out while the rest is adopted. The mode
file sets follow the convention the files' names tell (`docker-compose.yml` prod,
`.<edition>.yml`, `.dev.yml`, `.dev-<edition>.yml`), and Compose itself merges each set, as
`docker compose config` would for the team.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotmode.compose.engine import Compose
from hotmode.errors import ComposeError

_COMPOSE_NAME = re.compile(r"^(?:docker-)?compose(?:\.(?P<suffix>[a-z0-9][a-z0-9_-]*))?\.ya?ml$")
_SITE_FILES = ("local", "override")


@dataclass(frozen=True)
class OldFiles:
    """The team's Compose files by role, as their names say."""

    folder: Path
    base: Path | None = None
    dev: Path | None = None
    editions: Mapping[str, Path] = field(default_factory=dict)
    dev_editions: Mapping[str, Path] = field(default_factory=dict)
    other: tuple[Path, ...] = ()


@dataclass(frozen=True)
class OldMode:
    """One mode x edition as the team ran it: its files, and Compose's merge of them."""

    mode: str
    edition: str
    files: tuple[Path, ...]
    merged: Mapping[str, Any] | None = None
    problem: str = ""

    @property
    def label(self) -> str:
        return f"{self.mode} {self.edition}"


def discover(folder: Path) -> OldFiles:
    """Sort the Compose files of `folder` by role; files of no known role are `other`."""
    base = dev = None
    editions: dict[str, Path] = {}
    dev_editions: dict[str, Path] = {}
    other = []
    for path in sorted(folder.iterdir()):
        match = _COMPOSE_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        suffix = match.group("suffix")
        if suffix is None:
            base = base or path
        elif suffix == "dev":
            dev = path
        elif suffix.startswith("dev-"):
            dev_editions[suffix.removeprefix("dev-")] = path
        elif suffix in _SITE_FILES or suffix in ("prod", "production"):
            other.append(path)
        else:
            editions[suffix] = path
    return OldFiles(folder, base, dev, editions, dev_editions, tuple(other))


def yaml_problem(path: Path) -> str:
    """'' if `path` is a YAML mapping; else 'file:line: what is wrong'."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror})"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return f"{where}: invalid YAML: {problem}"
    if not isinstance(document, dict):
        return f"{path}:1: not a Compose file (its top level is not a mapping)"
    return ""


def _standalone(path: Path, service: str | None) -> bool:
    """True if a dev file defines its app service whole (image or build), to run on its own."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    services = document.get("services") or {}
    candidates = [services.get(service)] if service else list(services.values())
    return any(isinstance(s, dict) and ("build" in s or "image" in s) and "ports" in s
               for s in candidates)  # fmt: skip


def mode_sets(
    files: OldFiles, default_edition: str, broken: Collection[Path] = ()
) -> list[tuple[str, str, tuple[Path, ...]]]:
    """The file set of every mode x edition the files make, as the team would pass with -f."""
    sets: list[tuple[str, str, tuple[Path, ...]]] = []
    base = (files.base,) if files.base else ()
    names = [default_edition, *sorted(set(files.editions) | set(files.dev_editions))]
    for edition in dict.fromkeys(names):
        overlay = (files.editions[edition],) if edition in files.editions else ()
        if base and (edition == default_edition or overlay):
            sets.append(("prod", edition, base + overlay))
    if files.dev is not None:
        alone = not base or (files.dev not in broken and _standalone(files.dev, None))
        sets.append(("dev", default_edition, (files.dev,) if alone else (*base, files.dev)))
    for edition, path in sorted(files.dev_editions.items()):
        overlay = (files.editions[edition],) if edition in files.editions else ()
        sets.append(("dev", edition, (*base, *overlay, path)))
    return sets


def merge(
    compose: Compose, mode: str, edition: str, paths: tuple[Path, ...], broken: Mapping[Path, str]
) -> OldMode:
    """Compose's merge of one old mode, or why it could not be had."""
    bad = [broken[p] for p in paths if p in broken]
    if bad:
        return OldMode(mode, edition, paths, problem=bad[0])
    env_file = paths[0].parent / f".env.prod.{edition}"
    args = ["--env-file", str(env_file)] if env_file.is_file() else []
    try:
        result = compose.run(paths, None, *args, "config", "--format", "json")
    except ComposeError as exc:
        return OldMode(mode, edition, paths, problem=f"Compose refused it: {exc}")
    return OldMode(mode, edition, paths, json.loads(result.stdout))


def command_text(service: Mapping[str, Any]) -> str:
    """The service's command (and entrypoint) as one string, for matching."""
    parts = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if isinstance(value, list):
            parts.append(shlex.join(str(v) for v in value))
        elif isinstance(value, str):
            parts.append(value)
    return " ".join(parts)


def named_volumes(document: Mapping[str, Any], service: Mapping[str, Any]) -> dict[str, str]:
    """The named volumes a service mounts: target folder -> the volume's real name."""
    volumes = document.get("volumes") or {}
    used = {}
    for volume in service.get("volumes") or []:
        key = volume.get("source")
        if volume.get("type") == "volume" and key:
            used[volume["target"]] = (volumes.get(key) or {}).get("name") or key
    return used
