"""Running one command in the foreground as a shell does (`hotmode exec`).

hotmode stands between the user and the command, so it must be invisible: the exit code is the
command's own, 128 + N when a signal N ended it (137 for SIGKILL, 143 for SIGTERM); SIGTERM and
SIGHUP sent to hotmode (a closed terminal, a supervisor stopping it) go to the command, which is
waited for, bounded, so it never outlives hotmode; and Ctrl-C is the command's to handle when it
runs in the terminal's foreground: the terminal sends SIGINT to the whole foreground group, so
hotmode lets it pass, as a shell does, and a command that handles it (psql cancels its query and
goes on) is not killed. A SIGINT sent to hotmode alone (no terminal, or from `kill`) is passed on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

# The stop signals this system has (Windows has neither SIGHUP nor SIGQUIT).
FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    if hasattr(signal, name)
)  # fmt: skip
_WAITED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
# How long a command may take to end after a forwarded SIGTERM or SIGHUP before SIGKILL.
STOP_TIMEOUT = 10.0


def run(argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Run `argv` to its end; return its exit code as a shell reports it (128 + N for a signal).

    `FileNotFoundError` if there is no such command (nothing was started).
    """
    received: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda got, _frame: received.append(got))
        for signum in FORWARDED
    }
    try:
        # The handlers are hotmode's own: the command starts with every signal at its default.
        child = subprocess.Popen(argv, env=env, cwd=cwd)  # noqa: S603 - the user's command
        code = _wait(child, received)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def _wait(child: subprocess.Popen[bytes], received: list[int]) -> int:
    deadline: float | None = None
    while True:
        try:
            return child.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
        while received:
            signum = received.pop(0)
            if signum == signal.SIGINT and _terminal_foreground():
                continue  # the terminal sent it to the command too
            child.send_signal(signum)
            if signum in _WAITED and deadline is None:
                deadline = time.monotonic() + STOP_TIMEOUT
        if deadline is not None and time.monotonic() > deadline:
            child.kill()
            deadline = float("inf")


def _terminal_foreground() -> bool:
    """True if hotmode (and so the command) is in its terminal's foreground process group."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()  # type: ignore[attr-defined,unused-ignore]
        except OSError:
            continue
    return False
