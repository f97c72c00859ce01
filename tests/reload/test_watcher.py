"""The watcher on real files: ready means watching, same-second saves are seen, honest times."""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import pytest

from hotmode.reload import watcher as watcher_module
from hotmode.reload.inotify import QUIET_OPEN, Inotify
from hotmode.reload.poller import ADDED, MODIFIED, Poller
from hotmode.reload.rules import DEFAULT_INCLUDE, Rules
from hotmode.reload.supervisor import Change
from hotmode.reload.watcher import Watcher


def rules_for(folder: Path) -> Rules:
    return Rules(roots=(folder,), env_file=None, include=DEFAULT_INCLUDE, exclude=())


@pytest.mark.parametrize("polling", [False, True], ids=["events", "polling"])
def test_a_save_made_as_soon_as_start_returns_is_delivered(tmp_path: Path, polling: bool) -> None:
    target = tmp_path / "version.py"
    target.write_text("VERSION = 'v1'\n")
    batches: queue.SimpleQueue[tuple[list[Change], float]] = queue.SimpleQueue()
    watcher = Watcher(rules_for(tmp_path), lambda b, at: batches.put((b, at)), polling=polling)
    watcher.start()
    try:
        # Same size, same second as the first write: nothing but the watch itself can see it.
        before = time.monotonic()
        target.write_text("VERSION = 'v2'\n")
        batch, at = batches.get(timeout=5)
        assert batch == [Change("code", "version.py")]
        # The time is the save's, not the batch's (which closes a quiet step later at least).
        assert before - 0.05 <= at <= time.monotonic()
    finally:
        watcher.stop()


def test_the_poller_sees_a_save_in_the_same_second(tmp_path: Path) -> None:
    target = tmp_path / "version.py"
    target.write_text("VERSION = 'v1'\n")
    os.utime(target, ns=(0, 1_700_000_000_100_000_000))
    poller = Poller([str(tmp_path)], period=0.2)
    target.write_text("VERSION = 'v2'\n")
    os.utime(target, ns=(0, 1_700_000_000_900_000_000))  # same whole second, same size
    assert poller.changes() == {(MODIFIED, str(target))}
    assert poller.changes() == set()


def test_the_poller_sees_a_same_size_save_in_the_same_clock_tick(tmp_path: Path) -> None:
    # The kernel stamps files from a coarse clock: two saves in one tick share their time.
    target = tmp_path / "version.py"
    target.write_text("VERSION = 'v1'\n")
    stamp = os.stat(target).st_mtime_ns
    poller = Poller([str(tmp_path)], period=0.2)  # the file is "racily clean" for this scan
    target.write_text("VERSION = 'v2'\n")
    os.utime(target, ns=(stamp, stamp))
    assert poller.changes() == {(MODIFIED, str(target))}


def test_the_poller_reports_added_and_deleted_entries(tmp_path: Path) -> None:
    (tmp_path / "old.py").write_text("")
    poller = Poller([str(tmp_path)], period=0.2)
    (tmp_path / "old.py").unlink()
    (tmp_path / "new.py").write_text("")
    (tmp_path / "pkg").mkdir()
    assert poller.changes() == {
        (3, str(tmp_path / "old.py")),
        (1, str(tmp_path / "new.py")),
        (1, str(tmp_path / "pkg")),
    }


def test_a_new_folder_is_watched_and_its_files_reported(tmp_path: Path) -> None:
    batches: queue.SimpleQueue[tuple[list[Change], float]] = queue.SimpleQueue()
    watcher = Watcher(rules_for(tmp_path), lambda b, at: batches.put((b, at)))
    watcher.start()
    try:
        package = tmp_path / "pkg"
        package.mkdir()
        (package / "mod.py").write_text("X = 1\n")
        seen: set[Change] = set()
        deadline = time.monotonic() + 5
        while Change("code", "pkg/mod.py") not in seen:
            seen.update(batches.get(timeout=max(0.01, deadline - time.monotonic()))[0])
        (package / "mod.py").write_text("X = 2\n")  # now under the new folder's own watch
        deadline = time.monotonic() + 5
        while True:
            batch = batches.get(timeout=max(0.01, deadline - time.monotonic()))[0]
            if Change("code", "pkg/mod.py") in batch:
                break
    finally:
        watcher.stop()


def test_inotify_closes_a_batch_once_the_save_is_complete(tmp_path: Path) -> None:
    target = tmp_path / "routes.py"
    target.write_text("A = 1\n")
    source = Inotify([str(tmp_path)], debounce=5.0)
    stop = threading.Event()
    try:
        with target.open("w") as file:  # still open for writing: the batch waits longer
            file.write("A = 2\n")
            file.flush()
            started = time.monotonic()
            assert source.wait(stop) == {(MODIFIED, str(target))}
            assert time.monotonic() - started >= QUIET_OPEN - 0.005
        assert source.wait(stop) == {(MODIFIED, str(target))}  # the close
        temp = tmp_path / ".routes.py.tmp"  # an editor's save: write a temp file, rename it
        temp.write_text("A = 3\n")
        os.replace(temp, target)
        started = time.monotonic()
        batch = source.wait(stop)
        assert batch is not None and (ADDED, str(target)) in batch
        assert time.monotonic() - started < 1.0
    finally:
        source.close()


def test_the_watchfiles_fallback_also_watches_before_start_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*_args: object) -> None:
        raise OSError("inotify_init1: too many open files")

    monkeypatch.setattr(watcher_module.Inotify, "__init__", unavailable)
    target = tmp_path / "version.py"
    target.write_text("VERSION = 'v1'\n")
    batches: queue.SimpleQueue[tuple[list[Change], float]] = queue.SimpleQueue()
    watcher = Watcher(rules_for(tmp_path), lambda b, at: batches.put((b, at)))
    watcher.start()
    try:
        target.write_text("VERSION = 'v2'\n")
        assert batches.get(timeout=5)[0] == [Change("code", "version.py")]
    finally:
        watcher.stop()
