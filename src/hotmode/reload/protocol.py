"""What the supervisor tells a worker at launch, and what a worker reports back over its pipe.

A worker writes one JSON object per line on its status pipe: `started` (pid), `ready` (import and
startup times), `failed` (one line with file:line), `modules` (what the zygote may preload). The
pipe's end of file is the worker's exit: only the worker holds its write end.
"""

from __future__ import annotations

import json
import os
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
    error: str | None = None  # serve an error page (503) with this error instead of the app

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        data = json.loads(text)
        data["roots"] = tuple(data["roots"])
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
