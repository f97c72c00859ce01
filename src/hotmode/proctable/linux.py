"""The Linux process table: `/proc` for identity, ports and sessions, pidfds for signals.

A process's start time is field 22 of `/proc/PID/stat` (clock ticks since boot). A signal goes
through a pidfd opened *before* the proof is checked, so the check and the signal are about one
and the same process even if the PID is reused in between; waiting polls that pidfd.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from hotmode.proctable.base import Stat, poll_gone

PROC = Path("/proc")
_LISTEN = "0A"


class LinuxTable:
    name = "linux"
    guarantee = (
        "pidfd + /proc: identity proven (start time, argv, run id, project) on a pidfd "
        "opened before the proof, so a reused PID is never signalled"
    )

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc

    def stat(self, pid: int) -> Stat | None:
        try:
            raw = (self.proc / str(pid) / "stat").read_text()
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

    def argv(self, pid: int) -> tuple[str, ...] | None:
        try:
            raw = (self.proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        if not raw:
            return ()
        parts = raw.removesuffix(b"\0").split(b"\0")
        return tuple(part.decode(errors="replace") for part in parts)

    def environ(self, pid: int) -> dict[str, str] | None:
        try:
            raw = (self.proc / str(pid) / "environ").read_bytes()
        except OSError:
            return None
        pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
        return {name: value for name, _, value in pairs}

    def owner(self, pid: int) -> int | None:
        try:
            status = (self.proc / str(pid) / "status").read_text()
        except (OSError, ValueError):
            return None
        for line in status.splitlines():
            if line.startswith("Uid:"):
                fields = line.split()
                return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
        return None

    def pids(self) -> list[int]:
        try:
            return [int(e.name) for e in self.proc.iterdir() if e.name.isdigit()]
        except OSError:
            return []

    def members(self, leader: int) -> list[int]:
        return [
            pid
            for pid in self.pids()
            if pid != leader and (stat := self.stat(pid)) is not None and stat.session == leader
        ]

    def signal(self, pid: int, signum: int, proven: Callable[[], bool]) -> bool:
        try:
            with _pidfd(pid) as fd:
                if not proven():
                    return False
                if fd is not None:
                    signal.pidfd_send_signal(fd, signum)
                else:
                    os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True

    def wait_gone(self, pid: int, timeout: float, proven: Callable[[], bool]) -> bool:
        try:
            with _pidfd(pid) as fd:
                if fd is not None and proven():
                    # A pidfd becomes readable when its process ends, child or not.
                    ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
                    return bool(ready) or not proven()
        except ProcessLookupError:
            return True
        return poll_gone(timeout, proven)

    def port_holder(self, port: int, host: str | None) -> int | None:
        inodes = self._listening_inodes(port, _proc_address(host) if host else None)
        if inodes:
            for pid in self.pids():
                if any(link in inodes for link in _fd_links(self.proc / str(pid) / "fd")):
                    return pid
        return None

    def _listening_inodes(self, port: int, address: str | None) -> set[str]:
        inodes: set[str] = set()
        for table in ("tcp", "tcp6"):
            try:
                lines = (self.proc / "net" / table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if (
                    len(fields) > 9
                    and fields[3] == _LISTEN
                    and int(fields[1].rsplit(":", 1)[1], 16) == port
                    and (address is None or fields[1].rsplit(":", 1)[0].upper() == address)
                ):
                    inodes.add(f"socket:[{fields[9]}]")
        return inodes


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


def _fd_links(folder: Path) -> list[str]:
    """Where a process's open files point; one closing while read (the listing's own) is skipped."""
    try:
        fds = list(folder.iterdir())
    except OSError:
        return []
    links = []
    for fd in fds:
        try:
            links.append(os.readlink(fd))
        except OSError:
            continue
    return links


def _proc_address(host: str) -> str:
    """`host` as `/proc/net/tcp{,6}` writes a local address: hex, in 32-bit host-order words."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    packed = socket.inet_pton(family, host)
    words = [packed[i : i + 4] for i in range(0, len(packed), 4)]
    return "".join(f"{int.from_bytes(word, sys.byteorder):08X}" for word in words)
