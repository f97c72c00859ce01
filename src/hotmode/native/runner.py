"""Running a mode as local processes, when no Docker engine is reachable (or `--native`).

Native prod serves a read-only snapshot of the committed source (`git archive`), so the served
code is exactly a commit; native dev serves the working tree with the reload engine. One mode
runs at a time. What runs is recorded in `.hotmode/state.json` (`native.state`), and a process
is signalled only when it is provably the one hotmode started (`hotmode.procs`). The callers
that change what runs hold the project lock (`state.project_lock`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hotmode import procs, safefs, serving, source
from hotmode.config import Config
from hotmode.envfile import read_env_file
from hotmode.errors import StateError
from hotmode.modes import Selection
from hotmode.native import companion_record, companions, jobs, snapshot, state
from hotmode.native.state import RunState
from hotmode.ports import check_host, find_holder, port_is_free, read_command, url_host

STOP_TIMEOUT = 10.0
READY_TIMEOUT = 60.0
KEEP_LOGS = 10
# What the reload engine logs when a worker failed and no version serves: a dev start that
# cannot succeed until the code is fixed, so `up` and `switch` fail at once instead of waiting.
_ENGINE_FAILED = "nothing is serving; waiting for a fix"


def state_dir(config: Config) -> Path:
    return state.state_dir(config.root)


def read_state(config: Config) -> RunState | None:
    """The running mode, or None (a stale record is not removed here: see `clean_up`)."""
    return state.read(config.root).state


def clean_up(root: Path) -> str:
    """Under the lock: remove a record that is stale or unreadable; say what it was, or ''."""
    record = state.read(root)
    if record.problem:
        state.clear(root)
    return record.problem


@dataclass(frozen=True)
class Unrecorded:
    """A server this project started whose record is gone (`.hotmode` deleted, say)."""

    server: procs.ProcessId
    label: str


def unrecorded(root: Path) -> list[Unrecorded]:
    """Servers hotmode started for the project at `root` that no live record names."""
    recorded = state.read(root).state
    found = []
    for server in procs.find_marked(root):
        if recorded is not None and recorded.server.pid == server.pid:
            continue
        environ = procs.read_environ(server.pid) or {}
        if environ.get(companion_record.COMPANION_VARIABLE):
            continue  # a companion: `companions.stop` stops it
        label = f"{environ.get('HOTMODE_MODE', '?')} {environ.get('HOTMODE_EDITION', '?')}"
        found.append(Unrecorded(server, label))
    return found


def check_free(config: Config, host: str, port: int) -> None:
    """Refuse to start when a mode runs or the port is held, naming what holds it."""
    running = read_state(config)
    if running is not None:
        raise StateError(
            f"{running.label} is already running (pid {running.pid}, port {running.port}); "
            "stop it with `hotmode down`, or change mode with `hotmode switch`"
        )
    for lost in unrecorded(config.root):
        raise StateError(
            f"a {lost.label} server of this project runs without its record (pid "
            f"{lost.server.pid}; was .hotmode deleted?); stop it with `hotmode down`"
        )
    if port_is_free(host, port):
        return
    holder = find_holder(port)
    if holder.pid is not None and "hotmode" in holder.command:
        raise StateError(
            f"port {port} is held by another hotmode server (pid {holder.pid}: {holder.command}); "
            "stop it with `hotmode down` in its project, or use --port"
        )
    raise StateError(f"{holder.describe()}; stop it, or choose another port with --port")


def _base_env(config: Config, selection: Selection) -> dict[str, str]:
    env = dict(os.environ)
    # The interpreter that serves the app (its venv) first on PATH, so that `python`,
    # `alembic` or `flask` in a job or `hotmode exec` are the app's, as in its image.
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, *(p for p in env.get("PATH", "").split(os.pathsep)
                                              if p and p != scripts)])  # fmt: skip
    env.update(read_env_file(config.deployment / ".env"))
    edition = config.edition(selection.edition)
    if edition.env_file:
        env.update(read_env_file(config.deployment / edition.env_file))
    env.update(edition.env)
    env["HOTMODE_MODE"] = selection.mode
    env["HOTMODE_EDITION"] = selection.edition
    return env


def build_command(
    config: Config,
    selection: Selection,
    host: str,
    port: int,
    *,
    allow_uncommitted: bool,
    revision: str | None = None,
) -> tuple[list[str], dict[str, str], str, Path]:
    """The argv, environment, revision and working folder of a mode's server.

    Prod serves `revision` (a commit) when given, e.g. to roll back to what ran before, else HEAD.
    """
    env = _base_env(config, selection)
    env["PORT"] = str(port)
    logs = state_dir(config) / "logs" / f"{selection.mode}-{selection.edition}"
    if selection.dev:
        served = source.describe_working_tree(config.source)
        env.update(config.dev.env)
        env["HOT_RELOAD_ENABLED"] = "true"
        env["HOTMODE_REVISION"] = served
        # Byte-code goes under .hotmode/, never into the source tree; a private folder made
        # without following a link (the engine still proves it before use: `pycache_prefix`).
        pycache = state_dir(config) / "pycache"
        safefs.make_folders(config.root, pycache, mode=0o700)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
        argv = [sys.executable, "-m", "hotmode", "run", config.target, "--reload"]
        argv += ["--app-dir", str(config.source), "--host", host, "--port", str(port)]
        argv += ["--log-level", config.dev.log_level]
        argv += ["--install", config.install_command, *config.watch_options]
        env_file = config.deployment / ".env"
        if env_file.is_file():
            argv += ["--env-file", str(env_file)]
        return argv, env, served, config.source
    folder, served = snapshot.prepare(config, state_dir(config), allow_uncommitted, revision)
    env["HOTMODE_REVISION"] = served
    env["HOT_RELOAD_ENABLED"] = "false"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    safefs.make_folders(config.root, logs)
    env["LOG_DIR"] = str(logs)
    kind = serving.interface(folder, config.target)
    argv = [sys.executable, "-m", *serving.command(config.target, kind, host, str(port))]
    argv += ["--app-dir", str(folder)]
    return argv, env, served, folder


def exec_environment(config: Config, running: RunState) -> tuple[dict[str, str], Path]:
    """The environment and folder of the running native mode, for one more command in it
    (`hotmode exec -- alembic upgrade head`): what its server was given, companions included."""
    selection = Selection(running.mode, running.edition, "running", "running")
    env = _base_env(config, selection)
    env["PORT"] = str(running.port)
    if selection.dev:
        env.update(config.dev.env)
        env["HOT_RELOAD_ENABLED"] = "true"
    env.update(companions.running_environment(config, selection))
    return env, config.source


def _run_log(config: Config, selection: Selection, run_id: str) -> Path:
    """A log file of this run's own, so that an error never quotes another run's line."""
    runs = state.ensure_state_dir(config.root) / "runs"
    try:
        safefs.make_folders(config.root, runs)
        old = sorted(runs.glob("*.log"), key=lambda p: p.lstat().st_mtime)
        for stale in old[: max(0, len(old) - KEEP_LOGS + 1)]:
            safefs.unlink(config.root, stale)
    except OSError as exc:
        raise state.fs_error(exc, runs) from exc
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return runs / f"{stamp}-{selection.mode}-{selection.edition}-{run_id}.log"


def start(
    config: Config,
    selection: Selection,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    detach: bool,
    allow_uncommitted: bool = False,
    revision: str | None = None,
    ready_timeout: float = READY_TIMEOUT,
    say: Callable[[str], None] = lambda _line: None,
) -> tuple[RunState, subprocess.Popen[bytes]]:
    """Start a mode's server; with `detach`, return once it answers `/health` itself.

    The caller holds the project lock. If the start fails or is interrupted, the server is
    stopped and only this run's record is removed.
    """
    host = check_host(host)
    port = port or config.port
    check_free(config, host, port)
    for line in foreign_marked(config.root):
        say(f"hotmode: note: {line}")
    argv, env, served, cwd = build_command(
        config, selection, host, port, allow_uncommitted=allow_uncommitted, revision=revision
    )
    # Companion services (the database) first, and the app told where they are (issue 10).
    env.update(companions.start(config, selection, say))
    try:
        # Declared jobs (a migration) before the app, with its environment; each must succeed.
        jobs.run_jobs(config, env, cwd, say)
        return _launch(config, selection, argv, env, served, cwd, host, port, detach,
                       ready_timeout)  # fmt: skip
    except BaseException:
        companions.stop(config)
        raise


def _launch(
    config: Config,
    selection: Selection,
    argv: list[str],
    env: dict[str, str],
    served: str,
    cwd: Path,
    host: str,
    port: int,
    detach: bool,
    ready_timeout: float,
) -> tuple[RunState, subprocess.Popen[bytes]]:
    run_id = uuid.uuid4().hex[:12]
    env[procs.PROJECT_VARIABLE] = str(config.root)
    env[procs.RUN_VARIABLE] = run_id
    log = _run_log(config, selection, run_id) if detach else None
    try:
        output = safefs.open_append(config.root, log) if log else None
    except OSError as exc:
        raise state.fs_error(exc, state_dir(config)) from exc
    try:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            # Its own session: a terminal's Ctrl-C reaches `up`, which stops it in order.
            start_new_session=True,
        )
    finally:
        if output is not None:
            output.close()
    server: procs.ProcessId | None = None
    try:
        server = procs.identify_started(process.pid, argv, run_id, project=str(config.root))
        if server is None or server.argv != tuple(argv):
            server = None
            raise StateError(f"the server exited at once: {_tail(log)}")
        record = RunState(
            mode=selection.mode,
            edition=selection.edition,
            server=server,
            host=host,
            port=port,
            revision=served,
            mode_source=selection.mode_source,
            edition_source=selection.edition_source,
            log=str(log) if log else "",
            started=time.time(),
            owner=None if detach else procs.identify(os.getpid()),
        )
        state.write(config.root, record)
        if log is not None:
            wait_ready(process, server, host, port, log, ready_timeout, health=config.health)
    except BaseException:
        # Interrupted or failed: stop what this run started, remove only this run's record.
        if server is not None:
            abandon(config, process, server)
        elif process.poll() is None:
            # Not yet identified: our own unreaped child, so its PID cannot have been reused.
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        raise
    return record, process


def abandon(config: Config, process: subprocess.Popen[bytes], server: procs.ProcessId) -> None:
    """Stop a server this run started and remove its record (only its own)."""
    if process.poll() is None:
        procs.stop(server, STOP_TIMEOUT, own_session=True)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)
    state.clear(config.root, server)


def answered_by(host: str, port: int, server: procs.ProcessId) -> bool:
    """True if the socket listening on `host:port`, the address the server was told to bind,
    belongs to `server` or a process of its session (a listener on another address of the
    same port, `[::1]` beside `127.0.0.1`, is not it)."""
    holder = find_holder(port, host=host)
    if holder.pid is None:
        return False
    stat = procs.read_stat(holder.pid)
    return holder.pid == server.pid or (stat is not None and stat.session == server.pid)


def wait_ready(
    process: subprocess.Popen[bytes],
    server: procs.ProcessId,
    host: str,
    port: int,
    log: Path,
    timeout: float = READY_TIMEOUT,
    *,
    health: str | None = None,
) -> None:
    """Wait until the server itself answers: `GET health` with 200 where the declaration names
    a health path, else any HTTP answer to `GET /` (an app without a health route is ready once
    it serves).

    Fails at once when the process exits or the reload engine reports that nothing can serve;
    an answer from a socket that is not the server's own does not count.
    """
    import urllib.error  # here, not at the top: `status` must start fast
    import urllib.request

    deadline = time.monotonic() + timeout
    url = f"http://{url_host(host)}:{port}{health or '/'}"
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise StateError(f"the server exited with code {code} before serving: {_tail(log)}")
        failure = _engine_failure(log)
        if failure:
            raise StateError(f"the server cannot start: {failure}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                answered = response.status == 200 or health is None
        except urllib.error.HTTPError:
            answered = health is None
        except (urllib.error.URLError, OSError):
            answered = False
        if answered and answered_by(host, port, server):
            return
        time.sleep(0.1)
    wanted = f"200 from {url}" if health else f"an HTTP answer from {url}"
    raise StateError(f"the server did not give {wanted} within {timeout:.0f} s: {_tail(log)}")


def _engine_failure(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        if _ENGINE_FAILED in line:
            return line.split(_ENGINE_FAILED)[0].removeprefix("hotmode: ").rstrip(" -")
    return ""


def _tail(log: Path | None) -> str:
    if log is None:
        return "see its output above"
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip() if lines else "no output"


@dataclass(frozen=True)
class Stopped:
    """What `stop` stopped: the recorded mode, servers found without a record, companions."""

    recorded: RunState | None
    unrecorded: tuple[Unrecorded, ...]
    companions: companion_record.Stopped
    # Processes that carry this project's marker but are not hotmode's: named, left alone.
    foreign: tuple[str, ...] = ()


def stop(config: Config, timeout: float = STOP_TIMEOUT) -> Stopped:
    """Under the lock: stop the running mode, and any server of this project without a record.

    Only processes proven to be the ones hotmode started are signalled.
    """
    return stop_project(config.root, timeout)


def stop_project(root: Path, timeout: float = STOP_TIMEOUT) -> Stopped:
    """`stop` with the project's folder alone: what the records prove is stopped even when the
    declaration cannot be read."""
    running = state.read(root).state
    if running is not None:
        procs.stop(running.server, timeout, own_session=True)
        state.clear(root, running.server)
    foreign = tuple(foreign_marked(root))
    lost = tuple(s for s in unrecorded(root) if procs.stop(s.server, timeout, own_session=True))
    return Stopped(running, lost, companions.stop_project(root), foreign)


def foreign_marked(root: Path) -> list[str]:
    """One line for each process that carries this project's marker but that hotmode did not
    start (another user's): it is named, never signalled, and never keeps a mode from starting."""
    _, foreign = procs.scan_marked(root, companion_record.written(root))
    return [process.describe() for process in foreign]


def supervise(
    config: Config,
    process: subprocess.Popen[bytes],
    server: procs.ProcessId,
    pending: Callable[[], int | None],
) -> int:
    """Wait on a foreground server; on a signal (from `pending`), stop it and exit 128+signal."""
    try:
        while True:
            signum = pending()
            if signum is not None:
                procs.stop(server, STOP_TIMEOUT, own_session=True)
                process.wait(timeout=STOP_TIMEOUT)
                return 128 + signum
            try:
                code = process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            # Stopped by a signal from elsewhere (`hotmode down`): report it as a shell would.
            return 128 - code if code < 0 else code
    finally:
        if process.poll() is None:
            procs.stop(server, STOP_TIMEOUT, own_session=True)
        state.clear(config.root, server)
        companions.stop(config)


def describe(state_: RunState) -> Mapping[str, Any]:
    """The running mode as plain data, for `status --json`."""
    data = asdict(state_)
    data["pid"] = state_.pid
    data["command"] = list(state_.server.argv)
    data["alive_command"] = read_command(state_.pid)
    return data
