"""Which process is which, and signalling only the processes hotmode proved it started.

A PID alone names nothing for long: it is reused, a record holding it can be edited, truncated
or copied with a project, and `kill(-1)` or `kill(0)` mean "every process" and "my own group".
So a process is identified by its PID *and* its start time (`/proc/PID/stat`, field 22, in clock
ticks since boot) *and* its argv *and* the run id and project folder hotmode put in its
environment when it started it: one proof for every record (the app, its workers, companions).
Every signal goes through `signal_process`, which opens a pidfd first, then checks the identity,
then signals through the pidfd: a PID reused in between can never be hit. Process groups are
never signalled as such; their members are listed and proved one by one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import stat as stat_module
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# The largest PID Linux can hand out (PID_MAX_LIMIT on 64-bit).
PID_MAX = 4_194_304
_PF_KTHREAD = 0x00200000
RUN_VARIABLE = "HOTMODE_RUN_ID"
PROJECT_VARIABLE = "HOTMODE_PROJECT"


@dataclass(frozen=True)
class Stat:
    """The fields of `/proc/PID/stat` that identify a process and place it."""

    state: str
    ppid: int
    pgrp: int
    session: int
    flags: int
    start_time: int


@dataclass(frozen=True)
class ProcessId:
    """A process as hotmode recorded it: PID, start time and argv; the run id and project
    folder it was given."""

    pid: int
    start_time: int
    argv: tuple[str, ...]
    run_id: str = ""
    project: str = ""


def valid_pid(pid: object) -> bool:
    """True for a PID that can name one ordinary process: an int (not a bool) in 2..PID_MAX."""
    return isinstance(pid, int) and not isinstance(pid, bool) and 1 < pid <= PID_MAX


def read_stat(pid: int, proc: Path = PROC) -> Stat | None:
    """The identifying fields of a process, or None if it is gone (or not a valid PID)."""
    if not valid_pid(pid):
        return None
    try:
        raw = (proc / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw.rsplit(")", 1)[-1].split()
    try:
        return Stat(
            state=fields[0],
            ppid=int(fields[1]),
            pgrp=int(fields[2]),
            session=int(fields[3]),
            flags=int(fields[6]),
            start_time=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def read_argv(pid: int, proc: Path = PROC) -> tuple[str, ...] | None:
    """A process's argv, empty items kept, or None if it is gone or hidden."""
    if not valid_pid(pid):
        return None
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return ()
    return tuple(part.decode(errors="replace") for part in raw.removesuffix(b"\0").split(b"\0"))


def read_environ(pid: int, proc: Path = PROC) -> dict[str, str] | None:
    """A process's initial environment, or None if it cannot be read (gone, or another user's)."""
    if not valid_pid(pid):
        return None
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def parse_record(data: object, field: str, project: Path) -> ProcessId:
    """A process record read from a file, every field checked; `ValueError` says what is wrong.

    Every record file (`state.json`, `companions.json`) goes through here: a PID that is not a
    positive int, a start time, an argv, a run id, and the project folder the record belongs to.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{field} is not an object")
    pid, start, argv, run_id, folder = (
        data.get(k) for k in ("pid", "start_time", "argv", "run_id", "project")
    )
    if not valid_pid(pid):
        raise ValueError(f"{field}.pid {pid!r} cannot name a process hotmode started")
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise ValueError(f"{field}.start_time {start!r} is not a start time")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"{field}.argv is not a command line")
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"{field}.run_id is not a run id")
    if folder != str(project):
        raise ValueError(f"{field} belongs to another project folder ({folder!r})")
    assert isinstance(pid, int)  # noqa: S101 - valid_pid proved it; for the type checker
    return ProcessId(pid, start, tuple(argv), run_id, folder)


def record_file_problem(path: Path) -> str:
    """'' if `path` is missing or a regular file; else why hotmode cannot keep a record there.

    Checked before anything is opened: reading a FIFO would block for ever.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})"
    if stat_module.S_ISREG(mode):
        return ""
    kind = {
        stat_module.S_IFDIR: "a folder",
        stat_module.S_IFIFO: "a FIFO",
        stat_module.S_IFLNK: "a symbolic link",
        stat_module.S_IFSOCK: "a socket",
    }.get(stat_module.S_IFMT(mode), "not a regular file")
    return f"{path} is {kind}, not hotmode's record; move it away"


def read_record_bytes(path: Path) -> bytes | None:
    """A record file's bytes, or None if it is missing; `OSError` if it is not a regular file.

    Opened without blocking and without following a link, then checked: a FIFO, a device or a
    folder put there never hangs or crashes a command.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return handle.read(1 << 20)


def alive(stat: Stat | None) -> bool:
    return stat is not None and stat.state not in ("Z", "X", "x")


def identify(pid: int, run_id: str = "", proc: Path = PROC, project: str = "") -> ProcessId | None:
    """The identity of a running user-space process, to record now and prove later."""
    stat = read_stat(pid, proc)
    argv = read_argv(pid, proc)
    if not alive(stat) or not argv or stat is None or stat.flags & _PF_KTHREAD:
        return None
    return ProcessId(pid, stat.start_time, argv, run_id, project)


def identify_started(
    pid: int, argv: list[str], run_id: str, timeout: float = 5.0, project: str = ""
) -> ProcessId | None:
    """The identity of a child just started with `argv`, or None if it died first.

    `Popen` returns once `execve` has passed its point of no return, but for a moment after
    that the kernel still shows an empty command line: wait (bounded) for the argv we passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = identify(pid, run_id, project=project)
        if found is not None and found.argv == tuple(argv):
            return found
        if not alive(read_stat(pid)) or time.monotonic() >= deadline:
            return found
        time.sleep(0.001)


def why_not(record: ProcessId, proc: Path = PROC, *, started_by_us: bool = True) -> str:
    """'' if the process `record` names is running and is the same one; else why it is not.

    `started_by_us=False` drops the run-id proof, for a process that is only looked at (the
    `hotmode up` supervising a foreground server), never signalled.
    """
    if not valid_pid(record.pid):
        return f"pid {record.pid!r} cannot name a process hotmode started"
    stat = read_stat(record.pid, proc)
    if not alive(stat) or stat is None:
        return f"pid {record.pid} is no longer running"
    if stat.flags & _PF_KTHREAD:
        return f"pid {record.pid} is a kernel thread"
    if stat.start_time != record.start_time:
        return f"pid {record.pid} is now another process (it started at another time)"
    if read_argv(record.pid, proc) != record.argv:
        return f"pid {record.pid} is now another program"
    # The run id and project hotmode put in the server's environment are the proof: a record
    # that copies another process's PID, start time and argv still cannot name it, and a
    # record copied from another project names that project's processes, not this one's.
    if not started_by_us:
        return ""
    environ = read_environ(record.pid, proc)
    if not record.run_id or environ is None or environ.get(RUN_VARIABLE) != record.run_id:
        return f"pid {record.pid} was not started by hotmode for this record"
    if not record.project or environ.get(PROJECT_VARIABLE) != record.project:
        return f"pid {record.pid} was started for another project folder"
    return ""


def is_same(record: ProcessId, proc: Path = PROC) -> bool:
    return not why_not(record, proc)


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int | None]:
    """A pidfd for `pid` where the system has them (Linux 5.3+), else None."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError) as exc:
        if isinstance(exc, ProcessLookupError):
            raise
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def signal_process(record: ProcessId, signum: int) -> bool:
    """Send `signum` to the process `record` names, only if it is provably that process.

    The pidfd is opened before the identity is checked, so the check and the signal are about
    one and the same process even if the PID is reused in between. False if it is not (or no
    longer) that process; nothing is signalled then.
    """
    if not valid_pid(record.pid):
        return False
    try:
        with _pidfd(record.pid) as fd:
            if not is_same(record):
                return False
            if fd is not None:
                signal.pidfd_send_signal(fd, signum)
            else:
                os.kill(record.pid, signum)
    except ProcessLookupError:
        return False
    return True


def wait_gone(record: ProcessId, timeout: float) -> bool:
    """Wait up to `timeout` s for the process to end; True if it has."""
    deadline = time.monotonic() + timeout
    try:
        with _pidfd(record.pid) as fd:
            if fd is not None and is_same(record):
                # A pidfd becomes readable when its process ends, child or not.
                ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
                return bool(ready) or not is_same(record)
    except ProcessLookupError:
        return True
    while time.monotonic() < deadline:
        if not is_same(record):
            return True
        time.sleep(0.05)
    return not is_same(record)


def session_members(leader: ProcessId, proc: Path = PROC) -> list[ProcessId]:
    """The processes of the session `leader` created (its workers), leader excluded.

    A member must be in the session and group named after the leader and have started no
    earlier than the leader: a group id reused after every member died cannot match.
    """
    members = []
    for pid, stat in _running(proc):
        if (
            pid != leader.pid
            and stat.session == leader.pid
            and stat.start_time >= leader.start_time
            and (found := identify(pid, proc=proc)) is not None
        ):
            members.append(found)
    return members


def _running(proc: Path) -> Iterator[tuple[int, Stat]]:
    """Every live process the system shows, with its stat fields."""
    try:
        entries = [e.name for e in proc.iterdir() if e.name.isdigit()]
    except OSError:
        return
    for name in entries:
        stat = read_stat(int(name), proc)
        if stat is not None and alive(stat):
            yield int(name), stat


def stop(
    record: ProcessId,
    timeout: float,
    *,
    own_session: bool,
    gentle: tuple[int, ...] = (signal.SIGTERM,),
) -> bool:
    """Send each `gentle` signal in turn (SIGTERM), waiting for an equal share of `timeout`,
    then SIGKILL it and, if it leads a session hotmode created, every proven member of that
    session. True if it was ours to stop."""
    members = session_members(record) if own_session and is_same(record) else []
    if not signal_process(record, gentle[0]):
        return False
    share = timeout / len(gentle)
    gone = wait_gone(record, share)
    for signum in gentle[1:]:
        if gone:
            break
        signal_process(record, signum)
        gone = wait_gone(record, share)
    if not gone:
        signal_process(record, signal.SIGKILL)
        wait_gone(record, 2.0)
    for member in [*members, *(session_members(record) if own_session else [])]:
        signal_process(member, signal.SIGKILL)
    return True


def find_marked(project: Path, proc: Path = PROC) -> list[ProcessId]:
    """Session leaders whose environment says hotmode started them for `project`.

    A server whose record was lost (`.hotmode` deleted, say) is still found this way: hotmode
    puts the project's folder and a run id in the environment of every server it starts.
    """
    found = []
    for pid, stat in _running(proc):
        if stat.session != pid:
            continue
        environ = read_environ(pid, proc)
        if not environ or environ.get(PROJECT_VARIABLE) != str(project):
            continue
        process = identify(pid, environ.get(RUN_VARIABLE, ""), proc, str(project))
        if process is not None:
            found.append(process)
    return found


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Stop signals wait until the block ends: what runs in it (a rollback) must finish.

    They are recorded, not masked: a mask would be inherited by the servers started in the
    block, which could then never be stopped with SIGTERM. The first one is raised again after.
    """
    received: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda got, _frame: received.append(got))
        for signum in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])
