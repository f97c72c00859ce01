"""What the supervisor tells a worker at launch, and what a worker reports back over its pipe.

A worker writes one JSON object per line on its status pipe: `started` (pid), `ready` (import and
startup times), `failed` (one line with file:line), `modules` (what the zygote may preload), `app`
(its interface, what to say about it once, why saves cannot import only what changed). The
pipe's end of file is the worker's exit: only the worker holds its write end.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to serve: what to import, from where, with which environment."""

    target: str
    app_dir: str
    roots: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    log_level: str = "info"
    drain_timeout: float = 3.0
    parent_pid: int = 0
    handover: bool = False  # hand connections over across reloads (see handover.py)
    error: str | None = None  # serve an error page (503) with this error instead of the app
    fresh: tuple[str, ...] | None = None  # forked from the app zygote: import these again
    factory: bool = False  # the target is a factory: call it for the app (--factory)
    reload: bool = False  # serving with --reload: as a framework's dev server would (static files)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        data = json.loads(text)
        data["roots"] = tuple(data["roots"])
        if data.get("fresh") is not None:
            data["fresh"] = tuple(data["fresh"])
        return cls(**data)


class StatusWriter:
    """The worker's end of the status pipe. Writes never raise: a gone supervisor is not an error
    here, the parent-death signal ends the worker."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, event: str, **fields: Any) -> None:
        data = (json.dumps({"event": event, **fields}) + "\n").encode()
        try:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError:
            pass


class StatusReader:
    """The supervisor's end: splits what arrives into messages; None from `read` means EOF."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def read(self) -> list[dict[str, Any]] | None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        except OSError:
            chunk = b""
        if not chunk:
            return None
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        messages = []
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                messages.append(message)
        return messages


# The handover channel: a SOCK_SEQPACKET socket pair per worker. One message is one JSON object,
# with descriptors (connections) attached. Worker -> supervisor: `released` (the worker has
# stopped accepting; its idle connections attached), `connections` (more of them, as they go
# idle). Supervisor -> worker: `adopt` (connections to serve), `serve` (start accepting).
MAX_CHANNEL_MESSAGE = 1 << 16
MAX_CHANNEL_FDS = 253


def send_message(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one message, with descriptors; raises OSError when the other side is gone."""
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def receive_message(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One message and its descriptors (the caller owns them); None at end of file."""
    try:
        data, fds, _flags, _address = socket.recv_fds(sock, MAX_CHANNEL_MESSAGE, MAX_CHANNEL_FDS)
    except BlockingIOError:
        return {}, []
    except OSError:
        return None
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    try:
        message = json.loads(data)
    except ValueError:
        message = {}
    return (message if isinstance(message, dict) else {}), list(fds)
