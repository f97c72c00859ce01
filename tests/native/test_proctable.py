"""Both process tables (Linux's /proc + pidfds, and psutil) tell the same about real processes:
argv, environment marker, session members, the holder of a port; and both refuse to signal a
process whose proof fails. Real processes and sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from helpers import wait_until
from hotmode.errors import UsageError
from hotmode.proctable import chosen
from hotmode.proctable.base import ProcessTable
from hotmode.proctable.linux import LinuxTable
from hotmode.proctable.portable import PortableTable

# A session leader with a marker in its environment, listening on a port, with one child.
LEADER = (
    "import socket, subprocess, sys, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(s.getsockname()[1], child.pid, flush=True); time.sleep(60)\n"
)


@pytest.fixture(params=["linux", "portable"])
def table(request: pytest.FixtureRequest) -> ProcessTable:
    if request.param == "linux" and not sys.platform.startswith("linux"):
        pytest.skip("/proc and pidfds are Linux's")
    return LinuxTable() if request.param == "linux" else PortableTable()


@pytest.fixture
def leader() -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    process = subprocess.Popen(
        [sys.executable, "-c", LEADER, "marked"],
        env={**os.environ, "HOTMODE_TEST_MARK": "yes"},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    port, child = (int(word) for word in process.stdout.readline().split())
    yield process, port, child
    for pid in (child, process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # both ours, started here
    process.wait(timeout=5)
    process.stdout.close()


def test_both_tables_tell_argv_marker_session_and_port(
    table: ProcessTable, leader: tuple[subprocess.Popen[str], int, int]
) -> None:
    process, port, child = leader
    stat = table.stat(process.pid)
    assert stat is not None and stat.session == process.pid and stat.state != "Z"
    assert table.argv(process.pid) == (sys.executable, "-c", LEADER, "marked")
    assert (table.environ(process.pid) or {}).get("HOTMODE_TEST_MARK") == "yes"
    assert process.pid in table.pids()
    assert child in table.members(process.pid)
    assert table.port_holder(port, "127.0.0.1") == process.pid
    assert table.port_holder(port, "::1") is None  # another address of the same port


def test_both_tables_signal_only_what_is_proven(
    table: ProcessTable, leader: tuple[subprocess.Popen[str], int, int]
) -> None:
    process, _port, _child = leader
    assert not table.signal(process.pid, signal.SIGTERM, lambda: False)
    assert process.poll() is None
    assert not table.wait_gone(process.pid, 0.2, lambda: True)
    assert table.signal(process.pid, signal.SIGTERM, lambda: process.poll() is None)
    wait_until(lambda: process.poll() is not None, timeout=5)
    assert table.wait_gone(process.pid, 1, lambda: False)


def test_the_layer_is_chosen_by_the_system_or_forced() -> None:
    assert chosen({}, "linux") == "linux"
    assert chosen({}, "darwin") == "portable" and chosen({}, "win32") == "portable"
    assert chosen({"HOTMODE_PLATFORM": "portable"}, "linux") == "portable"
    with pytest.raises(UsageError, match="HOTMODE_PLATFORM='bsd' is not a process layer"):
        chosen({"HOTMODE_PLATFORM": "bsd"}, "linux")
    with pytest.raises(UsageError, match="HOTMODE_PLATFORM=linux needs Linux"):
        chosen({"HOTMODE_PLATFORM": "linux"}, "darwin")
