"""Companion services beside a native app: in Docker, as local processes, or the embedded default.

`hotmode up --native` runs the app on the host; each declared companion then runs, first that works:
in Docker when an engine answers (its mode's own container and data volume, published on 127.0.0.1);
else as a local process from its declared native command (PostgreSQL from Debian's binaries, its
data folder under `.hotmode/data/<mode>-<edition>/` or where its user can reach it (`data_home`),
run as an unprivileged user when hotmode runs as root, since postgres refuses root); else, or when
that process cannot run, the app's declared embedded default (the gateway's SQLite), said in one
line with the reason; else a one-line error naming the companion and both ways out. What runs is
recorded in `.hotmode/companions.json` before it starts, and carries the project's marker, so `down`
stops it, bounded, with no orphans (`hotmode.companion_record`). A start is idempotent: a data
folder whose `init` was interrupted is moved aside and initialised again, and the declared `setup`
commands finish the set-up at every start. A new data folder also gets the scripts the official
database images run at their first start (the folder mounted at `/docker-entrypoint-initdb.d`,
`.sql` files in name order), through the declared `init_scripts` command: the folder counts as
initialised only once they have all run. Data folders and volumes are never deleted here.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from hotmode import procs, safefs
from hotmode.compose import companions as rendered
from hotmode.config import Config
from hotmode.errors import StateError
from hotmode.modes import Selection
from hotmode.native import companion_docker, companion_record, data_home, secret_store
from hotmode.native.companion_record import Entry
from hotmode.ports import find_holder, port_is_free
from hotmode.services import Companion

if TYPE_CHECKING:
    import pwd

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# Where the official database images (postgres, mariadb, mysql, mongo) find first-start scripts.
INIT_FOLDER = "/docker-entrypoint-initdb.d"


def _native_port(
    companion: Companion, selection: Selection, say: Callable[[str], None], *, docker: bool
) -> int:
    """The declared native port (in Docker, else the mode's published one) when it is free on
    127.0.0.1; else a free one, said in one line. The app is given whichever is chosen."""
    wanted = companion.native.port if companion.native else None
    spec = companion.spec(selection.mode)
    if wanted is None and docker and spec.ports:
        wanted = spec.ports[0].host
    if wanted is None:
        return _free_port()
    if port_is_free("127.0.0.1", wanted) and not _port_answers(wanted):
        return wanted
    port = _free_port()
    say(
        f"hotmode: {companion.name}: its port is taken: {find_holder(wanted).describe()}; it "
        f"listens on {port} instead, and the app is given {port}"
    )
    return port


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
    if not hasattr(os, "getuid") or os.getuid() != 0:
        return None  # Windows has no root to drop, and a regular user runs as itself
    if companion.native is None or companion.native.user is None:
        return None
    import pwd

    try:
        return pwd.getpwnam(companion.native.user)
    except KeyError:
        raise StateError(
            f"{companion.name}: its native user {companion.native.user!r} does not exist; "
            "create it, or run hotmode as an unprivileged user"
        ) from None


def _run(
    argv: list[str],
    env: Mapping[str, str],
    user: pwd.struct_passwd | None,
    timeout: float,
    log: Path,
    given: bytes | None = None,
) -> None:
    # Its own session, with the marker in its environment: a `hotmode` killed meanwhile leaves
    # a process that `down` finds by the /proc scan. `given` goes to its standard input.
    with _open_log(log) as output:
        result = subprocess.run(  # noqa: S603 - the declared command
            argv,
            input=given,
            stdin=None if given is not None else subprocess.DEVNULL,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            cwd="/",
            start_new_session=True,
        )
    if result.returncode != 0:
        raise StateError(f"`{' '.join(argv[:2])} ...` failed (exit {result.returncode}); see {log}")


def log_path(config: Config, selection: Selection, companion: Companion) -> Path:
    """A companion process's log: `.hotmode/<name>-<mode>-<edition>.log`."""
    return config.root / ".hotmode" / f"{companion.name}-{selection.mode}-{selection.edition}.log"


def _open_log(log: Path) -> BinaryIO:
    # `.hotmode/<name>-<mode>-<edition>.log`, walked from the project, never through a link.
    return safefs.open_append(log.parents[1], log)


def _port_answers(port: int) -> bool:
    return companion_record.port_answers(port)


# What a companion takes from hotmode's own environment: how to find its programs, and the
# language and clock of the machine. Nothing else: the caller's environment (root's, a CI job's)
# holds secrets that are no business of a database.
PASSED_ON = ("LANG", "TZ")
_SECRET = re.compile(r"\{secret:([^}]*)\}")


def _companion_env(
    config: Config,
    selection: Selection,
    companion: Companion,
    run_id: str,
    values: Mapping[str, str],
) -> dict[str, str]:
    """The companion's whole environment: the search path, LANG and TZ, what the declaration
    gives it (`{secret:NAME}` filled with the mode's generated secret), and the marker that
    finds it in /proc. Never the caller's environment."""
    declared = companion.native.env if companion.native else {}
    for name in companion.prod.secrets:  # each one made now, under the lock, for the app too
        secret_store.read(config.root, selection.mode, selection.edition, name, create=True)

    def secret(match: re.Match[str]) -> str:
        return secret_store.read(
            config.root, selection.mode, selection.edition, match.group(1), create=True
        )

    env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    env["PATH"] = _search_path(companion)
    env["LC_ALL"] = "C.UTF-8"
    env.update({name: _SECRET.sub(secret, _fill((v,), values)[0]) for name, v in declared.items()})
    env.update(
        {
            procs.PROJECT_VARIABLE: str(config.root),
            procs.RUN_VARIABLE: run_id,
            companion_record.COMPANION_VARIABLE: companion.name,
        }
    )
    return env


def _prepare_folder(
    companion: Companion,
    trusted_base: Path,
    folder: Path,
    values: Mapping[str, str],
    env: Mapping[str, str],
    user: pwd.struct_passwd | None,
    log: Path,
    say: Callable[[str], None],
) -> Path | None:
    """Create and initialise the data folder if it is new; heal one whose `init` was cut short.
    Return the marker to remove once the first start is over (None: not a new folder).

    A marker beside the folder says `init` is under way; it stays until the first start's
    init scripts have run, before the app ever starts on the folder. A non-empty folder with the
    marker still there never held the app's data: it is moved aside (never deleted) and
    initialised again, and the user is told where it went.
    """
    native = companion.native
    assert native is not None  # noqa: S101 - the caller checked it
    marker = folder.with_name(f"{folder.name}.initialising")
    # The folder `data_home.place` proved, walked again from its base at each step, never
    # through a link: one put there since the proof is refused, not chowned or chmodded.
    base = trusted_base
    marked = safefs.entry(base, marker)
    half = (
        marked is not None and stat.S_ISREG(marked.st_mode) and safefs.holds_anything(base, folder)
    )
    if half:
        aside = folder.with_name(f"{folder.name}.interrupted-{time.strftime('%Y%m%d-%H%M%S')}")
        safefs.rename(base, folder, aside.name)
        say(
            f"hotmode: note: {companion.name}: {folder} was left half-initialised by an "
            f"interrupted start (or init scripts that failed), before the app ever ran on it; "
            f"moved it to {aside} (delete it when you like) "
            "and initialising it again"
        )
    if safefs.holds_anything(base, folder):
        return None
    safefs.write_atomic(base, marker, "init under way; removed once it is done\n")
    safefs.private_folder(base, folder, (user.pw_uid, user.pw_gid) if user else None)
    if native.init:
        _run(_fill(native.init, values), env, user, READY_TIMEOUT, log)
    return marker


def init_scripts(companion: Companion, say: Callable[[str], None]) -> list[Path]:
    """The first-start scripts to run natively: the `.sql` files of the folder the companion
    mounts at INIT_FOLDER, in name order (as the images run them); others are named and left."""
    folders = [source for source, target in companion.prod.mounts
               if target.rstrip("/") == INIT_FOLDER and source.is_dir()]  # fmt: skip
    scripts = []
    for path in sorted(p for folder in folders for p in folder.iterdir() if p.is_file()):
        if path.suffix == ".sql":
            scripts.append(path)
        else:
            say(f"hotmode: note: {companion.name}: {path.name} is not run natively (only .sql)")
    return scripts


def _run_init_scripts(
    companion: Companion,
    values: Mapping[str, str],
    env: Mapping[str, str],
    user: pwd.struct_passwd | None,
    log: Path,
    say: Callable[[str], None],
) -> None:
    """Run the first-start scripts through the declared command, each on its standard input
    (read by hotmode, so the service's user need not reach the project's folder)."""
    native = companion.native
    assert native is not None  # noqa: S101 - the caller checked it
    scripts = init_scripts(companion, say)
    if scripts and not native.init_scripts:
        say(
            f"hotmode: note: {companion.name}: {len(scripts)} script(s) in the folder mounted at "
            f"{INIT_FOLDER} are not run natively; declare [services.{companion.name}.native] "
            "init_scripts, a command that runs one script given on its standard input"
        )
        return
    for script in scripts:
        argv = _fill(native.init_scripts, values)
        try:
            _run(argv, env, user, READY_TIMEOUT, log, script.read_bytes())
        except StateError as exc:
            raise StateError(f"init script {script.name}: {exc}") from None
    if scripts:
        say(f"hotmode: {companion.name}: ran {len(scripts)} init script(s) on the new data folder")


def _start_process(
    config: Config,
    selection: Selection,
    companion: Companion,
    run_id: str,
    recorded: list[Entry],
    say: Callable[[str], None],
) -> Entry:
    native = companion.native
    if native is None:
        raise StateError(f"{companion.name} has no native command")
    port = _native_port(companion, selection, say, docker=False)
    user = _runs_as(companion)
    folder, where = data_home.place(config, selection, companion, user)
    if where:
        say(where)
    values = {"data": str(folder), "port": str(port)}
    env = _companion_env(config, selection, companion, run_id, values)
    log = log_path(config, selection, companion)
    # Intent before action: the record says it is starting before anything runs.
    entry = Entry(
        companion.name,
        "process",
        "starting",
        f"starting on 127.0.0.1:{port}, data {folder}",
        port,
        run_id=run_id,
        uid=user.pw_uid if user else getattr(os, "geteuid", lambda: -1)(),
    )
    companion_record.write(config.root, [*recorded, entry])
    # The folder's base: the project, or its own folder in the data home `place` proved.
    base = config.root if folder.is_relative_to(config.root) else folder.parents[1]
    first_start = _prepare_folder(companion, base, folder, values, env, user, log, say)
    argv = _fill(native.command, values)
    if native.retitles:
        # The keeper (hotmode's user) holds the proof; it runs the server as `user`.
        keeper = [sys.executable, "-m", "hotmode.native.keeper"]
        argv = [*keeper, *(["--user", user.pw_name] if user else []), *argv]
    runs_as = user if not native.retitles else None
    with _open_log(log) as output:
        process = subprocess.Popen(  # noqa: S603 - the declared command
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            user=runs_as.pw_uid if runs_as else None,
            group=runs_as.pw_gid if runs_as else None,
            extra_groups=[] if runs_as else None,
            cwd="/",
            start_new_session=True,
        )
    found = procs.identify_started(process.pid, argv, run_id, project=str(config.root))
    if found is None or found.argv != tuple(argv):
        if process.poll() is None:
            # Not yet identified: our own unreaped child, so its PID cannot have been reused.
            process.kill()
        process.wait(timeout=STOP_TIMEOUT)
        raise StateError(f"{companion.name} exited at once; see {log}")
    entry = replace(
        entry, process=found, detail=f"pid {process.pid} on 127.0.0.1:{port}, data {folder}"
    )
    companion_record.write(config.root, [*recorded, entry])
    try:
        _wait_ready(companion, process, port, _fill(native.ready, values), env, user, log)
        for command in native.setup:
            _run(_fill(command, values), env, user, READY_TIMEOUT, log)
        if first_start is not None:
            _run_init_scripts(companion, values, env, user, log, say)
            safefs.unlink(base, first_start)
    except BaseException:
        companion_record.stop_process(found, STOP_TIMEOUT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)
        raise
    return companion_record.with_state(entry, "running")


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
    engine: Callable[[], bool] = companion_docker.engine,
) -> dict[str, str]:
    """Start every companion for a native app; return the app's environment for them.

    The caller holds the project lock and no app runs: a companion process of this project
    still running is a leftover of an interrupted run, and is stopped first, said aloud.
    """
    for line in stop(config).stopped:
        say(f"hotmode: note: stopped {line}, left by an interrupted run")
    run_id = uuid.uuid4().hex[:12]
    started: list[Entry] = []
    env: dict[str, str] = {}
    try:
        for companion in config.services:
            use_docker = engine()
            if use_docker:
                started.append(Entry(companion.name, "docker", "starting", "starting in Docker"))
                companion_record.write(config.root, started)
                port = _native_port(companion, selection, say, docker=True)
                started[-1] = companion_docker.start(
                    config, selection, companion, run_id, port, say
                )
            elif _has_command(companion):
                try:
                    started.append(
                        _start_process(config, selection, companion, run_id, started, say)
                    )
                except StateError as exc:
                    if not companion.embedded:
                        raise
                    companion_record.write(config.root, started)  # its "starting" entry goes
                    env.update(
                        _embedded(config, selection, companion, f"it could not run ({exc})", say)
                    )
                    continue
            elif companion.embedded:
                program = companion.native.command[0] if companion.native else companion.name
                why = f"no Docker engine and no `{program}`"
                env.update(_embedded(config, selection, companion, why, say))
                continue
            elif not companion.spec(selection.mode).app_env:
                # Nothing of the app's settings names it (an admin UI beside the database):
                # the app runs without it, said once.
                say(
                    f"hotmode: note: {companion.name} is not started: no Docker engine answers "
                    "and it has no native command; the app's settings do not name it"
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
            run = started[-1]
            companion_record.write(config.root, started)
            say(f"hotmode: {companion.name} {run.detail}")
            env.update(_told(config, selection, companion, run.port))
    except BaseException:
        stop(config)
        raise
    return env


def _embedded(
    config: Config,
    selection: Selection,
    companion: Companion,
    why: str,
    say: Callable[[str], None],
) -> dict[str, str]:
    """The app's declared embedded default for `companion`, said in one line with `why`."""
    # Never through a link: one refused for the process is refused here too (issue 26).
    folder = data_home.embedded_folder(config, selection, companion)
    _make_private(folder)
    values = {k: v.replace("{data}", str(folder)) for k, v in companion.embedded.items()}
    say(
        f"hotmode: {companion.name}: {why}; the app uses its declared embedded default "
        f"({', '.join(f'{k}={v}' for k, v in values.items())})"
    )
    return values


def _make_private(folder: Path) -> None:
    """Mode 700 on a folder of the user's own, so that its files (an SQLite database) are the
    user's alone, whatever mode the app makes them. Never through a link: a link there is left
    as it is (and a folder of another user's is not changed)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(folder, flags)
    except OSError:
        return
    try:
        if os.fstat(fd).st_uid == getattr(os, "geteuid", lambda: -1)():
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def stop(config: Config) -> companion_record.Stopped:
    """Stop every companion of this project, recorded or not; their data stays."""
    return stop_project(config.root)


def stop_project(root: Path) -> companion_record.Stopped:
    """`stop` with the project's folder alone (`down` without a readable declaration)."""
    return companion_record.stop(root, companion_docker.remove_containers)


def _told(config: Config, selection: Selection, companion: Companion, port: int) -> dict[str, str]:
    """What the native app is told about a companion on 127.0.0.1:`port`, secrets filled with
    the mode's generated ones (`secret_store`), whether it runs as a process or in Docker."""
    folder = str(secret_store.folder(config.root, selection.mode, selection.edition))
    told = rendered.companion_environment(companion, selection.mode, "127.0.0.1", port, folder)
    return rendered.fill_url_secrets(
        told,
        lambda n: secret_store.read(
            config.root, selection.mode, selection.edition, n, create=False
        ),
    )


def running_environment(config: Config, selection: Selection) -> dict[str, str]:
    """The app's environment for the companions that run now (`hotmode exec`), or the
    embedded default of those that do not."""
    entries, _problems = companion_record.read(config.root)
    running = {run.name: run for run in entries if run.port}
    env: dict[str, str] = {}
    for companion in config.services:
        if companion.name in running:
            run = running[companion.name]
            env.update(_told(config, selection, companion, run.port))
        elif companion.embedded:
            folder = data_home.data_folder(config, selection, companion)
            env.update({k: v.replace("{data}", str(folder)) for k, v in companion.embedded.items()})
    return env


def describe(config: Config) -> list[dict[str, Any]]:
    """What runs beside the native app, for `status`: each recorded companion checked (its
    process proven and its port answering), and any marked process no record names."""
    entries, _ = companion_record.read(config.root)
    described = []
    seen = set()
    for entry in entries:
        alive = companion_record.running(entry)
        if entry.process is not None:
            seen.add(entry.process.pid)
        detail = entry.detail if alive else f"stopped unexpectedly ({entry.detail})"
        described.append({**entry.as_dict(), "running": alive, "detail": detail})
    for process in companion_record.marked(config.root):
        if process.pid not in seen:
            described.append(
                {
                    "name": companion_record.companion_of(process),
                    "how": "process",
                    "state": "unrecorded",
                    "detail": f"pid {process.pid}, without a record; stop it with `hotmode down`",
                    "port": 0,
                    "process": None,
                    "running": True,
                }
            )
    return described
