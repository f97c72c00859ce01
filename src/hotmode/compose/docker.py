"""Running a mode x edition on a real Docker engine: up, down, switch, what runs, logs.

Compose does the work (build, create, start, wait for health) with the file set and project that
`hotmode.compose.layout` decides. This module refuses what cannot work before anything starts
(another mode of the app running, a port held, a dirty tree for prod, a missing bind source),
passes what the build must carry (the commit and the committed-source digest, the host user for
dev), and reads what runs back from the labels Compose and the rendered files put on each
container: nothing is remembered on the side. The `docker` CLI is used to inspect, stop and
start single containers; it talks to whatever engine `DOCKER_HOST` names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hotmode import procs, source
from hotmode.compose import layout
from hotmode.compose.engine import Compose, find_compose
from hotmode.compose.offline import pull_hint
from hotmode.config import Config
from hotmode.errors import ComposeError, Interrupted, StateError
from hotmode.modes import Selection
from hotmode.ports import find_holder, port_is_free

APP_LABEL = "hotmode.app"
MODE_LABEL = "hotmode.mode"
EDITION_LABEL = "hotmode.edition"
DIGEST_LABEL = "hotmode.source-digest"
REVISION_LABEL = "org.opencontainers.image.revision"
PROJECT_LABEL = "com.docker.compose.project"
FILES_LABEL = "com.docker.compose.project.config_files"
HASH_LABEL = "com.docker.compose.config-hash"
SERVICE_LABEL = "com.docker.compose.service"

START_TIMEOUT = 90.0
BUILD_TIMEOUT = 900.0
STOP_TIMEOUT = 10
# Where a person watching a build or a start sees its steps; None when nobody watches.
Progress = Callable[[str], None] | None


@dataclasses.dataclass(frozen=True)
class Running:
    """A container of the app that is running, as its labels and inspection tell."""

    project: str
    mode: str
    edition: str
    config_files: tuple[Path, ...]
    config_hash: str
    container: str
    port: int | None
    revision: str
    health: str
    image: str

    @property
    def label(self) -> str:
        return f"{self.mode} {self.edition}"

    def describe(self) -> str:
        where = f", port {self.port}" if self.port else ""
        return f"{self.label} (container {self.container}{where})"

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for `status --json`."""
        values = dataclasses.asdict(self)
        values["config_files"] = [str(path) for path in self.config_files]
        return values


@dataclasses.dataclass(frozen=True)
class Switched:
    """What `switch` stopped and what it started."""

    previous: Running | None
    current: Running


@dataclasses.dataclass(frozen=True)
class _Plan:
    """One mode x edition made concrete: files, project, environment, merged service."""

    selection: Selection
    files: tuple[Path, ...]
    project: str
    env: Mapping[str, str]
    service: Mapping[str, Any]
    config: Config
    # The declared companions, as Compose merged them.
    companions: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `docker` CLI; raise `StateError` with its message when `check` and it fails."""
    binary = shutil.which("docker")
    if binary is None:
        raise StateError("the docker command is not installed; install Docker, or use --native")
    try:
        result = subprocess.run(  # noqa: S603 - argv built from our own parts
            [binary, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise StateError(f"`docker {' '.join(args[:2])}` timed out after {timeout:g}s") from exc
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise StateError(f"`docker {args[0]}` failed: {message[-1] if message else 'no message'}")
    return result


def engine_reachable(timeout: float = 5.0) -> bool:
    """True if a Docker engine answers the `docker` CLI (DOCKER_HOST, or the default socket)."""
    try:
        result = docker("version", "--format", "{{.Server.Version}}", timeout=timeout, check=False)
    except StateError:
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def _inspect(ids: Sequence[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    documents: list[dict[str, Any]] = json.loads(docker("inspect", *ids).stdout)
    return documents


def inspect_one(name: str) -> dict[str, Any]:
    """`docker inspect` of one container or image."""
    return _inspect([name])[0]


def _containers(config: Config, *, every: bool = False) -> list[dict[str, Any]]:
    args = ["ps", "--quiet", "--no-trunc", "--filter", f"label={APP_LABEL}={config.name}"]
    if every:
        args.insert(1, "--all")
    return _inspect(docker(*args).stdout.split())


def _env(container: Mapping[str, Any]) -> dict[str, str]:
    pairs = (item.partition("=") for item in container["Config"].get("Env") or [])
    return {name: value for name, _, value in pairs}


def _running(container: Mapping[str, Any]) -> Running:
    labels = container["Config"].get("Labels") or {}
    env = _env(container)
    files = tuple(Path(p) for p in labels.get(FILES_LABEL, "").split(",") if p)
    port = env.get("PORT", "")
    health = (container["State"].get("Health") or {}).get("Status", "none")
    return Running(
        project=labels.get(PROJECT_LABEL, ""),
        mode=labels.get(MODE_LABEL, "?"),
        edition=labels.get(EDITION_LABEL, "?"),
        config_files=files,
        config_hash=labels.get(HASH_LABEL, ""),
        container=container["Name"].lstrip("/"),
        port=int(port) if port.isdigit() else None,
        revision=labels.get(REVISION_LABEL) or env.get("HOTMODE_REVISION", "unknown"),
        health=health,
        image=container["Config"].get("Image", ""),
    )


def _is_app(config: Config, container: Mapping[str, Any]) -> bool:
    """The app's own container, not a companion's (both carry the app label)."""
    labels = container["Config"].get("Labels") or {}
    return bool(labels.get(SERVICE_LABEL, config.service) == config.service)


def running_all(config: Config) -> list[Running]:
    """Every running container of the app (normally one: one mode runs at a time)."""
    return [_running(c) for c in _containers(config) if _is_app(config, c)]


def running(config: Config) -> Running | None:
    """The mode of the app running in Docker, or None."""
    found = running_all(config)
    return found[0] if found else None


def environment(config: Config, selection: Selection, *, allow_dirty: bool) -> dict[str, str]:
    """What Compose needs in its environment to build and run a mode x edition.

    Prod: the commit (`HOTMODE_REVISION`, refused if the tree is dirty unless `allow_dirty`) and
    the committed-source digest, which become the image's labels. Dev: the host user that owns
    the source, so that nothing the container writes into the mounted tree is root's.
    """
    env: dict[str, str] = {}
    if selection.dev:
        owner = config.source.stat()
        if "HOST_UID" not in os.environ:
            env["HOST_UID"] = str(owner.st_uid)
        if "HOST_GID" not in os.environ:
            env["HOST_GID"] = str(owner.st_gid)
        return env
    dockerfile = config.deployment / "Dockerfile"
    env["HOTMODE_REVISION"] = source.build_revision(
        config.source, dockerfile, allow_dirty=allow_dirty
    )
    env["HOTMODE_SOURCE_DIGEST"] = source.source_digest(config.source) or "unknown"
    return env


def _plan(
    config: Config,
    selection: Selection,
    overlays: tuple[Path, ...],
    *,
    allow_dirty: bool,
    compose: Compose,
) -> _Plan:
    files = tuple(layout.compose_files(config, selection, overlays))
    for path in files:
        if not path.is_file():
            raise StateError(f"{path} does not exist; run `hotmode render`, or fix --overlay")
    project = layout.project_name(config, selection)
    env = environment(config, selection, allow_dirty=allow_dirty)
    merged = json.loads(compose.run(files, project, "config", "--format", "json", env=env).stdout)
    services = merged["services"]
    companions = {c.name: services[c.name] for c in config.services if c.name in services}
    return _Plan(selection, files, project, env, services[config.service], config, companions)


def config_hash(config: Config, selection: Selection, overlays: tuple[Path, ...] = ()) -> str:
    """What `docker compose config --hash` gives for the mode now (prod: with HEAD's labels).

    The files are resolved by `config` first and that is hashed: Compose 2.40's `config --hash`
    skips resolving `env_file`, so for a service with one it differs from the label `up` writes
    (docker/compose#14001, fixed after 2.40).
    """
    compose = find_compose()
    plan = _plan(config, selection, overlays, allow_dirty=True, compose=compose)
    env = dict(plan.env)
    if not selection.dev:
        # Verify compares with the commit, not with a "-dirty" build of it.
        env["HOTMODE_REVISION"] = source.revision(config.source) or "unknown"
    resolved = compose.run(plan.files, plan.project, "config", env=env).stdout
    with tempfile.TemporaryDirectory(prefix="hotmode-hash-") as folder:
        merged = Path(folder) / "compose.yml"
        merged.write_text(resolved, encoding="utf-8")
        out = compose.run([merged], plan.project, "config", "--hash", config.service, env=env)
    words = out.stdout.split()
    return words[-1] if words else ""


def listen_addresses(service: Mapping[str, Any]) -> Iterator[tuple[str, int]]:
    """Where the service will listen on the host: published ports, or its own with host network."""
    for port in service.get("ports") or []:
        published = str(port.get("published", ""))
        if published.isdigit():
            yield port.get("host_ip") or "0.0.0.0", int(published)  # noqa: S104 - a probe
    if service.get("network_mode") == "host":
        command = list(service.get("command") or [])
        env = service.get("environment") or {}
        host = command[command.index("--host") + 1] if "--host" in command[:-1] else "0.0.0.0"  # noqa: S104
        port = command[command.index("--port") + 1] if "--port" in command[:-1] else env.get("PORT")
        if port and str(port).isdigit():
            yield host, int(port)


def _check_can_start(config: Config, plan: _Plan, ignore: str | None = None) -> None:
    """Refuse before anything starts: another mode running, a port held, a bind source missing."""
    # The port is held by this project, or by the one `ignore` names (switch stops it first).
    mine_running = False
    for other in running_all(config):
        if other.project in (plan.project, ignore):
            mine_running = True
        else:
            raise StateError(
                f"{other.describe()} is already running; only one mode runs at a time: "
                "stop it with `hotmode down`, or use `hotmode switch`"
            )
    if not mine_running:
        for name, service in {config.service: plan.service, **plan.companions}.items():
            for host, port in listen_addresses(service):
                if not port_is_free(host, port):
                    what = "set PORT" if name == config.service else f"change {name}'s ports"
                    raise StateError(f"{find_holder(port).describe()}; stop it, or {what}")
    companion_secrets(config, plan.selection)
    for volume in plan.service.get("volumes") or []:
        bind = volume.get("bind") or {}
        # Compose drops `create_host_path: false` from its JSON; only `true` creates the path.
        if (
            volume.get("type") == "bind"
            and not bind.get("create_host_path")
            and not Path(volume["source"]).exists()
        ):
            raise StateError(
                f"{volume['source']} does not exist and is mounted at {volume['target']}; "
                f"create it (e.g. copy {config.deployment / '.env.example'} to .env)"
            )


def companion_secrets(config: Config, selection: Selection) -> list[Path]:
    """The secret files the mode mounts; refuse if one is missing (hotmode never invents one)."""
    from hotmode.compose import companions

    values = companions.dev_secret_values(config) if selection.dev else {}
    paths = []
    for name in companions.secret_names(config):
        folder = companions.DEV_SECRETS if name in values else "secrets"
        path = config.deployment / folder / name
        if not path.is_file():
            raise StateError(
                f"{path} does not exist; write the secret {name} there (readable by the "
                "container's user), or run `hotmode render` for a dev-only one"
            )
        paths.append(path)
    return paths


def data_volumes(config: Config) -> list[str]:
    """Every volume of every mode x edition that exists on the engine: the companions' data, by
    the name each mode gives it, then what Compose made for the app (its logs, dev's cache), by
    the project label Compose put on it."""
    from hotmode.compose import companions
    from hotmode.modes import all_selections

    wanted: list[str] = []
    projects = set()
    for selection in all_selections(config):
        project = layout.project_name(config, selection)
        projects.add(project)
        for entry in companions.volume_names(
            config, project, selection.mode, selection.edition
        ).values():
            if entry["name"] not in wanted:
                wanted.append(entry["name"])
    listing = docker(
        "volume", "ls", "--format", '{{.Name}}\t{{.Label "com.docker.compose.project"}}'
    )
    existing = dict(line.partition("\t")[::2] for line in listing.stdout.splitlines())
    made = sorted(name for name, project in existing.items() if project in projects)
    return [name for name in wanted if name in existing] + [n for n in made if n not in wanted]


def remove_volumes(names: Sequence[str]) -> None:
    """Delete these volumes (their data is gone); the caller asked the user by name."""
    if names:
        docker("volume", "rm", *names)


def services_of(config: Config, project: str) -> list[dict[str, Any]]:
    """Each container of a project: its service, state, health and data volumes."""
    services = []
    for container in _project_containers(project):
        labels = container["Config"].get("Labels") or {}
        state = container["State"]
        volumes = [
            m.get("Name", "")
            for m in container.get("Mounts") or []
            if m.get("Type") == "volume" and len(m.get("Name", "")) != 64
        ]
        services.append(
            {
                "service": labels.get(SERVICE_LABEL, "?"),
                "container": container["Name"].lstrip("/"),
                "state": state.get("Status", "?"),
                "health": (state.get("Health") or {}).get("Status", "none"),
                "volumes": sorted(volumes),
            }
        )
    app_first = sorted(services, key=lambda s: s["service"] != config.service)
    return app_first


def _build(compose: Compose, plan: _Plan, timeout: float, progress: Progress) -> None:
    args = ("build",) if progress is None else ("--progress", "plain", "build")
    if progress is not None:
        progress(f"building {plan.selection.label} (Compose's own progress follows)")
    try:
        compose.run(plan.files, plan.project, *args, env=plan.env, timeout=timeout,
                    on_output=progress)  # fmt: skip
    except ComposeError as exc:
        message = f"building {plan.selection.label} failed: {exc}"
        raise StateError(message + pull_hint(str(exc), plan.config)) from exc


def _project_containers(project: str, *, every: bool = True) -> list[dict[str, Any]]:
    args = ["ps", "--quiet", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}"]
    if every:
        args.insert(1, "--all")
    return _inspect(docker(*args).stdout.split())


def _finished_job(container: Mapping[str, Any], jobs: frozenset[str]) -> bool:
    """A declared job's container that ran and exited 0: done, not a service that died."""
    labels = container["Config"].get("Labels") or {}
    state = container["State"]
    return (
        labels.get(SERVICE_LABEL) in jobs
        and state.get("Status") == "exited"
        and state.get("ExitCode") == 0
    )


def why_unhealthy(project: str, jobs: frozenset[str] = frozenset()) -> str:
    """One line on why a project's container is not healthy: state, health probe, last log."""
    reasons = []
    for container in _project_containers(project):
        if _finished_job(container, jobs):
            continue
        state = container["State"]
        name = container["Name"].lstrip("/")
        if state.get("Status") != "running":
            reasons.append(f"{name} is {state.get('Status')} (exit code {state.get('ExitCode')})")
        health = state.get("Health") or {}
        probes = health.get("Log") or []
        if health.get("Status") not in (None, "healthy") and probes:
            output = " ".join(str(probes[-1].get("Output", "")).split())[-160:]
            reasons.append(f"health check: {output or 'exit ' + str(probes[-1].get('ExitCode'))}")
        tail = docker("logs", "--tail", "3", container["Id"], check=False)
        lines = [x.strip() for x in (tail.stdout + tail.stderr).splitlines() if x.strip()]
        if lines:
            reasons.append(f"last log line: {lines[-1][-200:]}")
    return "; ".join(reasons) or "no container was created"


def _start(compose: Compose, plan: _Plan, timeout: float, progress: Progress) -> Running:
    # Not `up --wait`: Compose 2.40 on Engine 20.10 returns while a crash-looping container
    # is between restarts; the container's own state and health are polled instead.
    if progress is not None:
        progress(f"starting {plan.selection.label}")
    try:
        compose.run(plan.files, plan.project, "up", "--detach", "--no-build", env=plan.env,
                    on_output=progress)  # fmt: skip
    except ComposeError as exc:
        _remove_project(plan.project)
        raise StateError(f"{plan.selection.label} could not start: {exc}") from exc
    # The jobs ran before the app (Compose waited for each to exit 0); the rest must be healthy.
    jobs = frozenset(job.name for job in plan.config.jobs)
    containers = [c for c in _project_containers(plan.project) if not _finished_job(c, jobs)]
    if progress is not None:
        progress(f"waiting until {', '.join(c['Name'].lstrip('/') for c in containers)} is healthy")
    if not containers or not all(_wait_healthy(c["Id"], timeout) for c in containers):
        reason = why_unhealthy(plan.project, jobs)
        _remove_project(plan.project)
        raise StateError(f"{plan.selection.label} did not become healthy: {reason}")
    app = [c for c in containers if _is_app(plan.config, c)] or containers
    return _running(inspect_one(app[0]["Id"]))


def up(
    config: Config,
    selection: Selection,
    *,
    overlays: tuple[Path, ...] = (),
    allow_dirty: bool = False,
    timeout: float = START_TIMEOUT,
    build_timeout: float = BUILD_TIMEOUT,
    progress: Progress = None,
) -> Running:
    """Build (what changed), start and wait for health; return what runs.

    Raises `StateError` if another mode of the app runs, a port is held, the build fails or
    the container does not become healthy within `timeout` (it is then removed, and the message
    says why); `UsageError` for a dirty tree in prod without `allow_dirty`.
    """
    compose = find_compose()
    plan = _plan(config, selection, overlays, allow_dirty=allow_dirty, compose=compose)
    _check_can_start(config, plan)
    _build(compose, plan, build_timeout, progress)
    return _start(compose, plan, timeout, progress)


def _remove_project(project: str) -> None:
    """Stop (gracefully, bounded) and remove a project's containers and anonymous volumes."""
    ids = [c["Id"] for c in _project_containers(project)]
    if ids:
        docker("stop", "--time", str(STOP_TIMEOUT), *ids, timeout=STOP_TIMEOUT + 30, check=False)
        # --volumes removes the containers' anonymous volumes; named ones (logs) stay.
        docker("rm", "--force", "--volumes", *ids)
    # Networks Compose made for the project; with no containers left this removes only them.
    find_compose().run((), project, "down", "--remove-orphans", timeout=60)


def remove_project(project: str) -> None:
    """Stop and remove a project's containers; its named (data) volumes stay."""
    _remove_project(project)


def down(config: Config, *, overlays: tuple[Path, ...] = ()) -> dict[str, list[str]]:
    """Stop and remove every container of the app, whichever mode; return each project stopped
    with the names of its containers (its companions' too).

    Containers are found by the app label, so `overlays` are not needed to find them; the
    parameter is accepted so that every lifecycle call takes the same arguments.
    """
    del overlays
    containers: dict[str, list[str]] = {}
    for container in _containers(config, every=True):
        project = (container["Config"].get("Labels") or {}).get(PROJECT_LABEL, "")
        if project and project not in containers:
            containers[project] = sorted(
                str(c.get("Name", "?")).lstrip("/") for c in _project_containers(project)
            )
    for project in containers:
        _remove_project(project)
    return containers


def _wait_healthy(container: str, timeout: float) -> bool:
    """True once the container runs and is healthy (or has no health check); False as soon as
    it is unhealthy, stopped or restarting, or when `timeout` passes."""
    deadline = time.monotonic() + timeout
    # A restart policy brings a crashing container back; a restart while waiting is a crash.
    restarts = inspect_one(container).get("RestartCount", 0)
    while time.monotonic() < deadline:
        inspected = inspect_one(container)
        state = inspected["State"]
        health = (state.get("Health") or {}).get("Status")
        if state.get("Restarting") or inspected.get("RestartCount", 0) > restarts:
            return False
        if health == "unhealthy" or state.get("Status") in ("exited", "dead"):
            return False
        if state.get("Status") == "running" and health in (None, "healthy"):
            return True
        time.sleep(0.25)
    return False


def switch(
    config: Config,
    selection: Selection,
    *,
    overlays: tuple[Path, ...] = (),
    allow_dirty: bool = False,
    timeout: float = START_TIMEOUT,
    build_timeout: float = BUILD_TIMEOUT,
    progress: Progress = None,
) -> Switched:
    """Stop the running mode, start `selection` and wait for health; roll back if it fails.

    The new image is built before the running mode is stopped, so a failed build costs no
    downtime. The old container is stopped, not removed, until the new one is healthy; if the
    new one fails it is removed, the old one is started again, and `StateError` says why.
    """
    compose = find_compose()
    plan = _plan(config, selection, overlays, allow_dirty=allow_dirty, compose=compose)
    previous = running(config)
    if previous is None or previous.project == plan.project:
        return Switched(
            previous,
            up(
                config,
                selection,
                overlays=overlays,
                allow_dirty=allow_dirty,
                timeout=timeout,
                build_timeout=build_timeout,
                progress=progress,
            ),
        )
    _check_can_start(config, plan, ignore=previous.project)
    _build(compose, plan, build_timeout, progress)
    # The whole previous mode stops (its companions hold their ports too), and comes back whole.
    old_ids = [c["Id"] for c in _project_containers(previous.project, every=False)]
    try:
        docker("stop", "--time", str(STOP_TIMEOUT), *old_ids, timeout=STOP_TIMEOUT + 30)
        _check_can_start(config, plan)
        current = _start(compose, plan, timeout, progress)
    except (StateError, Interrupted) as exc:
        # A failure or a signal: the old containers (stopped, not removed: their very images and
        # settings, the database's data) are started again before anything is reported.
        with procs.deferred_signals():
            _remove_project(plan.project)
            docker("start", *old_ids)
            back = _wait_healthy(previous.container, timeout)
        state = "is serving again" if back else "was started again but is not healthy yet"
        if isinstance(exc, Interrupted):
            raise Interrupted(
                exc.signum, f"interrupted; rolled back: {previous.describe()} {state}"
            ) from exc
        raise StateError(f"{exc}; rolled back: {previous.describe()} {state}") from exc
    _remove_project(previous.project)
    return Switched(previous, current)


def logs(
    config: Config, *, follow: bool = True, tail: int | None = None, service: str | None = None
) -> int:
    """Stream the running app's (or a companion's) log to stdout/stderr; its exit code."""
    current = running(config)
    if current is None:
        raise StateError(f"no mode of {config.name} is running in Docker; start one with `up`")
    binary = shutil.which("docker") or "docker"
    argv = [binary, "logs"]
    if follow:
        argv.append("--follow")
    if tail is not None:
        argv += ["--tail", str(tail)]
    container = current.container
    if service not in (None, config.service):
        found = [s for s in services_of(config, current.project) if s["service"] == service]
        if not found:
            raise StateError(f"{current.label} has no service {service!r}")
        container = found[0]["container"]
    argv.append(container)
    try:
        return subprocess.run(argv, check=False).returncode  # noqa: S603
    except KeyboardInterrupt:
        return 130
