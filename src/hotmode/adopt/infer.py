"""`hotmode init --from DIR`: the declaration that renders a team's modes, inferred from them.

The team's files are read and merged per mode by `hotmode.adopt.old`. What the declaration needs
is read off those merged configurations:
the app service (built, mounting the source, or running a Python server), its source folder,
target, port and requirements, the edition variable and each edition's environment, what dev
adds, and the companion services beside the app.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hotmode.adopt.app import (
    app_port,
    app_requirements,
    app_source,
    app_target,
    health_probe,
    server_facts,
)
from hotmode.adopt.migrations import migration_jobs
from hotmode.adopt.old import (
    OldFiles,
    OldMode,
    command_text,
    discover,
    merge,
    mode_sets,
    yaml_problem,
)
from hotmode.compose.engine import Compose
from hotmode.errors import UsageError

if TYPE_CHECKING:
    from hotmode.audit.model import Kind


def find_app(
    services: Mapping[str, Any],
    files: Sequence[Path] = (),
    named: str | None = None,
) -> tuple[str, dict[str, Kind]]:
    """The app among the services, as `check` judges it (`hotmode.audit.roles`), with the
    `x-hotmode` roles the files annotate; `named` (`--app`) and the annotation decide. Of
    several apps, the one built from source; none, or several candidates the evidence cannot
    tell apart, is an error naming them and the fix."""
    from hotmode.audit import origin
    from hotmode.audit.roles import FIX, annotated_roles, app_candidates, classify
    from hotmode.audit.sources import read_sources

    annotated = annotated_roles(read_sources(files).files, [str(n) for n in services])
    if named is not None:
        if named not in services:
            names = ", ".join(sorted(services)) or "none"
            raise UsageError(f"--app {named}: no such service; the services are: {names}")
        return named, annotated
    # The repository's own image and the project's tree are evidence here as in `check`.
    folder = Path(files[0]).absolute().parent if files else None
    repository = origin.repository(folder) if folder else None
    roles = classify(services, None, annotated, repository, folder)
    apps = [name for name, role in roles.items() if role.is_app]
    apps.sort(key=lambda name: "build" not in services[name])
    if apps:
        return apps[0], annotated
    candidates = app_candidates(roles)
    if candidates:
        raise UsageError(
            f"the evidence does not say which service is the app (it may be "
            f"{' or '.join(candidates)}); {FIX}"
        )
    raise UsageError(
        "no service shows evidence of being the app (a Python server, a Python build or source, "
        f"a shared build with workers); {FIX}"
    )


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
    kept: list[str] = field(default_factory=list)
    # [jobs.NAME]: what runs before the app and must succeed (a migration), NAME -> command.
    jobs: dict[str, list[str]] = field(default_factory=dict)


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


def _sets_edition(path: Path, edition: str, app: str) -> bool:
    """True when the overlay at `path` gives the app a variable whose value is the edition's
    name (`LG_BACKEND_EDITION: saas`): the evidence that the file is an edition."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    env = ((document.get("services") or {}).get(app) or {}).get("environment") or {}
    pairs = env.items() if isinstance(env, dict) else (str(e).split("=", 1) for e in env)
    return any(str(value).strip().lower() == edition for _, value in (p for p in pairs if p))


def _editions_with_evidence(
    files: OldFiles, app: str, broken: Collection[Path], notes: list[str]
) -> OldFiles:
    """The files whose name reads as an edition (`compose-ha.yml`) and that set no variable to
    that name are no edition: not adopted, and said, never an invented edition variable."""
    dropped: list[Path] = []
    kept: dict[str, dict[str, Path]] = {"editions": {}, "dev_editions": {}}
    for key, found in (("editions", files.editions), ("dev_editions", files.dev_editions)):
        for edition, path in found.items():
            # A dev edition file is stacked on its edition's overlay: that one's evidence holds.
            if path in broken or edition in kept["editions"] or _sets_edition(path, edition, app):
                kept[key][edition] = path
            else:
                dropped.append(path)
    for path in dropped:
        notes.append(
            f"not adopted: {path.name} (its name reads as an edition, but it gives {app} no "
            "variable with that value: no evidence it is one; pass the file with -f as the "
            "team does, or declare the edition)"
        )
    if not dropped:
        return files
    return dataclasses.replace(
        files,
        other=(*files.other, *dropped),
        editions=kept["editions"],
        dev_editions=kept["dev_editions"],
    )


def _env(mode: OldMode | None, app: str) -> dict[str, str]:
    if mode is None or mode.merged is None:
        return {}
    service = (mode.merged.get("services") or {}).get(app) or {}
    return {k: "" if v is None else str(v) for k, v in (service.get("environment") or {}).items()}


# Where projects keep their Compose files when not beside the code.
_USUAL = ("docker", "docker/compose", "deploy", "deployment", "compose", ".devcontainer")
# Files `render` writes into the deployment folder beside the Compose files.
_RENDERED_BESIDE = (".gitignore", "Dockerfile", ".env.example")


def _deployment(root: Path, folder: Path, notes: list[str]) -> str:
    """The deployment folder: the old files' own, unless rendering there would replace a file
    of the project's own (the root's .gitignore); then a folder of its own."""
    clash = [n for n in _RENDERED_BESIDE if (folder / n).exists()]
    if folder.resolve() != root.resolve() and ".gitignore" not in clash:
        return folder.resolve().relative_to(root.resolve()).as_posix()
    chosen = next(
        name for name in ("deployment", "hotmode-deployment", "deploy-hotmode")
        if not (root / name).exists() or not any((root / name).iterdir())
    )  # fmt: skip
    notes.append(
        f"deployment = {chosen!r}: rendering into {folder.name or '.'}/ would replace "
        f"{', '.join(clash) or 'the project root'}; the old files stay where they are"
    )
    return chosen


def _dev_style(service: Mapping[str, Any]) -> str | None:
    """Why a service is run as dev (it reloads, or mounts its build's source), or None."""
    from hotmode.audit.commands import reloading

    env = {k: "" if v is None else str(v) for k, v in (service.get("environment") or {}).items()}
    why = reloading(shlex.split(command_text(service)), env)
    if why:
        return why
    build = service.get("build")
    context = str(build.get("context", "")) if isinstance(build, dict) else ""
    for volume in service.get("volumes") or []:
        source = str(volume.get("source", ""))
        if context and volume.get("type") == "bind" and Path(source).is_relative_to(context):
            return f"it mounts its source {Path(source).name or source}/"
    return None


def _dev_if_dev_style(mode: OldMode, app: str, notes: list[str]) -> OldMode:
    """A lone file whose app reloads or mounts its source is the team's dev: adopted as dev,
    with prod derived from the declaration (and said so)."""
    service = ((mode.merged or {}).get("services") or {}).get(app) or {}
    why = _dev_style(service)
    if why is None:
        return mode
    names = " + ".join(p.name for p in mode.files)
    notes.append(
        f"{names} is a dev file ({app}: {why}): adopted as dev; prod is derived from the same "
        "declaration (the source baked in, no reload), there being no prod file to compare"
    )
    return dataclasses.replace(mode, mode="dev")


def app_jobs(services: Mapping[str, Any], app: str, notes: list[str]) -> dict[str, list[str]]:
    """The services the app waits for to finish with exit 0 (`depends_on: condition:
    service_completed_successfully`) that run the app's own image or build: its jobs."""
    from hotmode.audit.evidence import build_name, build_of, image_of

    this = services.get(app) or {}
    jobs = {}
    for name, wait in (this.get("depends_on") or {}).items():
        service = services.get(name) or {}
        if (wait or {}).get("condition") != "service_completed_successfully":
            continue
        build, own = build_of(service, services), build_of(this, services)
        same = (image_of(service) is not None and image_of(service) == image_of(this)) or (
            build is not None and own is not None and build_name(build) == build_name(own)
        )
        command = service.get("command") or service.get("entrypoint")
        if not same or not command:
            continue
        jobs[name] = [str(part) for part in command]
        notes.append(
            f"[jobs.{name}]: {app} waits for {name} to succeed (service_completed_successfully): "
            "it runs before the app in every mode, natively too, with the app's environment"
        )
    return jobs


def _find_files(folder: Path) -> OldFiles:
    """The Compose files of `folder`, else of the first usual place below it that has some."""
    files = discover(folder)
    if files.base or files.dev or files.editions or files.dev_editions:
        return files
    for below in _USUAL:
        if (folder / below).is_dir():
            found = discover(folder / below)
            if found.base or found.dev or found.editions or found.dev_editions:
                return found
    return files


def _seed(
    compose: Compose,
    files: OldFiles,
    broken: Mapping[Path, str],
    folder: Path,
    named: str | None,
) -> tuple[OldMode, str, dict[str, Kind]]:
    """The first file (base, prod, dev, override) that Compose reads and that holds the app,
    with the app: the app may be only in a second file (`docker-compose.prod.yml` holds the
    app, `docker-compose.yml` only the database the team's dev runs beside a native app)."""
    problems: list[str] = []
    refusal: UsageError | None = None
    for first in (files.base, files.prod, files.dev, files.override):
        if first is None or first in broken:
            continue
        seed = merge(compose, "prod" if first != files.dev else "dev", "?", (first,), broken)
        if seed.merged is None:
            problems.append(f"{first.name}: {seed.problem}")
            continue
        services = seed.merged.get("services") or {}
        if named is not None and named not in services:
            refusal = refusal or UsageError(f"--app {named}: no such service in {first.name}")
            continue
        try:
            app, annotated = find_app(services, seed.files, named)
        except UsageError as exc:
            refusal = refusal or exc
            continue
        return seed, app, annotated
    if refusal is not None and not problems:
        raise refusal
    why = "; ".join(problems or list(broken.values()))
    if refusal is not None:
        raise UsageError(f"{refusal}; {why}")
    raise UsageError(
        f"{why or f'{folder} has no base or dev Compose file'}; nothing can be adopted "
        "without a base, prod or dev file (docker-compose.yml, docker-compose.dev.yml)"
    )


def adopt(
    root: Path,
    folder: Path,
    compose: Compose,
    *,
    share_data: bool = False,
    given: Mapping[str, Any] | None = None,
) -> Adoption:
    """Read the Compose files in `folder` (or a usual place below it: docker/, deploy/,
    .devcontainer/); infer the declaration of the project at `root`."""
    from hotmode.adopt.scaffold import find_health, slug

    files = _find_files(folder)
    folder = files.folder
    every = files.every
    if not every:
        raise UsageError(f"no Compose files in {folder} (docker-compose*.yml); check the folder")
    broken = {path: problem for path in every if (problem := yaml_problem(path))}
    left_out = [f"left out {problem}" for problem in broken.values()]
    notes = [f"not adopted: {path.name} (a site overlay; keep it as docker-compose.local.yml)"
             for path in files.other]  # fmt: skip
    given = {k: v for k, v in (given or {}).items() if v}
    seed, app, annotated = _seed(compose, files, broken, folder, given.get("service"))
    files = _editions_with_evidence(files, app, broken, notes)
    variable, default = (
        _edition_variable(files, seed.merged or {}, app, broken)
        if files.editions or files.dev_editions
        else ("APP_EDITION", "")
    )
    modes = [merge(compose, m, e or "default", s, broken)
             for m, e, s in mode_sets(files, default, broken)]  # fmt: skip
    if modes and all(m.mode == "prod" for m in modes):
        modes[0] = _dev_if_dev_style(modes[0], app, notes)
    for mode in modes:
        if mode.problem and not any(mode.problem in item for item in left_out):
            left_out.append(f"left out {mode.label}: {mode.problem}")
        for missing in mode.inputs:
            if "env file" in missing:
                left_out.append(
                    f"not carried {mode.label}: {missing}: its variables are unknown; the app "
                    "reads them from the deployment's .env: write them there"
                )
            else:
                notes.append(f"{mode.label}: {missing}")
    by_label = {(m.mode, m.edition): m for m in modes if m.merged is not None}
    prod = by_label.get(("prod", default or "default"))
    dev = by_label.get(("dev", default or "default"))
    reference = prod or dev or seed
    service = (reference.merged or {}).get("services", {}).get(app) or {}
    dev_service = ((dev.merged or {}).get("services", {}).get(app) or {}) if dev else {}
    dev_facts = server_facts(dev_service)
    source = app_source((service, dev_service), app, root)
    services = (service, dev_service)
    target, source = app_target(services, source, root, given.get("target"), notes)
    port = app_port(services, given.get("port"), _env(reference, app).get("PORT"))
    requirements = app_requirements(services, source, given.get("requirements"))
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
            if (folder / f".env.prod.{edition}").is_file():
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
        "deployment": _deployment(root, folder, notes),
    }
    health = find_health(source)
    probed = health_probe(service) or health_probe(dev_service)
    if health:
        values["health"] = health
        notes.append(f"health {health}: the app's own route")
    elif probed:
        values["health"] = probed
        notes.append(f"health {probed}: the path the old files' healthcheck asks for")
    else:
        notes.append("health: the app has no health route; ready means it answers HTTP at all")
    if default:
        values["edition_variable"] = variable
    from hotmode.adopt import companions as adopt_companions
    from hotmode.audit.roles import classify

    # Every mode's services: a companion may be in one mode only (the database of a dev file
    # beside a prod file that holds only the app).
    everywhere: dict[str, Any] = {}
    for mode in (m for m in reversed(modes) if m.merged is not None):
        everywhere.update((mode.merged or {}).get("services") or {})
    everywhere.update((reference.merged or {}).get("services") or {})
    roles = classify(everywhere, app, annotated)
    jobs = app_jobs((reference.merged or {}).get("services") or {}, app, notes)
    proposed, said = migration_jobs(
        [command_text(s) for s in services if s], source, taken=jobs.values()
    )
    jobs.update({name: command for name, command in proposed.items() if name not in jobs})
    notes += said
    companions = adopt_companions.infer(
        modes,
        app,
        root,
        default or "default",
        roles=roles,
        share_data=share_data,
        jobs=jobs,
        source=source,
    )
    adopt_companions.separate_derived(
        companions, name, list(editions) or ["default"], default or "default"
    )
    # A companion's URL that dev gave with dev's own password is the companion's `app_env`
    # with dev's secret: carried there, never inline in [dev] env.
    for table, spec in companions.tables.items():
        dev_secrets = companions.tables.get(f"{table}.dev", {}).get("secrets") or {}
        for key, template in (spec.get("app_env") or {}).items():
            url = adopt_companions.dev_url(template, table, spec.get("port"), dev_secrets)
            if dev_env.get(key) == url:
                del dev_env[key]
    # The team's own dev variables, and none of hotmode's guesses (DEBUG, LOG_LEVEL).
    dev_table: dict[str, Any] = {"defaults": False}
    if dev_env:
        dev_table["env"] = dev_env
    if dev_facts.get("log_level"):
        dev_table["log_level"] = dev_facts["log_level"]
    for table, spec in companions.tables.items():
        if "secrets" in spec and "." not in table:
            names = ", ".join(f"{values['deployment']}/secrets/{n}" for n in spec["secrets"])
            notes.append(f"prod reads {names}: create it before `hotmode up --prod`")
    return Adoption(
        values, editions, dev_table, app, modes, left_out, notes,
        companions.tables, companions.renamed, companions.changed, companions.not_carried,
        companions.kept, jobs,
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
    for name, command in adoption.jobs.items():
        lines += ["", f"[jobs.{name}]", f"command = {value(command)}"]
    return "\n".join(lines) + "\n"
