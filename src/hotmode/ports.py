"""Who holds a TCP port: free, or a process named by PID and command line where the system tells.

Asked of the process table (`hotmode.proctable`): `/proc/net/tcp{,6}` and `/proc/<pid>/fd` on
Linux, psutil elsewhere; where the system does not say (macOS, another user's), only "held".
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

from hotmode.errors import UsageError
from hotmode.proctable import table


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


def find_holder(port: int, host: str | None = None) -> PortHolder:
    """The process listening on `port` (on `host` only, if given), as far as the system tells."""
    pid = table().port_holder(port, host)
    return PortHolder(port) if pid is None else PortHolder(port, pid, read_command(pid))


def read_command(pid: int) -> str:
    """A process's command line, space-joined, or '' if it is gone or hidden."""
    return " ".join(part for part in table().argv(pid) or () if part)
