"""Which process is which, and signalling only the processes hotmode proved it started.

A PID alone names nothing for long: it is reused, a record holding it can be edited, truncated
or copied with a project, and `kill(-1)` or `kill(0)` mean "every process" and "my own group".
So a process is identified by its PID *and* its start time *and* its argv *and* the run id and
project folder hotmode put in its environment when it started it: one proof for every record
(the app, its workers, companions). Every signal goes through `signal_process`, which holds the
process (a pidfd on Linux) before it checks the identity, then signals what it holds. Process
groups are never signalled as such; their members are listed and proved one by one. What the
system tells comes through `hotmode.proctable` (Linux's /proc and pidfds, or psutil).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat as stat_module
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from hotmode.proctable import table
from hotmode.proctable.base import Stat

# The largest PID Linux can hand out (PID_MAX_LIMIT on 64-bit).
PID_MAX = 4_194_304
_PF_KTHREAD = 0x00200000
RUN_VARIABLE = "HOTMODE_RUN_ID"
PROJECT_VARIABLE = "HOTMODE_PROJECT"


@dataclass(frozen=True)
class ProcessId:
    """A process as hotmode recorded it: PID, start time and argv; the run id and project
    folder it was given."""

    pid: int
    start_time: int
    argv: tuple[str, ...]
    run_id: str = ""
    project: str = ""
    # The project folder's identity (`project_id`): a renamed folder is still the project.
    project_id: str = ""


def project_id(folder: Path | str) -> str:
    """A folder's identity, its device and inode: the same after a rename, '' if it cannot be
    read."""
    try:
        info = os.stat(folder)
    except OSError:
        return ""
    return f"{info.st_dev}:{info.st_ino}"


def same_project(recorded: object, recorded_id: object, project: Path) -> bool:
    """True if a record's project folder (path, identity) is `project`: by its path, or, once
    the folder was renamed, by the identity kept in the record."""
    if recorded == str(project):
        return True
    return isinstance(recorded_id, str) and bool(recorded_id) and recorded_id == project_id(project)


def valid_pid(pid: object) -> bool:
    """True for a PID that can name one ordinary process: an int (not a bool) in 2..PID_MAX."""
    return isinstance(pid, int) and not isinstance(pid, bool) and 1 < pid <= PID_MAX


def read_stat(pid: int) -> Stat | None:
    """The identifying fields of a process, or None if it is gone (or not a valid PID)."""
    return table().stat(pid) if valid_pid(pid) else None


def read_argv(pid: int) -> tuple[str, ...] | None:
    """A process's argv, empty items kept, or None if it is gone or hidden."""
    return table().argv(pid) if valid_pid(pid) else None


def read_environ(pid: int) -> dict[str, str] | None:
    """A process's initial environment, or None if it cannot be read (gone, or another user's)."""
    return table().environ(pid) if valid_pid(pid) else None


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
    if not isinstance(folder, str) or not same_project(folder, data.get("project_id"), project):
        raise ValueError(f"{field} belongs to another project folder ({folder!r})")
    assert isinstance(pid, int)  # noqa: S101 - valid_pid proved it; for the type checker
    return ProcessId(pid, start, tuple(argv), run_id, folder, project_id(project))


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


def identify(pid: int, run_id: str = "", project: str = "") -> ProcessId | None:
    """The identity of a running user-space process, to record now and prove later."""
    stat = read_stat(pid)
    argv = read_argv(pid)
    if not alive(stat) or not argv or stat is None or stat.flags & _PF_KTHREAD:
        return None
    return ProcessId(
        pid, stat.start_time, argv, run_id, project, project_id(project) if project else ""
    )


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


def why_not(record: ProcessId, *, started_by_us: bool = True) -> str:
    """'' if the process `record` names is running and is the same one; else why it is not.

    `started_by_us=False` drops the run-id proof, for a process that is only looked at (the
    `hotmode up` supervising a foreground server), never signalled.
    """
    if not valid_pid(record.pid):
        return f"pid {record.pid!r} cannot name a process hotmode started"
    stat = read_stat(record.pid)
    if not alive(stat) or stat is None:
        return f"pid {record.pid} is no longer running"
    if stat.flags & _PF_KTHREAD:
        return f"pid {record.pid} is a kernel thread"
    if stat.start_time != record.start_time:
        return f"pid {record.pid} is now another process (it started at another time)"
    if read_argv(record.pid) != record.argv:
        return f"pid {record.pid} is now another program"
    # The run id and project hotmode put in the server's environment are the proof: a record
    # that copies another process's PID, start time and argv still cannot name it, and a
    # record copied from another project names that project's processes, not this one's.
    if not started_by_us:
        return ""
    environ = read_environ(record.pid)
    if not record.run_id or environ is None or environ.get(RUN_VARIABLE) != record.run_id:
        return f"pid {record.pid} was not started by hotmode for this record"
    if not record.project or environ.get(PROJECT_VARIABLE) != record.project:
        return f"pid {record.pid} was started for another project folder"
    return ""


def is_same(record: ProcessId) -> bool:
    return not why_not(record)


def signal_process(record: ProcessId, signum: int) -> bool:
    """Send `signum` to the process `record` names, only if it is provably that process.

    The process is held (a pidfd on Linux) before its identity is checked, so the check and the
    signal are about one and the same process. False if it is not (or no longer) that process;
    nothing is signalled then.
    """
    if not valid_pid(record.pid):
        return False
    return table().signal(record.pid, signum, lambda: is_same(record))


def wait_gone(record: ProcessId, timeout: float) -> bool:
    """Wait up to `timeout` s for the process to end; True if it has."""
    if not valid_pid(record.pid):
        return True
    return table().wait_gone(record.pid, timeout, lambda: is_same(record))


def session_members(leader: ProcessId) -> list[ProcessId]:
    """The processes of the session `leader` created (its workers), leader excluded.

    A member must be in the session named after the leader and have started no earlier than
    the leader: a session id reused after every member died cannot match.
    """
    members = []
    for pid in table().members(leader.pid):
        stat = read_stat(pid)
        if (
            stat is not None
            and alive(stat)
            and stat.start_time >= leader.start_time
            and (found := identify(pid)) is not None
        ):
            members.append(found)
    return members


def _running() -> Iterator[tuple[int, Stat]]:
    """Every live process the system shows, with its stat fields."""
    for pid in table().pids():
        stat = read_stat(pid)
        if stat is not None and alive(stat):
            yield pid, stat


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


@dataclass(frozen=True)
class Foreign:
    """A process that carries a project's marker but is not hotmode's to stop."""

    pid: int
    uid: int | None

    def describe(self) -> str:
        return (
            f"pid {self.pid} (uid {'?' if self.uid is None else self.uid}) carries this "
            "project's marker, but hotmode did not start it (not its user's, and no run id "
            "hotmode wrote); it is left alone"
        )


def find_marked(project: Path, written: Collection[tuple[str, int]] = ()) -> list[ProcessId]:
    """Session leaders whose environment says hotmode started them for `project`.

    A server whose record was lost (`.hotmode` deleted, say) is still found this way: hotmode
    puts the project's folder and a run id in the environment of every server it starts. The
    marker alone proves nothing (any local user can set it): a process is believed only if it
    runs as hotmode's own user, or carries a run id hotmode wrote in a record for the user it
    runs as (`written`: run id, uid), as a companion run as its own user does.
    """
    return scan_marked(project, written)[0]


def scan_marked(
    project: Path, written: Collection[tuple[str, int]] = ()
) -> tuple[list[ProcessId], list[Foreign]]:
    """The marked processes hotmode started (`find_marked`), and the others that carry the
    marker, named and never signalled."""
    found, foreign = [], []
    mine = os.geteuid() if hasattr(os, "geteuid") else None
    for pid, stat in _running():
        if stat.session != pid:
            continue
        environ = read_environ(pid)
        if not environ or environ.get(PROJECT_VARIABLE) != str(project):
            continue
        run_id = environ.get(RUN_VARIABLE, "")
        uid = table().owner(pid)
        believed = run_id and (uid == mine or (run_id, uid) in written)
        process = identify(pid, run_id, str(project)) if believed else None
        if process is not None:
            found.append(process)
        elif alive(read_stat(pid)):
            foreign.append(Foreign(pid, uid))
    return found, foreign


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
