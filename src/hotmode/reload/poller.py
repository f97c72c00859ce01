"""Polling for changes where file events do not arrive: stat each watched folder's entries.

watchfiles' own poller (notify's) compares modification times in whole seconds and ignores the
size, so a second save within the same second as the last one is never seen (measured with
watchfiles 1.3). This one compares the modification time in nanoseconds, the size and the inode,
and, like git's "racily clean" index entries, keeps a digest of any file modified within the
timestamp granularity of the scan that saw it: a same-size save in that same clock tick is then
found by its content. The first snapshot is taken by the constructor, so a save made once it
returns is never lost.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable

# watchfiles' Change values, so that both sources yield the same (kind, path) pairs.
ADDED, MODIFIED, DELETED = 1, 2, 3
# File timestamps come from the kernel's coarse clock (one jiffy, up to 10 ms); a file modified
# this close to a scan may be modified again with no visible change of time.
RACY_NS = 20_000_000
RACY_MAX_BYTES = 1 << 20

Key = tuple[int, int, int, bool, bytes | None]


def _digest(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return hashlib.blake2b(file.read(RACY_MAX_BYTES), digest_size=16).digest()
    except OSError:
        return None


class Poller:
    """A snapshot of `dirs` (non-recursively) and the changes since, one scan every `period`."""

    def __init__(self, dirs: Iterable[str], period: float) -> None:
        self.dirs = list(dirs)
        self.period = period
        self.snapshot = self._scan()

    def _scan(self) -> dict[str, Key]:
        started = time.time_ns()
        found: dict[str, Key] = {}
        for folder in self.dirs:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=True)
                except OSError:
                    continue
                is_dir = entry.is_dir()
                racy = not is_dir and st.st_mtime_ns >= started - RACY_NS
                digest = _digest(entry.path) if racy else None
                found[entry.path] = (st.st_mtime_ns, st.st_size, st.st_ino, is_dir, digest)
        return found

    def changes(self) -> set[tuple[int, str]]:
        """Scan now; the changes since the previous scan."""
        new = self._scan()
        old, self.snapshot = self.snapshot, new
        found = {(DELETED, path) for path in old.keys() - new.keys()}
        found |= {(ADDED, path) for path in new.keys() - old.keys()}
        for path in new.keys() & old.keys():
            before, after = old[path], new[path]
            racy_and_differs = before[4] is not None and _digest(path) != before[4]
            if before[:4] != after[:4] or racy_and_differs:
                found.add((MODIFIED, path))
        return found

    def wait(self, stop: threading.Event) -> set[tuple[int, str]] | None:
        """Block until something changed (the changes) or `stop` is set (None)."""
        while not stop.wait(self.period):
            found = self.changes()
            if found:
                return found
        return None
