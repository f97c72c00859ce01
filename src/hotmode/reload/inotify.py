"""Linux file events straight from inotify, so that a save is seen the moment it completes.

watchfiles checks for events every `step` milliseconds and hands a batch over only after a
further quiet step: a save reached the supervisor 50 to 100 ms after it happened, and a shorter
step wakes the process more often when idle. Here the watcher thread sleeps in `select` on the
inotify descriptor (no periodic wake-up beyond a slow stop check), and a batch closes a few
milliseconds after its last event once every file written in it has been closed (or moved into
place): a save is a burst of a few milliseconds, and the worker that starts on it is discarded if
more changes follow. A file still open for writing keeps the batch open longer.

Only what `Watcher` needs: non-recursive watches on the planned folders, events as watchfiles'
(kind, path) pairs. Anything else (another OS, an exhausted watch limit) falls back to watchfiles.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import sys
import threading
import time
from collections.abc import Iterable

from hotmode.reload.poller import ADDED, DELETED, MODIFIED

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
    | IN_DELETE_SELF | IN_MOVE_SELF
)  # fmt: skip
EVENT = struct.Struct("iIII")

QUIET_CLOSED = 0.005  # after the last event, every written file closed
QUIET_OPEN = 0.05  # after the last event, a file still open for writing (or only deletions)
STOP_CHECK = 0.5  # how often an idle watcher looks at its stop event


class Inotify:
    """Watches `dirs` (each non-recursively); `wait` returns the next batch of changes."""

    def __init__(self, dirs: Iterable[str], debounce: float) -> None:
        if not sys.platform.startswith("linux"):
            raise OSError(errno.ENOSYS, "inotify is Linux only")
        self.debounce = debounce
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise self._error("inotify_init1")
        self.dirs: dict[int, str] = {}
        try:
            for folder in dirs:
                wd = self._libc.inotify_add_watch(self.fd, os.fsencode(folder), MASK)
                if wd >= 0:
                    self.dirs[wd] = folder
                elif ctypes.get_errno() not in (errno.ENOENT, errno.EACCES, errno.ENOTDIR):
                    raise self._error(f"watching {folder}")
        except OSError:
            os.close(self.fd)
            raise

    @staticmethod
    def _error(what: str) -> OSError:
        code = ctypes.get_errno()
        return OSError(code, f"{what}: {os.strerror(code)}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def wait(self, stop: threading.Event) -> set[tuple[int, str]] | None:
        """Block until a batch is complete (the changes) or `stop` is set (None)."""
        changes: dict[str, int] = {}
        writing: set[str] = set()
        first = last = 0.0
        while not stop.is_set():
            if not changes:
                timeout = STOP_CHECK
            else:
                settled = not writing and any(k != DELETED for k in changes.values())
                quiet = QUIET_CLOSED if settled else QUIET_OPEN
                timeout = max(0.0, min(last + quiet, first + self.debounce) - time.monotonic())
            readable, _, _ = select.select([self.fd], [], [], timeout)
            if not readable:
                if changes:
                    return {(kind, path) for path, kind in changes.items()}
                continue
            now = time.monotonic()
            first = first or now
            last = now
            self._read(changes, writing)
        return None

    def _read(self, changes: dict[str, int], writing: set[str]) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset + EVENT.size <= len(data):
                wd, mask, _cookie, length = EVENT.unpack_from(data, offset)
                raw = data[offset + EVENT.size : offset + EVENT.size + length]
                offset += EVENT.size + length
                self._event(wd, mask, raw.rstrip(b"\0"), changes, writing)

    def _event(
        self, wd: int, mask: int, name: bytes, changes: dict[str, int], writing: set[str]
    ) -> None:
        if mask & IN_Q_OVERFLOW:  # events were lost: every folder counts as changed
            changes.update(dict.fromkeys(self.dirs.values(), MODIFIED))
            return
        folder = self.dirs.get(wd)
        if folder is None:
            return
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            changes[folder] = DELETED
            return
        if not name:
            return
        path = os.path.join(folder, os.fsdecode(name))
        is_dir = bool(mask & IN_ISDIR)
        if mask & (IN_CREATE | IN_MOVED_TO):
            changes[path] = ADDED
        elif mask & (IN_DELETE | IN_MOVED_FROM):
            changes[path] = DELETED
        elif mask & (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE):
            changes.setdefault(path, MODIFIED)
        if is_dir:
            return
        if mask & (IN_MODIFY | IN_CREATE) and not mask & IN_MOVED_TO:
            writing.add(path)
        if mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM):
            writing.discard(path)
