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
from functools import cache

from hotmode.errors import UsageError
from hotmode.proctable.base import ProcessTable

PLATFORM_VARIABLE = "HOTMODE_PLATFORM"
CHOICES = ("linux", "portable")


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
