"""Running a mode as local processes, when no Docker engine is reachable (or `--native`).

Native prod serves a read-only snapshot of the committed source (`git archive HEAD`), so the
served code is exactly a commit; native dev serves the working tree with the reload engine. One
mode runs at a time: its record lives in `.hotmode/state.json` beside the declaration, and a record
whose process is gone is stale and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hotmode import companions, snapshot, source
from hotmode.atomic import write_atomic
from hotmode.config import Config
from hotmode.errors import StateError
from hotmode.modes import Selection, read_env_file
from hotmode.ports import find_holder, port_is_free, read_command

STOP_TIMEOUT = 10.0
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class RunState:
    """What `up` started, as recorded in the state file."""

    mode: str
    edition: str
    pid: int
    host: str
    port: int
    revision: str
    mode_source: str
    edition_source: str
    log: str
    started: float
    command: list[str]
    runner: str = "native"

    @property
    def label(self) -> str:
        return f"{self.mode} {self.edition}"


def state_dir(config: Config) -> Path:
    return config.root / ".hotmode"


def _state_file(config: Config) -> Path:
    return state_dir(config) / "state.json"


def is_alive(pid: int) -> bool:
    """True if `pid` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_state(config: Config) -> RunState | None:
    """The running mode, or None; a stale or unreadable record is removed."""
    path = _state_file(config)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        state = RunState(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    # A dead process, or its PID reused by another program, makes the record stale.
    if not is_alive(state.pid) or read_command(state.pid) not in ("", " ".join(state.command)):
        path.unlink(missing_ok=True)
        return None
    return state


def _write_state(config: Config, state: RunState) -> None:
    write_atomic(_state_file(config), json.dumps(asdict(state), indent=2) + "\n")
    gitignore = state_dir(config) / ".gitignore"
    if not gitignore.exists():
        write_atomic(gitignore, "*\n")


def check_free(config: Config, host: str, port: int) -> None:
    """Refuse to start when the port is held, naming what holds it."""
    running = read_state(config)
    if running is not None:
        raise StateError(
            f"{running.label} is already running (pid {running.pid}, port {running.port}); "
            "stop it with `hotmode down`, or change mode with `hotmode switch`"
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
    env.update(read_env_file(config.deployment / ".env"))
    edition = config.edition(selection.edition)
    if edition.env_file:
        env.update(read_env_file(config.deployment / edition.env_file))
    env.update(edition.env)
    env["HOTMODE_MODE"] = selection.mode
    return env


def build_command(
    config: Config, selection: Selection, host: str, port: int, *, allow_uncommitted: bool
) -> tuple[list[str], dict[str, str], str, Path]:
    """The argv, environment, revision and working folder of a mode's server."""
    env = _base_env(config, selection)
    env["PORT"] = str(port)
    logs = state_dir(config) / "logs" / f"{selection.mode}-{selection.edition}"
    if selection.dev:
        revision = source.describe_working_tree(config.source)
        env.update(config.dev.env)
        env["HOT_RELOAD_ENABLED"] = "true"
        env["HOTMODE_REVISION"] = revision
        # Byte-code goes under .hotmode/, never into the source tree.
        env["PYTHONPYCACHEPREFIX"] = str(state_dir(config) / "pycache")
        argv = [sys.executable, "-m", "hotmode", "run", config.target, "--reload"]
        argv += ["--app-dir", str(config.source), "--host", host, "--port", str(port)]
        argv += ["--log-level", config.dev.log_level]
        argv += ["--install", config.install_command, *config.watch_options]
        env_file = config.deployment / ".env"
        if env_file.is_file():
            argv += ["--env-file", str(env_file)]
        return argv, env, revision, config.source
    served, revision = snapshot.prepare(config, state_dir(config), allow_uncommitted)
    env["HOTMODE_REVISION"] = revision
    env["HOT_RELOAD_ENABLED"] = "false"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["LOG_DIR"] = str(logs)
    argv = [sys.executable, "-m", "uvicorn", config.target, "--app-dir", str(served)]
    argv += ["--host", host, "--port", str(port)]
    return argv, env, revision, served


def start(
    config: Config,
    selection: Selection,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    detach: bool,
    allow_uncommitted: bool = False,
    say: Callable[[str], None] = lambda _line: None,
) -> tuple[RunState, subprocess.Popen[bytes]]:
    """Start a mode's server; with `detach`, return once it answers `/health`."""
    port = port or config.port
    check_free(config, host, port)
    argv, env, revision, cwd = build_command(
        config, selection, host, port, allow_uncommitted=allow_uncommitted
    )
    # Companion services (the database) first, and the app told where they are (issue 10).
    env.update(companions.start(config, selection, say))
    try:
        return _start_app(config, selection, argv, env, revision, cwd, host, port, detach)
    except BaseException:
        companions.stop(config)
        raise


def _start_app(
    config: Config,
    selection: Selection,
    argv: list[str],
    env: dict[str, str],
    revision: str,
    cwd: Path,
    host: str,
    port: int,
    detach: bool,
) -> tuple[RunState, subprocess.Popen[bytes]]:
    log = state_dir(config) / f"{selection.mode}-{selection.edition}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    output = log.open("ab") if detach else None
    try:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if detach else None,
            # Its own session: a terminal's Ctrl-C reaches `up`, which stops it in order.
            start_new_session=True,
        )
    finally:
        if output is not None:
            output.close()
    state = RunState(
        mode=selection.mode,
        edition=selection.edition,
        pid=process.pid,
        host=host,
        port=port,
        revision=revision,
        mode_source=selection.mode_source,
        edition_source=selection.edition_source,
        log=str(log) if detach else "",
        started=time.time(),
        command=argv,
    )
    _write_state(config, state)
    if detach:
        try:
            wait_ready(process, host, port, log)
        except BaseException:
            stop_pid(process.pid)
            _state_file(config).unlink(missing_ok=True)
            raise
    return state, process


def wait_ready(
    process: subprocess.Popen[bytes],
    host: str,
    port: int,
    log: Path,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Wait until `GET /health` answers 200, the process dies, or the deadline passes."""
    import urllib.error  # here, not at the top: `status` must start fast
    import urllib.request

    deadline = time.monotonic() + timeout
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/health"  # noqa: S104
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise StateError(f"the server exited with code {code} before serving: {_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise StateError(f"the server did not answer {url} within {timeout:.0f} s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip() if lines else "no output"


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM a server, wait up to `timeout`, then SIGKILL its whole process group."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_alive(pid):
        time.sleep(0.05)
    # The server leads its own session; the group holds its workers too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return True


def stop(config: Config, timeout: float = STOP_TIMEOUT) -> RunState | None:
    """Stop the running mode; return what was stopped, or None if nothing ran."""
    state = read_state(config)
    if state is None:
        return None
    stop_pid(state.pid, timeout)
    _state_file(config).unlink(missing_ok=True)
    companions.stop(config)
    return state


def supervise(
    config: Config,
    process: subprocess.Popen[bytes],
    pending: Callable[[], int | None],
) -> int:
    """Wait on a foreground server; on a signal (from `pending`), stop it and exit 128+signal."""
    try:
        while True:
            signum = pending()
            if signum is not None:
                stop_pid(process.pid)
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
            stop_pid(process.pid)
        _state_file(config).unlink(missing_ok=True)
        companions.stop(config)


def describe(state: RunState) -> Mapping[str, Any]:
    """The running mode as plain data, for `status --json`."""
    data = asdict(state)
    data["alive_command"] = read_command(state.pid)
    return data
