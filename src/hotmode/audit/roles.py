"""Which service is the app: one model of the roles services play, weighed from evidence.

A Compose project is rarely the app alone: a database, a cache, a broker and a proxy sit beside
it, workers and one-shot jobs share its image. Rules about reload, source and revision are about
the app; the hardening rules are about everything. `classify` decides, for a merged `services:`
mapping, what each service is and which evidence decided (`evidence` reads each fact):

1. What the user said wins: an `x-hotmode: {role: ...}` annotation on the service, then the
   declaration's service or `--app NAME`.
2. A service's own evidence: a known companion (its image, its Dockerfile's base image, the
   program it runs, a distribution image that runs or ships a database, a tag or Dockerfile
   named for one, or another service connecting to it by a database URL); a command, read
   through the scripts the build copies into the image (`scripts`), that runs a Python server
   (app), a task worker (worker), a one-shot job (job), or something else (a monitoring UI,
   Node, a docs server: other); a restart policy or a `service_completed_successfully`
   dependency that says it runs once (job); a base image that is not Python (other).
3. Services that share a build or an image run the same code: beside the app (or beside
   workers) the one running the image's own command is the app, the others are its workers
   and jobs.
4. What is left is a candidate for the app. The repository's own image (`origin`) or strong
   evidence (a Python base image, a mounted folder of Python source checked on disk, Python
   packages kept in a volume, Python-only settings) makes it the app, unless a command already
   named the app's server: then it is a Python tool beside it (other). A client of an app (it
   depends on one) is not the app: a proxy if it listens on the web's ports, else other. The
   one service built here, where nothing else can be, is the app; a pulled image alone, or
   several weak candidates, is `unknown`, naming the candidates and the fix (`--app NAME` or
   the annotation); beside a stronger app a weak one is other (a job if, alone serving
   nothing, it has no restart policy where all others do). A container that idles, or mounts
   the project into an image of another runtime, is the dev container: the app where nothing
   else can be, else other.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hotmode.audit import commands, evidence, origin
from hotmode.audit.model import Kind, Role
from hotmode.audit.sources import SourceFile
from hotmode.errors import UsageError

ANNOTATION = "x-hotmode"
FIX = "name the app with --app NAME, or annotate the service with x-hotmode: {role: app}"


def annotated_roles(files: Sequence[SourceFile], names: Iterable[str]) -> dict[str, Kind]:
    """The roles `x-hotmode: {role: ...}` annotations give the named services, read from the
    files themselves (Compose drops `x-` keys from services when it merges); a later file wins."""
    found: dict[str, Kind] = {}
    for source in files:
        for name in names:
            role = source.scalar(("services", name, ANNOTATION, "role"))
            if role is None:
                continue
            try:
                kind = Kind(role.strip().lower())
            except ValueError:
                kind = Kind.UNKNOWN
            if kind is Kind.UNKNOWN:
                kinds = ", ".join(k.value for k in Kind if k is not Kind.UNKNOWN)
                raise UsageError(
                    f"{source.path.name}: service {name} has {ANNOTATION} role {role!r}; "
                    f"use one of {kinds}"
                )
            found[name] = kind
    return found


def _own(
    name: str, service: Mapping[str, Any], services: Mapping[str, Any], project: Path | None
) -> Role | None:
    """A service's role from its own evidence, if that decides it."""
    found = evidence.companion(name, service, services)
    if found:
        return Role(Kind.COMPANION, found, evidence="companion")
    argv = evidence.resolved_command(service, services)
    if argv and commands.worker(argv) == "celery flower":
        return Role(
            Kind.OTHER, "runs celery flower, a monitoring UI of the workers", evidence="command"
        )
    by_command = evidence.command_role(argv)
    if by_command and by_command[0] in {"app", "other"}:
        return Role(Kind(by_command[0]), by_command[1], evidence="command")
    once = evidence.runs_once(name, service, services)
    if by_command:
        kind = Kind.JOB if by_command[0] == "job" or once else Kind.WORKER
        return Role(
            kind,
            by_command[1] if kind.value == by_command[0] else f"{by_command[1]}; {once}",
            evidence="command",
        )
    if _workspace(service, services, project):
        return None  # a dev container or a toolbox: see `_candidates`
    other = evidence.runs_other(argv)
    if other:
        return Role(Kind.OTHER, other, evidence="command")
    other = evidence.not_python(service, services)
    if other:
        return Role(Kind.OTHER, other, evidence="not-Python image")
    if once:
        return Role(Kind.JOB, once, evidence="runs once")
    return None


def _groups(services: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """Services that share a build or an image, in groups of two or more."""
    by_key: dict[tuple[str, ...], list[str]] = {}
    for name, service in services.items():
        key = evidence.shared_key(service)
        if key is None:
            continue
        by_key.setdefault(key, []).append(name)
        image = evidence.image_of(service)
        if key[0] == "build" and image:
            by_key.setdefault(("image", image), []).append(name)
    merged: list[set[str]] = []
    for names in by_key.values():
        group = set(names)
        for other in [g for g in merged if g & group]:
            group |= other
            merged.remove(other)
        merged.append(group)
    return [sorted(group) for group in merged if len(group) > 1]


def _shared(
    group: list[str], services: Mapping[str, Mapping[str, Any]], roles: dict[str, Role]
) -> None:
    """Within a group that shares its code: beside the app, or beside workers and jobs, the
    one that runs the image's own command is the app and the others are workers and jobs."""
    # A proxy or a Node server run from the app's image is not one of its workers.
    group = [n for n in group if not (n in roles and roles[n].kind in {Kind.COMPANION, Kind.OTHER})]
    apps = [n for n in group if n in roles and roles[n].is_app]
    open_ = [n for n in group if n not in roles]
    if not open_:
        return
    if not apps:
        helpers = [n for n in group if n in roles and roles[n].kind in {Kind.WORKER, Kind.JOB}]
        own = [n for n in open_ if not evidence.overrides_command(services[n])]
        if len(open_) == 1 and helpers:
            head = open_[0]
            why = f"shares its build with its workers and jobs ({', '.join(helpers)})"
        elif len(own) == 1 and len(open_) > 1:
            head = own[0]
            others = ", ".join(n for n in open_ if n != head)
            why = f"runs its image's own command; {others} run the same image with another"
        else:
            return
        roles[head] = Role(Kind.APP, why, evidence="shared build")
        apps = [head]
        open_.remove(head)
    for name in open_:
        service = services[name]
        argv = evidence.resolved_command(service, services)
        runs = f"runs {evidence.shown_command(argv)}" if argv else "runs the image's command"
        once = evidence.runs_once(name, service, services)
        kind = Kind.JOB if once else Kind.WORKER
        roles[name] = Role(
            kind,
            f"shares {apps[0]}'s build and {runs}{'; ' + once if once else ''}",
            evidence="shared build",
        )


def classify(
    services: Mapping[str, Any],
    declared_app: str | Collection[str] | None = None,
    annotated: Mapping[str, Kind] | None = None,
    repository: str | None = None,
    project: Path | None = None,
) -> dict[str, Role]:
    """Every service's role, with the evidence that decided it. `annotated` (x-hotmode roles)
    and `declared_app` (the declaration's service, or `--app`) win over the evidence;
    `repository` (`owner/name`) makes its own image evidence of the app."""
    declared = {declared_app} if isinstance(declared_app, str) else set(declared_app or ())
    annotated = annotated or {}
    plain = {str(n): s for n, s in services.items() if isinstance(s, Mapping)}
    roles: dict[str, Role] = {}
    for name in plain:
        if name in annotated:
            roles[name] = Role(
                annotated[name], f"{ANNOTATION} role: {annotated[name].value}", (), "annotation"
            )
        elif name in declared:
            roles[name] = Role(Kind.APP, "declared", evidence="declared")
    said = set(roles)
    for name, service in plain.items():
        if name not in roles:
            found = _own(name, service, plain, project)
            if found is not None:
                roles[name] = found
    for group in _groups(plain):
        _shared(group, plain, roles)
    _candidates(plain, roles, repository, project)
    if declared or any(kind is Kind.APP for kind in annotated.values()):
        chosen = sorted(n for n in said if roles[n].is_app)
        for name, role in roles.items():
            if name not in said and role.kind in {Kind.APP, Kind.UNKNOWN}:
                why = f"{role.reason}, but the app is {', '.join(chosen)}"
                roles[name] = Role(Kind.OTHER, why, evidence="declared")
    return {name: roles[name] for name in plain}


def _candidates(
    services: Mapping[str, Mapping[str, Any]],
    roles: dict[str, Role],
    repository: str | None,
    project: Path | None,
) -> None:
    """Judge the services nothing has decided yet: strong evidence, clients, the lone one."""
    open_ = [n for n in services if n not in roles]
    idle = [n for n in open_ if _workspace(services[n], services, project)]
    open_ = [n for n in open_ if n not in idle]
    served = [n for n, r in roles.items() if r.is_app]
    for name in open_:
        image = evidence.image_of(services[name])
        if origin.own_image(image, repository):
            roles[name] = Role(
                Kind.APP,
                f"runs {image}, the image of this repository ({repository})",
                (),
                "own image",
            )
            continue
        found = evidence.python(services[name], services)
        if found and served:
            # Python beside an app whose command names its server: a tool or a model server.
            roles[name] = Role(
                Kind.OTHER,
                f"{found}, but runs no web server; the app is {served[0]}",
                (),
                "Python beside the app",
            )
        elif found:
            roles[name] = Role(Kind.APP, found, evidence="Python")
    apps = [n for n, r in roles.items() if r.is_app]
    weak = [n for n in open_ if n not in roles]
    _idle(idle, weak, apps, services, roles, project)
    for name in list(weak):
        service = services[name]
        served = sorted(evidence.depends_on(service) & (set(apps) | set(weak)))
        if not served:
            continue
        if evidence.fronts(service):
            roles[name] = Role(
                Kind.COMPANION, f"listens on the web's ports in front of {served[0]}", (), "proxy"
            )
        else:
            why = f"{_weakly(service, services)}; a client of {served[0]}"
            roles[name] = Role(Kind.OTHER, why, evidence="client")
        weak.remove(name)
    if apps:
        for name in weak:
            if evidence.fronts(services[name]):
                why = f"listens only on the web's ports beside {apps[0]}: a web server or proxy"
                roles[name] = Role(Kind.COMPANION, why, evidence="proxy")
                continue
            why = _weakly(services[name], services)
            if _on_demand(name, services):
                why += "; sets no restart policy where every other service does: run on demand"
                roles[name] = Role(Kind.JOB, why, evidence="on demand")
                continue
            roles[name] = Role(
                Kind.OTHER,
                f"{why}; nothing says it runs Python, the app is {apps[0]}",
                (),
                "beside the app",
            )
    elif len(weak) == 1 and isinstance(services[weak[0]].get("build"), dict):
        # The project's own build, and nothing else here could be the app.
        name = weak[0]
        why = f"{_weakly(services[name], services)}; the only service built here"
        roles[name] = Role(Kind.APP, why, evidence="only build")
    else:
        # A pulled image alone is as likely a store or a tool as the app: unknown.
        for name in weak:
            why = _weakly(services[name], services)
            roles[name] = Role(Kind.UNKNOWN, f"{why}; it may be the app", tuple(weak), "weak")


def _idle(
    idle: list[str],
    weak: list[str],
    apps: list[str],
    services: Mapping[str, Mapping[str, Any]],
    roles: dict[str, Role],
    project: Path | None,
) -> None:
    """A service that only idles (`sleep infinity`) is a container people exec into: where
    nothing else can be the app, the dev container the server is started in by hand."""
    for name in idle:
        why = _workspace(services[name], services, project) or "a dev container"
        if not apps and not weak and len(idle) == 1:
            roles[name] = Role(
                Kind.APP, f"{why}; nothing else here can be the app", evidence="dev container"
            )
        else:
            roles[name] = Role(Kind.OTHER, why, evidence="idles")


def _on_demand(name: str, services: Mapping[str, Mapping[str, Any]]) -> bool:
    """A tool run by hand (`compose run`): serving no port, the only service of several without
    a restart policy, where every other one restarts."""

    def restarts(service: Mapping[str, Any]) -> bool:
        deploy = service.get("deploy")
        policy = deploy.get("restart_policy") if isinstance(deploy, dict) else None
        return service.get("restart") not in (None, "no", False) or isinstance(policy, dict)

    others = [s for n, s in services.items() if n != name]
    service = services[name]
    serves = bool(evidence.ports(service))
    return len(others) >= 2 and not serves and not restarts(service) and all(map(restarts, others))


def _workspace(
    service: Mapping[str, Any], services: Mapping[str, Any], project: Path | None
) -> str | None:
    """Why a service is a container people work in: it idles, or it mounts the project's
    tree into an image of another runtime (a dev container with Node and Python)."""
    idles = evidence.idles(evidence.resolved_command(service, services))
    if idles:
        return idles
    tree = evidence.mounts_tree(service, project)
    other = evidence.not_python(service, services) if tree else None
    return f"{tree}, {other}" if other else None


def _weakly(service: Mapping[str, Any], services: Mapping[str, Any]) -> str:
    """What little a service shows: where it is built from, or the image it runs."""
    build = service.get("build")
    argv = commands.command_words(service, "entrypoint") + commands.command_words(service)
    runs = f", runs {evidence.shown_command(argv, 40)}" if argv else ""
    if isinstance(build, dict):
        here = "" if evidence.dockerfile_of(service) else " (its Dockerfile is not here)"
        return f"built from {evidence.build_name(build)}{here}{runs}"
    return f"runs the image {evidence.image_of(service) or '(none)'}{runs}"


def app_candidates(roles: Mapping[str, Role]) -> list[str]:
    """The services that could be the app when none is known."""
    return sorted({c for role in roles.values() for c in role.candidates})
