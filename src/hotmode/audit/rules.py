"""hotmode's own mode rules: the registry, what a rule sees, and the helpers rules share.

A rule is a function registered with its `Rule` (id, severity, the modes it applies to, a title
and a one-line fix). Service rules see one service of one stack's merged configuration; stack
rules see the whole stack, including its files' own text. Each yields `Hit`s naming the path in
the merged configuration that shows the problem; the checker turns paths into file and line.
The rules themselves live in `prod`, `dev` and `every`, one module per mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hotmode.audit import origin, scripts
from hotmode.audit.build import Dockerfile, read_dockerfile, unread
from hotmode.audit.commands import command_words, reloading, server, worker
from hotmode.audit.evidence import build_of, holds_python, service_command
from hotmode.audit.inputs import Prepared
from hotmode.audit.model import Kind, Location, Role, Rule, Severity, Stack
from hotmode.audit.roles import annotated_roles, classify
from hotmode.audit.sources import Segment, SourceSet

ALL_KINDS = frozenset(Kind)
# The app and what shares its code: the kinds the source and image rules are about.
CODE = frozenset({Kind.APP, Kind.WORKER, Kind.JOB})
# Where images usually keep an app's code: a missing folder mounted there may be the source.
CODE_TARGETS = {"/app", "/code", "/src", "/usr/src/app", "/srv", "/srv/app", "/opt/app", "/web"}


@dataclass(frozen=True)
class Context:
    """One stack under check: its merged configuration and the files it was merged from."""

    stack: Stack
    merged: Mapping[str, Any]
    sources: SourceSet
    prepared: Prepared | None = None
    _dockerfiles: dict[str, Dockerfile | None] = field(default_factory=dict, compare=False)
    _roles: dict[str, Role] = field(default_factory=dict, compare=False)

    @property
    def roles(self) -> dict[str, Role]:
        """What each service is (see `roles.classify`); the declared apps win."""
        if not self._roles:
            services = self.merged.get("services") or {}
            annotated = annotated_roles(self.sources.files, [str(name) for name in services])
            repository = origin.repository(self.project_directory)
            found = classify(
                services, self.stack.apps, annotated, repository, self.project_directory
            )
            for name, role in found.items():
                service = services.get(name)
                profiles = service.get("profiles") if isinstance(service, dict) else None
                if isinstance(profiles, list) and profiles:
                    found[name] = replace(role, profile=", ".join(map(str, profiles)))
            self._roles.update(found)
        return self._roles

    def is_app(self, name: str) -> bool:
        """Whether a service is the app (declared, named with `--app`, or judged so)."""
        role = self.roles.get(name)
        return role is not None and role.is_app

    def services(self, kinds: frozenset[Kind] = ALL_KINDS) -> Iterator[tuple[str, dict[str, Any]]]:
        """The services of the stack whose role is one of `kinds`."""
        services = self.merged.get("services") or {}
        for name, service in services.items():
            role = self.roles.get(str(name))
            if isinstance(service, dict) and role is not None and role.kind in kinds:
                yield str(name), service

    def build(self, service: Mapping[str, Any]) -> dict[str, Any] | None:
        """The build that makes the service's image (see `roles.build_of`)."""
        return build_of(service, self.merged.get("services") or {})

    def dockerfile(self, name: str, service: Mapping[str, Any]) -> Dockerfile | None:
        if name not in self._dockerfiles:
            build = self.build(service)
            self._dockerfiles[name] = read_dockerfile(build) if build is not None else None
        return self._dockerfiles[name]

    def command(self, name: str, service: Mapping[str, Any]) -> tuple[list[str], str] | None:
        """What a service runs and where that is said (`command`, or the Dockerfile); None if
        it comes from an image or a Dockerfile that is not here."""
        argv = service_command(service, self.merged.get("services") or {})
        if command_words(service) or command_words(service, "entrypoint"):
            return argv, "command" if command_words(service) else "entrypoint"
        if self.dockerfile(name, service) is not None:
            return argv, "Dockerfile"
        return None

    def scripts(self, name: str, service: Mapping[str, Any]) -> list[scripts.Script]:
        """The scripts the service's command runs that its build copies into the image, read
        from the repository (see `scripts`)."""
        seen = self.command(name, service)
        return scripts.read_scripts(seen[0], self.build(service), service) if seen else []

    def environment(self, name: str, service: Mapping[str, Any]) -> dict[str, Setting]:
        """The service's variables: its env files' values under its `environment:`, each with
        where it is set (`path` in the merged configuration, or an env file's line)."""
        found: dict[str, Setting] = {}
        if self.prepared is not None:
            for variable, from_file in self.prepared.env_values.get(name, {}).items():
                found[variable] = Setting(from_file.value, (), from_file.location)
        for variable, text in environment(service).items():
            found[variable] = Setting(text, ("services", name, "environment", variable), None)
        return found

    @property
    def project_directory(self) -> Path:
        if self.prepared is not None:
            return self.prepared.project_directory
        return self.sources.files[0].path.parent if self.sources.files else Path.cwd()

    def missing(self, name: str, service: Mapping[str, Any]) -> str:
        """Why a service's image cannot be looked into: its Dockerfile, or its image, is not
        here."""
        build = self.build(service)
        if build is not None:
            return unread(build)
        return f"it runs the image {service.get('image', '(none)')}, which is not inspected"

    def source_folders(self) -> list[Path]:
        """The app's source: the declared folder, else the local build contexts of the stack."""
        if self.stack.source is not None:
            return [self.stack.source]
        folders = []
        for _, service in self.services(CODE):
            build = service.get("build")
            context = build.get("context") if isinstance(build, dict) else None
            if isinstance(context, str) and Path(context).is_absolute():
                folders.append(Path(context))
        return folders


@dataclass(frozen=True)
class Setting:
    """A variable's value and where it is set: a path of the merged configuration, or a
    location (an env file's line)."""

    value: str
    path: tuple[Segment, ...]
    location: Location | None


@dataclass(frozen=True)
class Hit:
    """A rule's finding before it is located: the path in the merged configuration it is about.

    With `unknown`, the rule could not decide and `message` says which evidence was missing.
    """

    message: str
    path: tuple[Segment, ...] = ()
    location: Location | None = None
    unknown: bool = False


ServiceCheck = Callable[[Context, str, dict[str, Any]], Iterator[Hit]]
StackCheck = Callable[[Context], Iterator[Hit]]


@dataclass(frozen=True)
class Registered:
    rule: Rule
    service_check: ServiceCheck | None = None
    stack_check: StackCheck | None = None
    # compose-lint rules that say the same thing less precisely; their findings are folded in.
    covers: tuple[str, ...] = ()
    # The kinds of service the rule is about (see `roles`).
    kinds: frozenset[Kind] = frozenset({Kind.APP})


REGISTRY: dict[str, Registered] = {}


def service_rule(
    id: str,
    severity: Severity,
    modes: tuple[str, ...],
    title: str,
    fix: str,
    covers: tuple[str, ...] = (),
    kinds: frozenset[Kind] = frozenset({Kind.APP}),
) -> Callable[[ServiceCheck], ServiceCheck]:
    """Register a rule that checks one service at a time, each service whose role is in `kinds`."""

    def register(check: ServiceCheck) -> ServiceCheck:
        rule = Rule(id, severity, modes, title, fix)
        REGISTRY[id] = Registered(rule, check, None, covers, kinds)
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


def cross_rule(
    id: str, severity: Severity, title: str, fix: str, modes: tuple[str, ...] = ("prod", "dev")
) -> Rule:
    """Register a rule the checker applies itself (it has no per-stack function)."""
    rule = Rule(id, severity, modes, title, fix)
    REGISTRY[id] = Registered(rule)
    return rule


# --- helpers the rule modules share ------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}


def is_true(value: Any) -> bool:
    return str(value).strip().lower() in _TRUE


def command_text(service: Mapping[str, Any], key: str) -> str:
    value = service.get(key)
    if isinstance(value, list):
        return " ".join(str(part) for part in value)
    return str(value) if value is not None else ""


def reload_in(context: Context, name: str, service: Mapping[str, Any], ask: str) -> Hit | None:
    """Why the service reloads on change, as a hit at what makes it reload, if it does; as an
    unknown (ending in `ask`) when a script it runs reloads in some of its branches only."""
    settings = context.environment(name, service)
    env = {variable: setting.value for variable, setting in settings.items()}
    found = context.command(name, service)
    argv, where = found if found else ([], "command")
    why = reloading(argv, env)
    if why is None:
        return _script_reload(context, name, service, env, ask)
    # Reasons from a variable start with its name: `UVICORN_RELOAD=true`.
    named = why.split("=")[0].split(" ")[0]
    variable = named if named in settings else None
    if variable is not None and not reloading(argv, {}):
        setting = settings[variable]
        return Hit(f"{why}: it reloads on change", setting.path, setting.location)
    if where == "Dockerfile":
        dockerfile = context.dockerfile(name, service)
        location = Location(dockerfile.path) if dockerfile else None
        return Hit(f"the Dockerfile's command reloads ({why})", location=location)
    text = " ".join(argv)
    return Hit(f"the {where} reloads ({why}): {text[:80]!r}", ("services", name, where))


def _script_reload(
    context: Context, name: str, service: Mapping[str, Any], env: Mapping[str, str], ask: str
) -> Hit | None:
    """Whether the script that starts the server (`/start`, copied in by the build) reloads:
    in every branch that runs a server (a hit), in some only (an unknown: which branch runs
    depends on the script's variables, and hotmode does not guess them), or in none (None)."""
    found = context.command(name, service)
    where = found[1] if found else "command"
    path: tuple[Segment, ...] = ("services", name, where if where != "Dockerfile" else "build")
    for script in context.scripts(name, service):
        runs = [list(end) for end in script.ends if server(list(end)) or worker(list(end))]
        if not runs:
            continue
        whys = [reloading(end, env) for end in runs]
        reloads = [why for why in whys if why]
        if not reloads:
            return None
        if len(reloads) == len(runs):
            return Hit(f"the {where} runs {script.shown}, which reloads ({reloads[0]})", path)
        steady = next(
            server(end) or worker(end) for end, why in zip(runs, whys, strict=True) if not why
        )
        return Hit(
            f"the {where} runs {script.shown}, which reloads in some of its branches only "
            f"({reloads[0]}; another runs {steady} without reloading), and which one runs "
            f"depends on its variables: {ask}",
            path,
            unknown=True,
        )
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


def _data_beside(
    mount: Mount, source: Path, service: Mapping[str, Any], folders: list[Path]
) -> bool:
    """Whether a mount from within the source is a data folder beside the source mount: it
    lies inside another mount's target (`./:/app:ro` with `./data:/app/data`) or sits beside a
    read-only one (`./src:/app/src:ro` with `./media:/app/media`), holds no Python on disk, and
    is mounted where data lives or is not here at all."""
    if source.is_dir() and holds_python(source):
        return False
    if source.is_file() and source.suffix == ".py":
        return False
    others = [m for m in mounts(service) if m.target != mount.target]
    nested = any(inside(mount.target, other.target) for other in others)
    beside = any(_read_only_code(other, service, folders) for other in others)
    if not (nested or beside):
        return False
    return _data_target(mount.target) or not source.exists()


def _read_only_code(mount: Mount, service: Mapping[str, Any], folders: list[Path]) -> bool:
    """A folder of the source (not a file such as `.env`) bind-mounted read-only where code
    lives."""
    if mount.type != "bind" or not mount.read_only or not mount.source:
        return False
    source = Path(mount.source)
    of_source = any(inside(source, folder) for folder in folders)
    return of_source and not source.is_file() and _code_target(mount.target, service)


def _code_target(target: str, service: Mapping[str, Any]) -> bool:
    working_dir = str(service.get("working_dir") or "").rstrip("/")
    homes = CODE_TARGETS | ({working_dir} if working_dir else set())
    return any(inside(target, home) for home in homes)


# Where a mount holds configuration, data or sockets, not code: a missing folder there is not
# asked about. Anywhere else (`.:/webodm`, `..:/usr/src/paperless`) it may be the source.
_DATA_TARGETS = (
    "/etc", "/var", "/run", "/tmp", "/data",  # noqa: S108 - paths in a container, compared
    "/config", "/certs", "/docker-entrypoint-initdb.d",
    "/srv/data", "/usr/share/nginx", "/bitnami", "/export", "/backups", "/media", "/static",
)  # fmt: skip


def _data_target(target: str) -> bool:
    name = target.rsplit("/", 1)[-1]
    return any(inside(target, folder) for folder in _DATA_TARGETS) or name in {
        "data", "static", "media", "logs", "log", "uploads", "staticfiles", "mediafiles", "htmlcov",
        "export", "import", "consume", "backup", "backups", "cache", "tmp",
    }  # fmt: skip


def source_mounts(
    context: Context, service: Mapping[str, Any]
) -> tuple[list[Mount], list[tuple[Mount, str]]]:
    """The bind mounts of source code, and those that cannot be judged (with why).

    Source is the declared folder or a build context of the stack, or a folder above one
    within the project; without either, a mounted folder that holds Python files. A read-only
    mount outside where code lives (`./config:/etc/app:ro`) is configuration, not code.
    """
    folders = context.source_folders()
    project = context.project_directory
    found: list[Mount] = []
    unsure: list[tuple[Mount, str]] = []
    for mount in mounts(service):
        if mount.type != "bind" or not mount.source:
            continue
        if mount.read_only and not _code_target(mount.target, service):
            continue
        source = Path(mount.source)
        if folders:
            above = inside(source, project)
            if not any(inside(source, f) or (above and inside(f, source)) for f in folders):
                continue
            # A folder that holds no code, mounted inside the source mount, is data.
            if _data_beside(mount, source, service, folders):
                continue
            found.append(mount)
        elif source.is_dir():
            if holds_python(source):
                found.append(mount)
        elif not source.exists() and not _data_target(mount.target):
            unsure.append(
                (mount, f"{mount.source} is not here, so whether it holds source code is not known")
            )
    return found, unsure


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
