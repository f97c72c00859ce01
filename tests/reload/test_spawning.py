"""Workers without fork: the choice (HOTMODE_WORKERS, the platform), the engine saying it, and
the pieces a system without fork or pidfds uses (a datagram handover channel, a watched parent).
Real processes and sockets on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hotmode.errors import UsageError
from hotmode.reload import spawning
from hotmode.reload.protocol import receive_message, send_message
from reload.reload_support import Server, alive, parent_of, wait_until, write_version


def test_workers_fork_on_linux_and_spawn_where_fork_is_missing_unsafe_or_refused() -> None:
    assert spawning.choose({}, "linux", can_fork=True).fork
    assert not spawning.choose({"HOTMODE_WORKERS": "spawn"}, "linux", can_fork=True).fork
    assert spawning.choose({}, "darwin", can_fork=True).why.startswith("fork is unsafe on macOS")
    assert spawning.choose({"HOTMODE_WORKERS": "fork"}, "darwin", can_fork=True).fork
    windows = spawning.choose({"HOTMODE_WORKERS": "fork"}, "win32", can_fork=False)
    assert not windows.fork and windows.why == "this system has no fork"
    with pytest.raises(UsageError, match=r"HOTMODE_WORKERS='threads' is not a way"):
        spawning.choose({"HOTMODE_WORKERS": "threads"})


def test_a_datagram_channel_keeps_messages_apart_and_carries_descriptors() -> None:
    # What a system without SOCK_SEQPACKET (macOS) hands connections over with.
    assert spawning.channel_type({"HOTMODE_PLATFORM": "portable"}) == socket.SOCK_DGRAM
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader, writer = os.pipe()
    try:
        send_message(ours, {"op": "released"}, [reader])
        send_message(ours, {"op": "serve"})
        first = receive_message(theirs)
        assert first is not None and first[0] == {"op": "released"} and len(first[1]) == 1
        os.write(writer, b"through the handed-over descriptor")
        assert os.read(first[1][0], 100) == b"through the handed-over descriptor"
        os.close(first[1][0])
        assert receive_message(theirs) == ({"op": "serve"}, [])
    finally:
        for sock in (ours, theirs):
            sock.close()
        os.close(reader)
        os.close(writer)


def test_the_engine_says_it_spawns_workers_and_reloads_with_them(
    app_dir: Path, servers: list[Server]
) -> None:
    server = Server(app_dir, "--reload", env={"HOTMODE_WORKERS": "spawn"})
    servers.append(server)
    server.wait_for(r"workers: spawned as fresh interpreters \(HOTMODE_WORKERS=spawn; ")
    first = server.get()
    assert parent_of(first["pid"]) == server.process.pid  # spawned by the supervisor itself
    write_version(app_dir, "v2")
    second = server.wait_version("v2", timeout=30)
    assert second["pid"] != first["pid"] and parent_of(second["pid"]) == server.process.pid
    assert server.stop() == 143
    wait_until(lambda: not alive(second["pid"]), timeout=5)


def test_where_no_parent_death_signal_exists_a_watched_parent_still_takes_its_child(
    tmp_path: Path,
) -> None:
    # A parent that starts a child bound by the watcher thread, then is killed: the child
    # (re-parented) must end by itself, as workers do on macOS and Windows.
    child_pid = tmp_path / "child.pid"
    child = tmp_path / "child.py"
    child.write_text(
        "import os, signal, sys, time\n"
        "from hotmode.reload.lifeline import watch_parent\n"
        "watch_parent(signal.SIGTERM, os.getppid(), interval=0.05)\n"
        f"open({str(child_pid)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    script = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, {str(child)!r}])\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_until(lambda: child_pid.is_file() and child_pid.read_text(), timeout=20)
        child = int(child_pid.read_text())
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=5)
        wait_until(lambda: not alive(child), timeout=5)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child_pid.is_file() and alive(int(child_pid.read_text())):
            os.kill(int(child_pid.read_text()), signal.SIGKILL)  # ours: started above
