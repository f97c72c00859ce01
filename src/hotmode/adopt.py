"""`hotmode init --from DIR`: a team's Compose files read, and the declaration that renders the
same modes inferred from them, with a report of what is kept, what changes and what cannot be.

The old files are never trusted to be whole. Each is parsed on its own first, so a file with
invalid YAML is named with its line and left out while the rest is adopted. The mode file sets
follow the convention the files' names tell (`docker-compose.yml` prod, `.<edition>.yml`,
`.dev.yml`, `.dev-<edition>.yml`), and Compose itself merges each set, as `docker compose
config` would for the team. What the declaration needs is read off those merged configurations:
the app service (built, mounting the source, or running a Python server), its source folder,
target, port and requirements, the edition variable and each edition's environment, what dev
adds, and the companion services beside the app.
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
from hotmode.errors import ComposeError, UsageError

_COMPOSE_NAME = re.compile(r"^(?:docker-)?compose(?:\.(?P<suffix>[a-z0-9][a-z0-9_-]*))?\.ya?ml$")
_SERVER = re.compile(
    r"\b(?:uvicorn|gunicorn|hypercorn|granian|daphne|fastapi\s+(?:run|dev)|hotmode\s+run)\b"
    r"[^&;|]*?\b(?P<target>[A-Za-z_][\w.]*:[A-Za-z_]\w*)\b"
)
_PORT_FLAG = re.compile(r"--port[= ](?P<port>\d{1,5})\b")
_LOG_LEVEL = re.compile(r"--log-level[= ](?P<level>[a-z]+)\b")
_REQUIREMENTS = re.compile(r"-r\s+(?P<path>[\w./-]+\.(?:txt|in))")
# Environment a dev overlay typically adds, carried into [dev] env.
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


def find_app(services: Mapping[str, Any]) -> str | None:
    """The app among the services, as `check` judges it (`hotmode.audit.roles`); of several,
    the one built from source."""
    from hotmode.audit.roles import classify

    apps = [name for name, role in classify(services).items() if role.is_app]
    apps.sort(key=lambda name: "build" not in services[name])
    return apps[0] if apps else None


def named_volumes(document: Mapping[str, Any], service: Mapping[str, Any]) -> dict[str, str]:
    """The named volumes a service mounts: target folder -> the volume's real name."""
    volumes = document.get("volumes") or {}
    used = {}
    for volume in service.get("volumes") or []:
        key = volume.get("source")
        if volume.get("type") == "volume" and key:
            used[volume["target"]] = (volumes.get(key) or {}).get("name") or key
    return used


def source_of(service: Mapping[str, Any], root: Path) -> Path | None:
    """The app's source folder: its build context, else the project folder it mounts."""
    build = service.get("build")
    if isinstance(build, dict) and build.get("context"):
        context = Path(str(build["context"]))
        if context.is_dir() and context.resolve().is_relative_to(root.resolve()):
            return context.resolve()
    for volume in service.get("volumes") or []:
        source = Path(str(volume.get("source", "")))
        mounted = volume.get("type") == "bind" and source.is_dir()
        if mounted and source.is_relative_to(root) and any(source.glob("*.py")):
            return source.resolve()
    return None


def server_facts(service: Mapping[str, Any]) -> dict[str, str]:
    """Target, port, log level and requirements file, as the command line says them."""
    text = command_text(service)
    facts = {}
    if match := _SERVER.search(text):
        facts["target"] = match.group("target")
    if match := _PORT_FLAG.search(text):
        facts["port"] = match.group("port")
    if match := _LOG_LEVEL.search(text):
        facts["log_level"] = match.group("level")
    if match := _REQUIREMENTS.search(text):
        facts["requirements"] = match.group("path")
    return facts


@dataclass
class Adoption:
    """The declaration inferred from the old files, and everything said about them."""

    values: dict[str, Any]
    editions: dict[str, dict[str, Any]]
    dev: dict[str, Any]
    service: str
    modes: list[OldMode]
    left_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # [services.NAME] and [services.NAME.MODE] tables, keyed "NAME" and "NAME.MODE".
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Data volumes whose name the declaration cannot keep, as "mode edition: old -> new".
    renamed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    not_carried: list[str] = field(default_factory=list)


def _edition_variable(
    files: OldFiles, base: Mapping[str, Any], app: str, broken: Collection[Path]
) -> tuple[str, str]:
    """The variable that carries the edition, and the default edition's name."""
    base_env = ((base.get("services") or {}).get(app) or {}).get("environment") or {}
    for edition, path in [*files.editions.items(), *files.dev_editions.items()]:
        if path in broken:
            continue
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        env = ((document.get("services") or {}).get(app) or {}).get("environment") or {}
        pairs = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for name, value in pairs:
            if str(value).strip().lower() == edition:
                return name, str(base_env.get(name) or "core").lower()
    return "APP_EDITION", "core"


def _env(mode: OldMode | None, app: str) -> dict[str, str]:
    if mode is None or mode.merged is None:
        return {}
    service = (mode.merged.get("services") or {}).get(app) or {}
    return {k: "" if v is None else str(v) for k, v in (service.get("environment") or {}).items()}


def adopt(root: Path, folder: Path, compose: Compose) -> Adoption:
    """Read the Compose files in `folder`; infer the declaration of the project at `root`."""
    from hotmode.scaffold import find_app_object, slug

    files = discover(folder)
    every = [p for p in (files.base, files.dev) if p] + [
        *files.editions.values(),
        *files.dev_editions.values(),
    ]
    if not every:
        raise UsageError(f"no Compose files in {folder} (docker-compose*.yml); check the folder")
    broken = {path: problem for path in every if (problem := yaml_problem(path))}
    left_out = [f"left out {problem}" for problem in broken.values()]
    notes = [f"not adopted: {path.name} (a site overlay; keep it as docker-compose.local.yml)"
             for path in files.other]  # fmt: skip
    first = next((p for p in (files.base, files.dev) if p and p not in broken), None)
    if first is None:
        why = next(iter(broken.values()), f"{folder} has no base or dev Compose file")
        raise UsageError(f"{why}; nothing can be adopted without a base or dev file")
    seed = merge(compose, "prod" if first == files.base else "dev", "?", (first,), broken)
    if seed.merged is None:
        raise UsageError(f"{first}: {seed.problem}; nothing can be adopted")
    app = find_app(seed.merged.get("services") or {})
    if app is None:
        raise UsageError(
            f"no app service in {first}: none is built, mounts the source or runs a Python "
            "server; write hotmode.toml by hand"
        )
    variable, default = (
        _edition_variable(files, seed.merged, app, broken)
        if files.editions or files.dev_editions
        else ("APP_EDITION", "")
    )
    modes = [merge(compose, m, e or "default", s, broken)
             for m, e, s in mode_sets(files, default, broken)]  # fmt: skip
    for mode in modes:
        if mode.problem and not any(mode.problem in item for item in left_out):
            left_out.append(f"left out {mode.label}: {mode.problem}")
    by_label = {(m.mode, m.edition): m for m in modes if m.merged is not None}
    prod = by_label.get(("prod", default or "default"))
    dev = by_label.get(("dev", default or "default"))
    reference = prod or dev or seed
    service = (reference.merged or {}).get("services", {}).get(app) or {}
    facts = server_facts(service)
    dev_service = ((dev.merged or {}).get("services", {}).get(app) or {}) if dev else {}
    dev_facts = server_facts(dev_service)
    source = source_of(service, root) or source_of(dev_service, root)
    if source is None:
        raise UsageError(f"cannot tell the source folder of service {app!r}; write it by hand")
    target = facts.get("target") or dev_facts.get("target")
    if target is None:
        found = find_app_object(source)
        target = f"{found[0]}:{found[1]}" if found else "main:app"
        notes.append(f"target {target}: found in the source, not in a command")
    port_text = facts.get("port") or _env(reference, app).get("PORT") or ""
    port = int(port_text) if port_text.isdigit() else 8000
    requirements = facts.get("requirements") or dev_facts.get("requirements")
    if requirements is None:
        dockerfile = source / "Dockerfile"
        text = dockerfile.read_text(encoding="utf-8") if dockerfile.is_file() else ""
        match = _REQUIREMENTS.search(text)
        requirements = match.group("path") if match else "requirements.txt"
    top = (reference.merged or {}).get("name")
    container = str(service.get("container_name") or "")
    name = container.removesuffix(f"-{app}") if container else ""
    if not name and top and not str(top).startswith(folder.name):
        name = str(top)
    name = slug(name or root.name)
    base_env = _env(prod, app)
    editions: dict[str, dict[str, Any]] = {}
    if default:
        editions[default] = {"default": True}
        for edition in sorted(set(files.editions) | set(files.dev_editions)):
            overlay = by_label.get(("prod", edition)) or by_label.get(("dev", edition))
            spec: dict[str, Any] = {}
            if overlay is None:
                continue  # its files were left out, and are named
            env = {k: v for k, v in _env(overlay, app).items()
                   if k != variable and (k not in base_env or base_env[k] != v)}  # fmt: skip
            if env and overlay.mode == "prod":
                spec["env"] = env
            if (folder / f".env.prod.{edition}").is_file() or edition == "saas":
                spec["env_file"] = f".env.prod.{edition}"
            editions[edition] = spec
    dev_env = {k: v for k, v in _env(dev, app).items()
               if base_env.get(k) != v and k not in ("PORT", variable)}  # fmt: skip
    values = {
        "name": name,
        "service": app,
        "source": source.relative_to(root.resolve()).as_posix() or ".",
        "target": target,
        "port": port,
        "requirements": requirements,
        "deployment": folder.resolve().relative_to(root.resolve()).as_posix(),
    }
    if default:
        values["edition_variable"] = variable
    dev_table: dict[str, Any] = {"env": dev_env} if dev_env else {}
    if dev_facts.get("log_level"):
        dev_table["log_level"] = dev_facts["log_level"]
    from hotmode import adopt_companions
    from hotmode.audit.roles import classify

    roles = classify((reference.merged or {}).get("services") or {}, app)
    companions = adopt_companions.infer(modes, app, root, default or "default", roles=roles)
    for table, spec in companions.tables.items():
        if "secrets" in spec and "." not in table:
            names = ", ".join(f"{values['deployment']}/secrets/{n}" for n in spec["secrets"])
            notes.append(f"prod reads {names}: create it before `hotmode up --prod`")
    return Adoption(
        values, editions, dev_table, app, modes, left_out, notes,
        companions.tables, companions.renamed, companions.changed, companions.not_carried,
    )  # fmt: skip


def declaration_text(adoption: Adoption, origin: Path) -> str:
    """The declaration, as TOML with a comment saying where it came from."""

    def key(text: str) -> str:
        return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else json.dumps(text)

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, dict):
            return "{ " + ", ".join(f"{key(k)} = {value(v)}" for k, v in item.items()) + " }"
        return json.dumps(item)

    lines = [
        f"# Adopted by `hotmode init --from {origin}`: the same modes, declared once.",
        "# Check the report it printed, then `hotmode render --adopt`.",
    ]
    lines += [f"{key} = {value(item)}" for key, item in adoption.values.items()]
    for edition, spec in adoption.editions.items():
        lines += ["", f"[editions.{edition}]"]
        lines += [f"{key} = {value(item)}" for key, item in spec.items()]
    if adoption.dev:
        lines += ["", "[dev]"]
        lines += [f"{key} = {value(item)}" for key, item in adoption.dev.items()]
    for table, spec in adoption.services.items():
        lines += ["", f"[services.{table}]"]
        lines += [f"{key} = {value(item)}" for key, item in spec.items()]
    return "\n".join(lines) + "\n"
