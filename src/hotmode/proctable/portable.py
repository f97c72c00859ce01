"""The portable process table: psutil, on macOS, Windows, or Linux when forced.

A process's start time is psutil's create time in microseconds (on Linux, since boot: the wall
clock may be stepped). A signal is sent through the
`psutil.Process` the proof was checked on; psutil checks that its create time is unchanged just
before it signals, so a PID reused between the proof and the signal is refused, save for the
instant between that check and the system call (no pidfd exists outside Linux). Sessions are
read with `os.getsid` where the system has them (macOS, Linux); on Windows a leader's members
are its process tree.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import psutil

from hotmode.proctable.base import Stat, poll_gone

_STATES = {psutil.STATUS_ZOMBIE: "Z", psutil.STATUS_DEAD: "X"}
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)
_UNREADABLE = (psutil.AccessDenied, OSError)


def _created(process: psutil.Process) -> float:
    """When the process started, in seconds, on a clock that is never stepped where psutil
    offers one: on Linux its create time is boot time (which moves with the system clock) plus
    ticks, so the ticks alone are taken; elsewhere the kernel's own start timestamp."""
    with contextlib.suppress(AttributeError, TypeError):
        return float(process._proc.create_time(monotonic=True))
    return float(process.create_time())


class PortableTable:
    name = "portable"
    guarantee = (
        "psutil: identity proven (create time, argv, run id, project) on the process object "
        "that is signalled; psutil re-checks the create time just before each signal"
    )

    def stat(self, pid: int) -> Stat | None:
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                state = _STATES.get(process.status(), "R")
                ppid = process.ppid()
                created = _created(process)
        except (*_GONE, *_UNREADABLE):
            return None
        session = pgrp = pid
        if hasattr(os, "getsid"):
            try:
                session, pgrp = os.getsid(pid), os.getpgid(pid)
            except OSError:
                return None
        return Stat(state, ppid, pgrp, session, 0, round(created * 1_000_000))

    def argv(self, pid: int) -> tuple[str, ...] | None:
        try:
            return tuple(psutil.Process(pid).cmdline())
        except (*_GONE, *_UNREADABLE):
            return None

    def environ(self, pid: int) -> dict[str, str] | None:
        try:
            return dict(psutil.Process(pid).environ())
        except (*_GONE, *_UNREADABLE):
            return None

    def owner(self, pid: int) -> int | None:
        try:
            return int(psutil.Process(pid).uids().real)
        except (*_GONE, *_UNREADABLE, AttributeError):
            return None  # Windows has no user ids

    def pids(self) -> list[int]:
        return list(psutil.pids())

    def members(self, leader: int) -> list[int]:
        if not hasattr(os, "getsid"):
            try:
                return [child.pid for child in psutil.Process(leader).children(recursive=True)]
            except (*_GONE, *_UNREADABLE):
                return []
        found = []
        for pid in self.pids():
            with contextlib.suppress(OSError):
                if pid != leader and os.getsid(pid) == leader:
                    found.append(pid)
        return found

    def signal(self, pid: int, signum: int, proven: Callable[[], bool]) -> bool:
        try:
            process = psutil.Process(pid)
            if not proven():
                return False
            process.send_signal(signum)
        except _GONE:
            return False
        return True

    def wait_gone(self, pid: int, timeout: float, proven: Callable[[], bool]) -> bool:
        # Polled, never `Process.wait`: that would reap a child of ours behind its Popen.
        return poll_gone(timeout, proven)

    def port_holder(self, port: int, host: str | None) -> int | None:
        def listening(conn: Any) -> bool:
            laddr = conn.laddr
            return bool(
                conn.status == psutil.CONN_LISTEN
                and laddr
                and laddr.port == port
                and (host is None or laddr.ip == host)
            )

        try:
            for conn in psutil.net_connections(kind="tcp"):
                if listening(conn) and conn.pid:
                    return int(conn.pid)
            return None
        except psutil.AccessDenied:
            pass  # macOS without root: ask each process we may read
        for process in psutil.process_iter():
            with contextlib.suppress(*_GONE, *_UNREADABLE):
                if any(listening(conn) for conn in process.net_connections(kind="tcp")):
                    return int(process.pid)
        return None
