"""How workers start on this system: forked from a zygote, or spawned as fresh interpreters.

Forking from a warm zygote is the fast path, on Linux. Where `fork` is missing (Windows) or
unsafe (macOS, whose system frameworks do not survive a fork), or with `HOTMODE_WORKERS=spawn`,
every worker is a fresh interpreter. Either way the listening socket and the handover of
connections are kept where the system allows: a worker's handover channel is a SOCK_SEQPACKET
pair where the system has one (Linux), else a SOCK_DGRAM pair (macOS: message boundaries and
SCM_RIGHTS kept; a worker's end is told by its status pipe, not by end of file). Windows passes
the listening socket with `socket.share` (`share_listener`, `adopt_listener`): a code path only,
not run on the machines that test hotmode.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from hotmode.errors import UsageError
from hotmode.proctable import chosen

WORKERS_VARIABLE = "HOTMODE_WORKERS"
CHOICES = ("fork", "spawn")


@dataclass(frozen=True)
class Workers:
    """How workers start, and why."""

    fork: bool
    why: str

    def describe(self) -> str:
        if self.fork:
            return "workers: forked from a warm zygote (HOTMODE_WORKERS=spawn to spawn them)"
        return f"workers: spawned as fresh interpreters ({self.why}; reloads are slower)"


def choose(
    environ: Mapping[str, str],
    platform: str = sys.platform,
    can_fork: bool = hasattr(os, "fork"),
) -> Workers:
    """Fork or spawn: `HOTMODE_WORKERS` when set, else fork where it is there and safe."""
    value = environ.get(WORKERS_VARIABLE, "").strip().lower()
    if value and value not in CHOICES:
        raise UsageError(
            f"{WORKERS_VARIABLE}={value!r} is not a way to start workers; use fork or spawn, "
            "or unset it"
        )
    if value == "spawn":
        return Workers(fork=False, why=f"{WORKERS_VARIABLE}=spawn")
    if not can_fork:
        return Workers(fork=False, why="this system has no fork")
    if value == "fork":
        return Workers(fork=True, why=f"{WORKERS_VARIABLE}=fork")
    if platform == "darwin":
        return Workers(fork=False, why="fork is unsafe on macOS once system frameworks load")
    return Workers(fork=True, why="")


def channel_type(environ: Mapping[str, str] | None = None) -> int:
    """SOCK_SEQPACKET where the system has it; SOCK_DGRAM elsewhere, and with the portable
    process layer forced (`HOTMODE_PLATFORM=portable`), which stands for such a system."""
    seqpacket = getattr(socket, "SOCK_SEQPACKET", None)
    portable = chosen(dict(os.environ if environ is None else environ)) == "portable"
    if seqpacket is None or sys.platform == "darwin" or portable:
        return socket.SOCK_DGRAM
    return int(seqpacket)


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """A worker's handover channel: one message per packet, descriptors attached."""
    return socket.socketpair(socket.AF_UNIX, channel_type())


def share_listener(sock: socket.socket, pid: int) -> bytes:
    """Windows: the listening socket, duplicated for the worker `pid` (`socket.share`)."""
    share = getattr(sock, "share", None)
    if share is None:
        raise OSError("socket.share exists only on Windows; pass the descriptor instead")
    data: bytes = share(pid)
    return data


def adopt_listener(data: bytes) -> socket.socket:
    """Windows: the worker's side of `share_listener` (`socket.fromshare`)."""
    fromshare = getattr(socket, "fromshare", None)
    if fromshare is None:
        raise OSError("socket.fromshare exists only on Windows")
    adopted: socket.socket = fromshare(data)
    return adopted
