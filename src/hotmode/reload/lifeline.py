"""No orphans: tie a process's life to its parent's.

`bind_to_parent` asks Linux to signal this process when its parent dies (PR_SET_PDEATHSIG, through
ctypes), then checks the parent did not die before the request. Elsewhere (macOS, Windows) a daemon
thread watches the parent instead, and signals this process once it is re-parented. Run as a module,
it does that and then executes a command, so that even a plain command (the install step) dies with
the supervisor: `python -m hotmode.reload.lifeline PPID CMD...`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def bind_to_parent(sig: int, parent_pid: int) -> None:
    """Receive `sig` when the parent dies; exit now if `parent_pid` is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    elif parent_pid:
        watch_parent(sig, parent_pid)
    # The parent may have died between fork and prctl: then we were re-parented already.
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)


def watch_parent(sig: int, parent_pid: int, interval: float = 0.5) -> threading.Thread:
    """Where no parent-death signal exists: a daemon thread that sends `sig` to this process
    once its parent is no longer `parent_pid` (it died, and this process was re-parented)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os.kill(os.getpid(), sig)

    thread = threading.Thread(target=watch, name="lifeline", daemon=True)
    thread.start()
    return thread


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: python -m hotmode.reload.lifeline PPID CMD...", file=sys.stderr)
        return 2
    bind_to_parent(signal.SIGTERM, int(argv[1]))
    os.execvp(argv[2], argv[2:])  # noqa: S606 -- the user's own --install command


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
