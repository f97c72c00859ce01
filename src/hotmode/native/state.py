"""What runs in a project, as recorded in `.hotmode/state.json`, and one writer at a time.

The record is untrusted input: a crash can truncate it, a person can edit it, a copied project
brings someone else's. It is parsed strictly (every field of the right type, PIDs that can name
one ordinary process), and a record is believed only while its process is provably the one
hotmode started (`hotmode.procs`). Anything else is reported as stale or unreadable, never acted
on. `project_lock` serialises the commands that change what runs (`up`, `switch`, `down`) with
an exclusive `flock` on `.hotmode/lock`; a second caller waits briefly, then is refused with the
holder's PID and command.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hotmode import procs, safefs
from hotmode.atomic import write_atomic
from hotmode.errors import StateError, UsageError

RECORD_VERSION = 3
LOCK_WAIT = 3.0


@dataclass(frozen=True)
class RunState:
    """What `up` started, as recorded in the state file."""

    mode: str
    edition: str
    server: procs.ProcessId
    host: str
    port: int
    revision: str
    mode_source: str
    edition_source: str
    log: str
    started: float
    # The `hotmode up` that supervises a foreground server, or None when detached.
    owner: procs.ProcessId | None = None
    runner: str = "native"

    @property
    def pid(self) -> int:
        return self.server.pid

    @property
    def label(self) -> str:
        return f"{self.mode} {self.edition}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = RECORD_VERSION
        return data


@dataclass(frozen=True)
class Record:
    """The state file as read: the running mode, or why there is none to believe."""

    state: RunState | None = None
    problem: str = ""


def state_dir(root: Path) -> Path:
    return root / ".hotmode"


def state_file(root: Path) -> Path:
    return state_dir(root) / "state.json"


def ensure_state_dir(root: Path) -> Path:
    """`.hotmode/`, created (git-ignored) if needed; a one-line error if it cannot be."""
    folder = state_dir(root)
    try:
        safefs.make_folders(root, folder)
        gitignore = folder / ".gitignore"
        if not gitignore.exists():
            write_atomic(gitignore, "*\n", within=root)
    except OSError as exc:
        raise fs_error(exc, folder) from exc
    return folder


def fs_error(exc: OSError, folder: Path) -> UsageError:
    """A file-system error as one line that names the folder and what to do."""
    path = exc.filename or folder
    what = {
        errno.EACCES: "make it writable, or run hotmode as its owner",
        errno.EPERM: "make it writable, or run hotmode as its owner",
        errno.EROFS: "it is on a read-only file system; run hotmode from a writable copy",
        errno.ENOTDIR: f"{folder} must be a folder; move the file away",
        errno.EEXIST: f"{folder} must be a folder; move the file away",
        errno.ENAMETOOLONG: "the path is longer than the system allows; use a shorter folder",
        errno.ENOENT: "a folder on the way is missing; was it deleted?",
        errno.ENOSPC: "the disk is full; free some space",
    }.get(exc.errno or 0, "check the folder and its permissions")
    return UsageError(f"cannot use {path}: {exc.strerror or exc}; {what}")


def parse(data: object, root: Path) -> RunState:
    """A record of the project at `root` from JSON data, every field checked; `ValueError`
    says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("it is not a JSON object")
    if data.get("version") != RECORD_VERSION:
        raise ValueError(f"it has version {data.get('version')!r}, not {RECORD_VERSION}")
    text = {}
    for name in ("mode", "edition", "host", "revision", "mode_source", "edition_source", "log"):
        value = data.get(name)
        if not isinstance(value, str):
            raise ValueError(f"{name} is not text")
        text[name] = value
    if text["mode"] not in ("dev", "prod"):
        raise ValueError(f"mode {text['mode']!r} is not dev or prod")
    port = data.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"port {port!r} is not a TCP port")
    started = data.get("started")
    if not isinstance(started, int | float) or isinstance(started, bool):
        raise ValueError("started is not a time")
    owner = data.get("owner")
    return RunState(
        server=procs.parse_record(data.get("server"), "server", root),
        port=port,
        started=float(started),
        owner=None if owner is None else _owner(owner),
        **text,
    )


def _owner(data: object) -> procs.ProcessId:
    """The `hotmode up` supervising a foreground server: only looked at, never signalled."""
    if not isinstance(data, dict):
        raise ValueError("owner is not an object")
    pid, start, argv = (data.get(k) for k in ("pid", "start_time", "argv"))
    if not procs.valid_pid(pid) or not isinstance(start, int) or isinstance(start, bool):
        raise ValueError("owner is not a process")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError("owner.argv is not a command line")
    assert isinstance(pid, int)  # noqa: S101 - valid_pid proved it; for the type checker
    return procs.ProcessId(pid, start, tuple(argv))


def read(root: Path) -> Record:
    """The running mode, if its record is readable and its process provably the one started.

    Never changes anything: a stale or unreadable record is reported in `problem`, and removed
    only by `clear` under the project lock.
    """
    path = state_file(root)
    problem = procs.record_file_problem(path)
    if problem:
        return Record(problem=f"{problem}; nothing was signalled")
    try:
        raw = procs.read_record_bytes(path)
    except OSError as exc:
        return Record(problem=f"{path} cannot be read ({exc.strerror}); nothing was signalled")
    if raw is None:
        return Record()
    try:
        state = parse(json.loads(raw.decode("utf-8")), root)
    except (ValueError, RecursionError) as exc:
        reason = "it is not valid JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
        return Record(problem=f"ignored {path}: {reason}; no process was signalled")
    why = procs.why_not(state.server)
    if why:
        return Record(problem=f"the record of {state.label} is stale: {why}")
    return Record(state)


def check_record_files(root: Path, names: tuple[str, ...] = ("state.json",)) -> None:
    """Refuse, in one line, a record file that is a FIFO, a folder or a link: nothing starts."""
    for name in names:
        problem = procs.record_file_problem(state_dir(root) / name)
        if problem:
            raise UsageError(problem)


def write(root: Path, state: RunState) -> None:
    ensure_state_dir(root)
    try:
        write_atomic(state_file(root), json.dumps(state.as_dict(), indent=2) + "\n", within=root)
    except OSError as exc:
        raise fs_error(exc, state_dir(root)) from exc


def clear(root: Path, server: procs.ProcessId | None = None) -> None:
    """Remove the record if it is `server`'s, or, with no `server`, if it is not live.

    A failure path passes its own server, so that it never removes another run's record.
    """
    path = state_file(root)
    if procs.record_file_problem(path):
        return
    if server is None:
        if read(root).state is not None:
            return
    else:
        try:
            raw = procs.read_record_bytes(path)
            if raw is None or parse(json.loads(raw), root).server != server:
                return
        except (OSError, ValueError, RecursionError):
            return
    try:
        safefs.unlink(root, path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return
    except OSError as exc:
        raise fs_error(exc, state_dir(root)) from exc


@contextlib.contextmanager
def project_lock(root: Path, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the project's exclusive lock; after `wait` s, refuse naming the holder (exit 1)."""
    folder = ensure_state_dir(root)
    path = folder / "lock"
    try:
        # Never through a link: a planted `lock` would have hotmode truncate what it names.
        fd = safefs.open_file(root, path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise fs_error(exc, folder) from exc
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StateError(_busy(path)) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\0{' '.join(['hotmode', *sys.argv[1:]])}".encode(), 0)
        yield
    finally:
        # Closing the descriptor releases the lock; the file stays, empty or not.
        os.close(fd)


def _busy(path: Path) -> str:
    try:
        pid, _, command = path.read_text(errors="replace").partition("\0")
    except OSError:
        pid, command = "?", ""
    holder = f"pid {pid}: {command}" if command else f"pid {pid or '?'}"
    return (
        f"another hotmode command is changing this project ({holder}); "
        "wait for it to finish, then run yours again"
    )
