"""Who holds a TCP port: free, or a process named by PID and command line where the system tells.

Read from `/proc/net/tcp{,6}` and `/proc/<pid>/fd` on Linux; elsewhere only "held" is known.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

_LISTEN = "0A"


@dataclass(frozen=True)
class PortHolder:
    """A process listening on a port; `pid` is None when the system does not say which."""

    port: int
    pid: int | None = None
    command: str = ""

    def describe(self) -> str:
        if self.pid is None:
            return f"port {self.port} is held by another process"
        return f"port {self.port} is held by pid {self.pid} ({self.command or 'unknown command'})"


def port_is_free(host: str, port: int) -> bool:
    """True if a server could bind `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Without SO_REUSEADDR a socket in TIME_WAIT would read as held; servers set it too.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def find_holder(port: int, proc: Path = Path("/proc")) -> PortHolder:
    """The process listening on `port`, as far as `/proc` tells."""
    inodes = _listening_inodes(port, proc)
    if inodes:
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
            except OSError:
                continue
            if any(link in inodes for link in links):
                return PortHolder(port, int(entry.name), read_command(int(entry.name), proc))
    return PortHolder(port)


def read_command(pid: int, proc: Path = Path("/proc")) -> str:
    """A process's command line, space-joined, or '' if it is gone or hidden."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == _LISTEN
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    return inodes
