"""`python -m hotmode.native.keeper [--user NAME] CMD...`: a companion's proof of identity, kept.

hotmode signals a process only once its PID, start time, argv and the run's marker in its
environment prove it is the one it started. A server that rewrites its own process title (Redis,
Valkey: `redis-server 127.0.0.1:6379`) wipes its argv and its environment with it, so nothing
can prove it and `down` would leave it running. The keeper is what hotmode starts instead: its
argv and environment stay as they were; it runs the server as its child (as NAME, when hotmode
runs as root), tied to its own life (the child is signalled when the keeper dies), passes on
SIGTERM and SIGINT, and exits with the server's code once the server has exited.
"""

from __future__ import annotations

import ctypes
import pwd
import signal
import subprocess
import sys
from types import FrameType

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child after its user is changed (a change of user clears the setting).
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def main(argv: list[str]) -> int:
    user = None
    if len(argv) > 2 and argv[1] == "--user":
        user, argv = pwd.getpwnam(argv[2]), [argv[0], *argv[3:]]
    if len(argv) < 2:
        print("usage: python -m hotmode.native.keeper [--user NAME] CMD...", file=sys.stderr)
        return 2
    child = subprocess.Popen(  # noqa: S603 -- the declared native command
        argv[1:],
        user=user.pw_uid if user else None,
        group=user.pw_gid if user else None,
        extra_groups=[] if user else None,
        preexec_fn=_die_with_parent,  # one thread here; a prctl only
    )

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.returncode is None:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
