"""What every process table offers and shares: the identifying fields, the interface, and a
bounded wait; below the Linux and psutil implementations and the choice between them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Stat:
    """The fields that identify a process and place it (on Linux, from `/proc/PID/stat`)."""

    state: str
    ppid: int
    pgrp: int
    session: int
    flags: int
    start_time: int


class ProcessTable(Protocol):
    """What hotmode asks of the system about processes."""

    name: str
    guarantee: str

    def stat(self, pid: int) -> Stat | None: ...

    def argv(self, pid: int) -> tuple[str, ...] | None: ...

    def environ(self, pid: int) -> dict[str, str] | None: ...

    def owner(self, pid: int) -> int | None:
        """The real user id the process runs as, or None if it is gone (or not known here)."""
        ...

    def pids(self) -> list[int]: ...

    def members(self, leader: int) -> list[int]:
        """The PIDs in the session (or, without sessions, the process tree) `leader` leads."""
        ...

    def signal(self, pid: int, signum: int, proven: Callable[[], bool]) -> bool:
        """Send `signum` to `pid` only if `proven()` holds for the very process signalled."""
        ...

    def wait_gone(self, pid: int, timeout: float, proven: Callable[[], bool]) -> bool:
        """Wait up to `timeout` s until `pid` is no longer the proven process; True if so."""
        ...

    def port_holder(self, port: int, host: str | None) -> int | None:
        """The PID listening on TCP `port` (on `host` only, if given), if the system says."""
        ...


def poll_gone(timeout: float, proven: Callable[[], bool], interval: float = 0.02) -> bool:
    """Wait up to `timeout` s, asking `proven()` every `interval`; True once it no longer holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proven():
            return True
        time.sleep(interval)
    return not proven()
