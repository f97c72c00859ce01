"""Companion services beside a native app: in Docker, as local processes, or the embedded default.

`hotmode up --native` runs the app on the host; each declared companion then runs, first that
works: in Docker when an engine answers (its mode's own container and data volume, published on
127.0.0.1); else as a local process from its declared native command (PostgreSQL from Debian's
binaries, its data folder under `.hotmode/data/<mode>-<edition>/`, run as an unprivileged user
when hotmode runs as root, since postgres refuses root); else the app's declared embedded default
(the gateway's SQLite), said in one line; else a one-line error naming the companion and both
ways out. What runs is recorded in `.hotmode/companions.json`, so `down` stops it, bounded, with
no orphans; data folders and volumes are never deleted here.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hotmode.atomic import write_atomic
from hotmode.compose import companions as rendered
from hotmode.config import Config
from hotmode.errors import ComposeError, StateError
from hotmode.modes import Selection
from hotmode.services import Companion

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Started:
    """One companion as it runs for a native app: how, where, and what the app is told."""

    name: str
    how: str  # "docker", "process" or "embedded"
    detail: str
    pid: int | None = None
    command: list[str] = field(default_factory=list)
    project: str = ""
    port: int = 0


def data_root(config: Config) -> Path:
    return config.root / ".hotmode" / "data"


def data_folder(config: Config, selection: Selection, companion: Companion) -> Path:
    """A companion's native data folder: one per mode and edition, like its Docker volumes."""
    return data_root(config) / f"{selection.mode}-{selection.edition}" / companion.name


def data_folders(config: Config) -> list[Path]:
    """The native data folders that exist, for `down --volumes`."""
    root = data_root(config)
    return sorted(path for path in root.glob("*/*") if path.is_dir()) if root.is_dir() else []


def _record(config: Config) -> Path:
    return config.root / ".hotmode" / "companions.json"


def _read(config: Config) -> list[Started]:
    try:
        items = json.loads(_record(config).read_text(encoding="utf-8"))
        return [Started(**item) for item in items]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError):
        _record(config).unlink(missing_ok=True)
        return []


def _write(config: Config, started: list[Started]) -> None:
    write_atomic(_record(config), json.dumps([asdict(s) for s in started], indent=2) + "\n")


def _native_port(companion: Companion, selection: Selection) -> int:
    """The declared native port; else, in Docker, the mode's published one; else a free one."""
    if companion.native and companion.native.port:
        return companion.native.port
    spec = companion.spec(selection.mode)
    if spec.ports:
        return spec.ports[0].host
    return _free_port()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _fill(argv: tuple[str, ...], values: Mapping[str, str]) -> list[str]:
    out = []
    for part in argv:
        for key, value in values.items():
            part = part.replace("{" + key + "}", value)
        out.append(part)
    return out


def _search_path(companion: Companion) -> str:
    folders = []
    for pattern in companion.native.path if companion.native else ():
        folders += sorted(glob.glob(pattern), reverse=True)  # the newest version first
    return os.pathsep.join([*folders, os.environ.get("PATH", "")])


def _runs_as(companion: Companion) -> pwd.struct_passwd | None:
    """The unprivileged user to run as: only when hotmode is root, and the user exists."""
    if os.getuid() != 0 or companion.native is None or companion.native.user is None:
        return None
    try:
        return pwd.getpwnam(companion.native.user)
    except KeyError:
        raise StateError(
            f"{companion.name}: its native user {companion.native.user!r} does not exist; "
            "create it, or run hotmode as an unprivileged user"
        ) from None


def _check_reachable(companion: Companion, folder: Path, user: pwd.struct_passwd) -> None:
    """The unprivileged user must be able to reach the data folder through its parents."""
    for parent in reversed(folder.parents):
        if not parent.exists():
            break
        mode = parent.stat()
        if mode.st_uid != user.pw_uid and not mode.st_mode & 0o001:
            raise StateError(
                f"{companion.name} runs as user {user.pw_name}, who cannot reach {folder}: "
                f"{parent} is private; allow passing through it (chmod o+x {parent}), "
                "or run hotmode as a regular user"
            )


def _run(
    argv: list[str],
    env: Mapping[str, str],
    user: pwd.struct_passwd | None,
    timeout: float,
    log: Path,
) -> None:
    with log.open("ab") as output:
        result = subprocess.run(  # noqa: S603 - the declared command
            argv,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            cwd="/",
        )
    if result.returncode != 0:
        raise StateError(f"`{' '.join(argv[:2])} ...` failed (exit {result.returncode}); see {log}")


def _port_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _start_process(config: Config, selection: Selection, companion: Companion) -> Started:
    native = companion.native
    if native is None:
        raise StateError(f"{companion.name} has no native command")
    port = native.port or _free_port()
    if _port_answers(port):
        raise StateError(
            f"{companion.name}: port {port} on 127.0.0.1 is taken; stop what holds it, or set "
            f"`port` in [services.{companion.name}.native]"
        )
    folder = data_folder(config, selection, companion)
    user = _runs_as(companion)
    env = {**os.environ, "PATH": _search_path(companion), "LC_ALL": "C.UTF-8"}
    values = {"data": str(folder), "port": str(port)}
    log = config.root / ".hotmode" / f"{companion.name}-{selection.mode}-{selection.edition}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if user is not None:
        _check_reachable(companion, folder, user)
    new = not folder.is_dir() or not any(folder.iterdir())
    if new:
        folder.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chown(folder, user.pw_uid, user.pw_gid)
        folder.chmod(0o700)
        if native.init:
            _run(_fill(native.init, values), env, user, READY_TIMEOUT, log)
    argv = _fill(native.command, values)
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 - the declared command
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            cwd="/",
            start_new_session=True,
        )
    started = Started(
        companion.name,
        "process",
        f"pid {process.pid} on 127.0.0.1:{port}, data {folder}",
        process.pid,
        argv,
        port=port,
    )
    try:
        _wait_ready(companion, process, port, _fill(native.ready, values), env, user, log)
        if new:
            for command in native.first_start:
                _run(_fill(command, values), env, user, READY_TIMEOUT, log)
    except BaseException:
        _stop_pid(process.pid)
        raise
    return started


def _wait_ready(
    companion: Companion,
    process: subprocess.Popen[bytes],
    port: int,
    ready: list[str],
    env: Mapping[str, str],
    user: pwd.struct_passwd | None,
    log: Path,
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StateError(
                f"{companion.name} exited with code {process.returncode} before "
                f"it was ready; see {log}"
            )
        if ready:
            probe = subprocess.run(  # noqa: S603 - the declared command
                ready,
                env=env,
                capture_output=True,
                timeout=10,
                check=False,
                cwd="/",
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )
            if probe.returncode == 0:
                return
        elif _port_answers(port):
            return
        time.sleep(0.2)
    raise StateError(f"{companion.name} was not ready within {READY_TIMEOUT:.0f} s; see {log}")


def _stop_pid(pid: int) -> None:
    """SIGTERM (postgres: a smart shutdown), then SIGINT (fast), then SIGKILL the group."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT / 2
        while time.monotonic() < deadline:
            try:
                waited, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                waited = pid if not Path(f"/proc/{pid}").exists() else 0
            if waited == pid:
                return
            time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _start_docker(config: Config, selection: Selection, companion: Companion) -> Started:
    from hotmode.compose import docker, layout
    from hotmode.compose.engine import find_compose

    port = _native_port(companion, selection)
    spec = companion.spec(selection.mode)
    # The app is on the host: publish the companion on 127.0.0.1, in this mode's own project.
    overlay = config.root / ".hotmode" / f"native-{companion.name}.yml"
    published = f"127.0.0.1:{port}:{spec.port or port}"
    write_atomic(
        overlay, f"services:\n  {companion.name}:\n    ports: !override\n      - {published}\n"
    )
    files = [*layout.compose_files(config, selection), overlay]
    project = layout.project_name(config, selection)
    docker.companion_secrets(config, selection)
    compose = find_compose()
    try:
        compose.run(
            files,
            project,
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            str(int(READY_TIMEOUT)),
            companion.name,
            timeout=READY_TIMEOUT + 30,
        )
    except ComposeError as exc:
        docker.remove_project(project)
        raise StateError(f"{companion.name} did not start in Docker: {exc}") from exc
    volumes = ", ".join(
        e["name"]
        for e in rendered.volume_names(config, project, selection.mode, selection.edition).values()
    )
    return Started(
        companion.name,
        "docker",
        f"in Docker on {published}, data {volumes}",
        project=project,
        port=port,
    )


def _engine() -> bool:
    from hotmode.compose import docker

    return docker.engine_reachable(timeout=3)


def _has_command(companion: Companion) -> bool:
    native = companion.native
    if native is None:
        return False
    return shutil.which(native.command[0], path=_search_path(companion)) is not None


def start(
    config: Config,
    selection: Selection,
    say: Callable[[str], None],
    *,
    engine: Callable[[], bool] = _engine,
) -> dict[str, str]:
    """Start every companion for a native app; return the app's environment for them."""
    started: list[Started] = []
    env: dict[str, str] = {}
    try:
        for companion in config.services:
            use_docker = engine()
            if use_docker:
                run = _start_docker(config, selection, companion)
            elif _has_command(companion):
                run = _start_process(config, selection, companion)
            elif companion.embedded:
                folder = data_folder(config, selection, companion)
                folder.mkdir(parents=True, exist_ok=True)
                values = {
                    k: v.replace("{data}", str(folder)) for k, v in companion.embedded.items()
                }
                env.update(values)
                say(
                    f"hotmode: {companion.name}: no Docker engine and no `"
                    f"{companion.native.command[0] if companion.native else companion.name}`; "
                    f"the app uses its declared embedded default "
                    f"({', '.join(f'{k}={v}' for k, v in values.items())})"
                )
                continue
            else:
                command = companion.native.command[0] if companion.native else None
                how = (
                    f"install `{command}`"
                    if command
                    else (f"declare [services.{companion.name}.native]")
                )
                raise StateError(
                    f"{companion.name} cannot run: no Docker engine answers, and it has no "
                    f"native command here; start Docker, or {how}"
                )
            started.append(run)
            _write(config, started)
            say(f"hotmode: {companion.name} {run.detail}")
            port = run.port
            env.update(_told(config, selection, companion, port))
    except BaseException:
        stop(config)
        raise
    return env


def _told(config: Config, selection: Selection, companion: Companion, port: int) -> dict[str, str]:
    """What the native app is told about a companion on 127.0.0.1:`port`, secrets filled."""
    secrets = rendered.DEV_SECRETS if selection.dev else "secrets"
    told = rendered.companion_environment(
        companion, selection.mode, "127.0.0.1", port, str(config.deployment / secrets)
    )
    return rendered.fill_url_secrets(told, lambda n: _secret(config, selection, n))


def running_environment(config: Config, selection: Selection) -> dict[str, str]:
    """The app's environment for the companions that run now (`hotmode exec`), or the
    embedded default of those that do not."""
    ports = {run.name: run.port for run in _read(config) if run.port}
    env: dict[str, str] = {}
    for companion in config.services:
        if companion.name in ports:
            env.update(_told(config, selection, companion, ports[companion.name]))
        elif companion.embedded:
            folder = data_folder(config, selection, companion)
            env.update({k: v.replace("{data}", str(folder)) for k, v in companion.embedded.items()})
    return env


def _secret(config: Config, selection: Selection, name: str) -> str:
    path = rendered.secret_file(config, selection.mode, name)
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError:
        raise StateError(
            f"{path} does not exist; write the secret {name} there, or run `hotmode render` "
            "for a dev-only one"
        ) from None


def stop(config: Config) -> list[Started]:
    """Stop the companions recorded for the native app; their data stays."""
    started = _read(config)
    for run in reversed(started):
        if run.how == "process" and run.pid:
            _stop_pid(run.pid)
        elif run.how == "docker" and run.project:
            from hotmode.compose import docker

            docker.remove_project(run.project)
    _record(config).unlink(missing_ok=True)
    return started


def describe(config: Config) -> list[dict[str, Any]]:
    """What runs beside the native app, for `status`."""
    return [asdict(run) for run in _read(config)]
