"""Who holds a TCP port: free, or a process named by PID and command line where the system tells.

Read from `/proc/net/tcp{,6}` and `/proc/<pid>/fd` on Linux; elsewhere only "held" is known.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from hotmode.errors import UsageError

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
        # One line: a command's own newlines (`python -c '...'`) are spaces, and it is cut short.
        command = " ".join(self.command.split()) or "unknown command"
        command = command if len(command) <= 100 else command[:97] + "..."
        return f"port {self.port} is held by pid {self.pid} ({command})"


def check_host(host: str) -> str:
    """The bind address as given, if it is an IP address (or `localhost`); else `UsageError`."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise UsageError(
            f"--host {host!r} is not an IP address; give one of this machine's addresses, "
            "e.g. 127.0.0.1, ::1, or 0.0.0.0 for every interface"
        ) from None


def url_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host`, as a URL's host part."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - a client address, not a bind
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def port_is_free(host: str, port: int) -> bool:
    """True if a server could bind `host:port` now; `UsageError` if `host` is not local."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Without SO_REUSEADDR a socket in TIME_WAIT would read as held; servers set it too.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(
                    f"{host} is not an address of this machine; bind 127.0.0.1, ::1 or 0.0.0.0"
                ) from None
            raise UsageError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    return True


def find_holder(port: int, proc: Path = Path("/proc"), host: str | None = None) -> PortHolder:
    """The process listening on `port` (on `host` only, if given), as far as `/proc` tells."""
    inodes = _listening_inodes(port, proc, _proc_address(host) if host else None)
    if inodes:
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            if any(link in inodes for link in _fd_links(entry / "fd")):
                return PortHolder(port, int(entry.name), read_command(int(entry.name), proc))
    return PortHolder(port)


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


def read_command(pid: int, proc: Path = Path("/proc")) -> str:
    """A process's command line, space-joined, or '' if it is gone or hidden."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _proc_address(host: str) -> str:
    """`host` as `/proc/net/tcp{,6}` writes a local address: hex, in 32-bit host-order words."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    packed = socket.inet_pton(family, host)
    words = [packed[i : i + 4] for i in range(0, len(packed), 4)]
    return "".join(f"{int.from_bytes(word, sys.byteorder):08X}" for word in words)


def _listening_inodes(port: int, proc: Path, address: str | None = None) -> set[str]:
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
                and (address is None or fields[1].rsplit(":", 1)[0].upper() == address)
            ):
                inodes.add(f"socket:[{fields[9]}]")
    return inodes
