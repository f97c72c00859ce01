"""The team's old Compose files: found, sorted by role, parsed one by one, and merged per mode.

The old files are never trusted to be whole. Each is parsed on its own first (`yaml_problem`), so
a file with invalid YAML is named with its line and left out while the rest is adopted. The mode
file sets follow the convention the files' names tell (`docker-compose.yml` prod,
`.<edition>.yml`, `.dev.yml`, `.dev-<edition>.yml`; `-` works as `.`; a `.prod.yml` makes the
base dev's; `.override.yml` or `.local.yml` is dev's when there is no dev file), and Compose
itself merges each set, as `docker compose config` would for the team, but without the inputs a
checkout lacks: missing env files and unset variables get `check`'s placeholders
(`hotmode.audit.inputs`), and each is named with its file and line, so one mode's missing
secret costs only what it names.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotmode.audit.model import Location
from hotmode.compose.engine import Compose
from hotmode.errors import ComposeError

_COMPOSE_NAME = re.compile(r"^(?:docker-)?compose(?:[.-](?P<suffix>[a-z0-9][a-z0-9_-]*))?\.ya?ml$")
_SITE_FILES = ("override", "local")
_PROD_FILES = ("prod", "production")


@dataclass(frozen=True)
class OldFiles:
    """The team's Compose files by role, as their names say."""

    folder: Path
    base: Path | None = None
    dev: Path | None = None
    editions: Mapping[str, Path] = field(default_factory=dict)
    dev_editions: Mapping[str, Path] = field(default_factory=dict)
    other: tuple[Path, ...] = ()
    # A `.prod.yml` beside the base: the base is then dev's (unless a dev file says otherwise).
    prod: Path | None = None
    # `.override.yml` / `.local.yml` taken as dev's file, there being no dev file.
    override: Path | None = None

    @property
    def every(self) -> list[Path]:
        """Every file that takes part in a mode."""
        found = [p for p in (self.base, self.prod, self.dev, self.override) if p]
        return [*found, *self.editions.values(), *self.dev_editions.values()]


@dataclass(frozen=True)
class OldMode:
    """One mode x edition as the team ran it: its files, and Compose's merge of them."""

    mode: str
    edition: str
    files: tuple[Path, ...]
    merged: Mapping[str, Any] | None = None
    problem: str = ""
    # What the checkout lacked, each at its file:line: missing env files, unset variables.
    inputs: tuple[str, ...] = ()
    # The env files each service names (as given, for the report).
    env_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The variables those files set, where they are on disk (the merge leaves env files out):
    # service -> variable -> the file's name.
    env_file_variables: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.mode} {self.edition}"


def discover(folder: Path) -> OldFiles:
    """Sort the Compose files of `folder` by role; files of no known role are `other`."""
    base = dev = prod = None
    editions: dict[str, Path] = {}
    dev_editions: dict[str, Path] = {}
    site: list[Path] = []
    for path in sorted(folder.iterdir()):
        match = _COMPOSE_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        suffix = match.group("suffix")
        if suffix is None:
            base = base or path
        elif suffix in ("dev", "development"):
            dev = path
        elif suffix.startswith("dev-"):
            dev_editions[suffix.removeprefix("dev-")] = path
        elif suffix in _PROD_FILES:
            prod = prod or path
        elif suffix in _SITE_FILES:
            site.append(path)
        else:
            editions[suffix] = path
    site.sort(key=lambda p: _SITE_FILES.index(_suffix(p)))
    override = site.pop(0) if site and dev is None and (base or prod) else None
    return OldFiles(folder, base, dev, editions, dev_editions, tuple(site), prod, override)


def named_mode(paths: Sequence[Path]) -> str | None:
    """'dev' when a file's name says dev (`docker-compose.dev.yml`, `compose-dev-saas.yaml`,
    `.development.yml`), 'prod' when one says prod; for a base file alone, 'dev' when a prod
    file and no dev file sit beside it (as `discover` sorts them); None when the names say
    neither (or both)."""
    said = set()
    for path in paths:
        suffix = _suffix(path)
        if suffix in ("dev", "development") or suffix.startswith("dev-"):
            said.add("dev")
        elif suffix in _PROD_FILES:
            said.add("prod")
    if not said and len(paths) == 1 and paths[0].parent.is_dir():
        beside = discover(paths[0].parent)
        base, prod, dev = beside.base, beside.prod, beside.dev
        if base is not None and base.name == paths[0].name and prod is not None and dev is None:
            return "dev"
    return said.pop() if len(said) == 1 else None


def _suffix(path: Path) -> str:
    match = _COMPOSE_NAME.match(path.name)
    return (match.group("suffix") or "") if match else ""


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


def _defines_builds(path: Path) -> bool:
    """True if a file builds a service itself: a whole configuration, not an overlay."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    services = document.get("services") or {}
    return any(isinstance(s, dict) and "build" in s for s in services.values())


def mode_sets(
    files: OldFiles, default_edition: str, broken: Collection[Path] = ()
) -> list[tuple[str, str, tuple[Path, ...]]]:
    """The file set of every mode x edition the files make, as the team would pass with -f."""
    sets: list[tuple[str, str, tuple[Path, ...]]] = []
    base = (files.base,) if files.base else ()
    dev_file = files.dev or files.override
    prod = base
    if files.prod is not None:
        alone = not base or (files.prod not in broken and _defines_builds(files.prod))
        prod = (files.prod,) if alone else (*base, files.prod)
        if dev_file is None and base:
            # `docker-compose.yml` beside `docker-compose.prod.yml` is what the team runs in dev.
            sets.append(("dev", default_edition, base))
    names = [default_edition, *sorted(set(files.editions) | set(files.dev_editions))]
    for edition in dict.fromkeys(names):
        overlay = (files.editions[edition],) if edition in files.editions else ()
        if prod and (edition == default_edition or overlay):
            sets.append(("prod", edition, prod + overlay))
    if dev_file is not None:
        # Compose always merges `compose.override.yml` onto the base: never on its own.
        alone = not base or (
            _suffix(dev_file) != "override"
            and dev_file not in broken
            and _standalone(dev_file, None)
        )
        sets.append(("dev", default_edition, (dev_file,) if alone else (*base, dev_file)))
    for edition, path in sorted(files.dev_editions.items()):
        overlay = (files.editions[edition],) if edition in files.editions else ()
        sets.append(("dev", edition, (*base, *overlay, path)))
    return sets


def merge(
    compose: Compose, mode: str, edition: str, paths: tuple[Path, ...], broken: Mapping[Path, str]
) -> OldMode:
    """Compose's merge of one old mode, with `check`'s placeholders for what the checkout
    lacks (named in `inputs`), or why it could not be had."""
    from hotmode.audit.checker import file_stack, merged_config
    from hotmode.audit.sources import read_sources

    bad = [broken[p] for p in paths if p in broken]
    if bad:
        return OldMode(mode, edition, paths, problem=bad[0])
    try:
        document, prepared = merged_config(file_stack(paths, mode), read_sources(paths), compose)
    except ComposeError as exc:
        return OldMode(mode, edition, paths, problem=f"Compose refused it: {exc}")
    inputs = []
    for files in prepared.env_files.values():
        for env_file in files:
            if env_file.required and not env_file.path.is_file():
                inputs.append(f"{_at(env_file.named_at)}env file {env_file.path.name} is not here")
    for unset in (*prepared.unset, *prepared.empty):
        inputs.append(
            f"{_at(unset.location)}variable {unset.name} is not set (adopted with a placeholder)"
        )
    env_files = {
        service: tuple(env_file.path.name for env_file in files)
        for service, files in prepared.env_files.items()
    }
    variables = {
        service: {name: value.location.path.name for name, value in values.items()}
        for service, values in prepared.env_values.items()
    }
    return OldMode(mode, edition, paths, document, inputs=tuple(dict.fromkeys(inputs)),
                   env_files=env_files, env_file_variables=variables)  # fmt: skip


def _at(location: Location | None) -> str:
    if location is None:
        return ""
    return f"{location.path.name}:{location.line}: " if location.line else f"{location.path.name}: "


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
