"""The listening socket: bound once by the supervisor, inherited by every worker."""

from __future__ import annotations

import socket

from hotmode.errors import StateError

BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen on host:port; a held port is a one-line StateError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StateError(
            f"cannot listen on {host}:{port} ({exc.strerror}); "
            "stop whatever holds the port, or pick another --port"
        ) from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def url(sock: socket.socket) -> str:
    """http://host:port for the bound socket (the real port when 0 was asked for)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
