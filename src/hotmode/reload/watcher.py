"""Watching the source: file events (or polling) in a thread, ignored folders pruned.

Each folder is watched on its own (see `rules.watched_dirs`), so ignored trees are never watched;
a folder created or deleted re-plans the watch. Polling (`poller.Poller`) is used where file
events do not arrive: network and VM-backed mounts (read from /proc/self/mountinfo), or when
HOTMODE_FORCE_POLLING is set. File events come from inotify directly (`inotify.Inotify`: a save
is delivered as soon as it completes), else from watchfiles. `Watcher.start` returns once the
watches exist. Batches are classified by `rules.Rules` and handed over with the time the change
happened (not the time the batch closed), so that the reported save-to-served time includes the
watcher's own delay.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from hotmode.reload.inotify import Inotify
from hotmode.reload.poller import Poller
from hotmode.reload.rules import CODE, Rules, watched_dirs
from hotmode.reload.supervisor import Change

log = logging.getLogger("hotmode.reload")

# File systems where inotify does not see changes made on the other side of the mount.
POLLED_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "virtiofs", "vboxsf", "vmhgfs", "prl_fs",
     "fakeowner", "afs", "ceph", "glusterfs", "sshfs", "davfs"}
)  # fmt: skip
POLLED_FUSE = ("fuse.grpcfuse", "fuse.osxfs", "fuse.sshfs", "fuse.vmhgfs-fuse", "fuse.gcsfuse")

# watchfiles (used where inotify is not): the quiet time that closes a batch, and the watcher
# thread's idle wake-up period: 50 ms is uvicorn's, so idle CPU stays at par.
STEP_MS = 50
DEBOUNCE_MS = 400  # the longest a batch may keep growing
POLL_MS = 200

_TRUE = {"1", "true", "yes", "on"}


def changed_at(raw: Iterable[tuple[object, str]], seen: float) -> float:
    """When a batch's change happened, on the monotonic clock: the oldest modification time of
    its files, since a batch is delivered only after a quiet step (or the next poll), but never
    earlier than the longest a batch can take to form (a copied file keeps an old time)."""
    now_wall = time.time()
    earliest = seen - (DEBOUNCE_MS + POLL_MS) / 1000
    oldest = seen
    for _kind, text in raw:
        try:
            mtime = os.stat(text).st_mtime
        except OSError:
            continue
        oldest = min(oldest, seen - max(0.0, now_wall - mtime))
    return max(earliest, oldest)


def mount_types(mountinfo: str) -> list[tuple[str, str]]:
    """(mount point, file system type) for each line of /proc/self/mountinfo."""
    mounts = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right:
            continue
        point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        mounts.append((point, right.split()[0]))
    return mounts


def filesystem_of(path: Path, mounts: Iterable[tuple[str, str]]) -> str:
    """The type of the file system holding `path` (the longest matching mount point)."""
    text = str(path)
    best, kind = "", ""
    for point, fstype in mounts:
        inside = text == point or text.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def needs_polling(roots: Iterable[Path], environ: Mapping[str, str]) -> str | None:
    """Why polling is needed (a one-line reason), or None to use native events."""
    if environ.get("HOTMODE_FORCE_POLLING", "").strip().lower() in _TRUE:
        return "HOTMODE_FORCE_POLLING is set"
    try:
        mounts = mount_types(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return None
    for root in roots:
        kind = filesystem_of(root, mounts)
        if kind in POLLED_FILESYSTEMS or kind.startswith(POLLED_FUSE):
            return f"{root} is on a {kind} mount, where file events may not arrive"
    return None


class _Events:
    """Native file events through watchfiles' Rust backend: the kernel watches exist (and collect
    events) from construction on, unlike `watchfiles.watch`, which only sets them up when its
    generator is first iterated."""

    def __init__(self, dirs: list[Path]) -> None:
        from watchfiles._rust_notify import RustNotify

        self.notify = RustNotify([str(d) for d in dirs], False, False, POLL_MS, False, True)

    def wait(self, stop: threading.Event) -> set[tuple[int, str]] | None:
        result = self.notify.watch(DEBOUNCE_MS, STEP_MS, 0, stop)
        return None if isinstance(result, str) else result

    def close(self) -> None:
        self.notify.close()


class _Inotify(Inotify):
    def __init__(self, dirs: list[Path]) -> None:
        super().__init__([str(d) for d in dirs], DEBOUNCE_MS / 1000)


class _Polled(Poller):
    def close(self) -> None:
        pass


class Watcher:
    """Watches the source in a thread and hands classified batches to `deliver`.

    `start` returns once the folders are being watched: a save made after it is never lost.
    """

    def __init__(
        self,
        rules: Rules,
        deliver: Callable[[list[Change], float], None],
        *,
        polling: bool = False,
    ) -> None:
        self.rules = rules
        self.deliver = deliver
        self.polling = polling
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hotmode-watcher", daemon=True)
        self._dirs: set[Path] = set()
        self._source: _Inotify | _Events | _Polled | None = None

    def start(self) -> None:
        """Set up the watches (or the first polling snapshot), then watch in the thread."""
        self._source = self._open()
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _open(self) -> _Inotify | _Events | _Polled:
        dirs = watched_dirs(self.rules)
        self._dirs = set(dirs)
        source: _Inotify | _Events | _Polled | None = None
        if not self.polling:
            try:
                source = _Inotify(dirs)
            except OSError as exc:
                log.debug("inotify: %s; watching through watchfiles", exc)
                try:
                    source = _Events(dirs)
                except (OSError, RuntimeError) as exc:  # an exhausted inotify limit, for one
                    log.warning("cannot watch with file events (%s); polling instead", exc)
                    self.polling = True
        if source is None:
            source = _Polled([str(d) for d in dirs], POLL_MS / 1000)
        log.debug("watching %d folders%s", len(dirs), " (polling)" if self.polling else "")
        return source

    def _replan(self) -> None:
        # The new watches exist before the old ones go: nothing changes unseen in between.
        old, self._source = self._source, self._open()
        if old is not None:
            old.close()

    def _run(self) -> None:
        while not self._stop.is_set() and self._source is not None:
            try:
                raw = self._source.wait(self._stop)
            except Exception:  # a vanished folder, a closed watch: re-plan
                log.debug("watcher restarted", exc_info=True)
                if not self._stop.wait(0.2):
                    self._replan()
                continue
            if raw is None:
                break
            seen = time.monotonic()
            batch, replan = self._classify(raw)
            if replan:
                self._replan()
            if batch:
                self.deliver(batch, changed_at(raw, seen))
        if self._source is not None:
            self._source.close()

    def _classify(self, raw: Iterable[tuple[object, str]]) -> tuple[list[Change], bool]:
        batch: list[Change] = []
        replan = False
        for _kind, text in raw:
            path = Path(text)
            if path in self._dirs or (path.is_dir() and self._new_dir(path)):
                replan = True
                if path.exists():
                    batch.extend(self._files_under(path))
                else:
                    batch.append(Change(CODE, self.rules.describe(path), str(path)))
                continue
            kind = self.rules.classify(path)
            if kind is not None:
                batch.append(Change(kind, self.rules.describe(path), str(path)))
        return batch, replan

    def _new_dir(self, path: Path) -> bool:
        relative = self.rules.relative(path)
        return relative is not None and not self.rules.ignored(relative, is_dir=True)

    def _files_under(self, path: Path) -> list[Change]:
        """Changes for the files of a folder that appeared: they may predate its watch."""
        found = []
        for current, _dirs, files in os.walk(path):
            for name in files:
                file = Path(current) / name
                kind = self.rules.classify(file)
                if kind is not None:
                    found.append(Change(kind, self.rules.describe(file), str(file)))
        return found
