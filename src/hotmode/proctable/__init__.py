"""The process table hotmode reads and signals through: Linux's /proc and pidfds, or psutil.

One small interface (`ProcessTable`) for what `hotmode.procs` and `hotmode.ports` need: a
process's identifying fields, argv and environment, the running PIDs, the members of a session,
signalling and waiting only while a proof holds, and who listens on a port. On Linux it is
`/proc` and pidfds (`proctable.linux`); elsewhere, or with `HOTMODE_PLATFORM=portable`, psutil
(`proctable.portable`), with the best guarantee each platform allows (`ProcessTable.guarantee`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from hotmode.errors import UsageError

PLATFORM_VARIABLE = "HOTMODE_PLATFORM"
CHOICES = ("linux", "portable")


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


def chosen(environ: dict[str, str] | None = None, platform: str = sys.platform) -> str:
    """`linux` or `portable`: `HOTMODE_PLATFORM` when set, else what this system has."""
    value = (os.environ if environ is None else environ).get(PLATFORM_VARIABLE, "").strip()
    if value and value not in CHOICES:
        raise UsageError(
            f"{PLATFORM_VARIABLE}={value!r} is not a process layer; use one of "
            f"{', '.join(CHOICES)}, or unset it"
        )
    if value == "linux" and not platform.startswith("linux"):
        raise UsageError(f"{PLATFORM_VARIABLE}=linux needs Linux; this is {platform}; unset it")
    return value or ("linux" if platform.startswith("linux") else "portable")


@cache
def table() -> ProcessTable:
    """The process table of this system (or the one `HOTMODE_PLATFORM` forces)."""
    if chosen() == "linux":
        from hotmode.proctable import linux

        return linux.LinuxTable()
    from hotmode.proctable import portable

    return portable.PortableTable()
