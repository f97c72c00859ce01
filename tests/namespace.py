"""Run a test in PID, network and mount namespaces of its own: `@in_namespace`.

A test that plants processes, sends signals or opens ports re-runs itself (its own pytest node)
as the first process of a fresh `unshare --pid --net --fork --mount-proc`: a wrong signal can then
reach only that namespace, every port is private, and whatever it leaves running ends with it.
The namespace's PID 1 brings the loopback up, starts pytest, and only reaps (PID 1 ignores the
signals it has no handler for, and adopts every orphan). The outer test passes when the inner
run passed, and prints its output when it did not. Linux only; elsewhere (or where unshare is
refused, outside CI) it skips.
"""

from __future__ import annotations

import fcntl
import functools
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

INSIDE = "HOTMODE_TEST_IN_NAMESPACE"
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1

F = TypeVar("F", bound=Callable[..., Any])


def in_namespace(test: F) -> F:
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get(INSIDE) == "1":
            return test(*args, **kwargs)
        _rerun(os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0])
        return None

    return wrapper  # type: ignore[return-value]


def _rerun(node: str) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("PID and network namespaces (unshare) are Linux's")
    unshare = ["unshare", "--pid", "--net", "--fork", "--mount-proc"]
    probe = subprocess.run([*unshare, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and unshare cannot make the namespaces: {probe.stderr}")
        pytest.skip(f"no namespaces here: {probe.stderr.strip()}")
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [*unshare, sys.executable, __file__, node],
        cwd=root,
        env={**os.environ, INSIDE: "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{node} failed in its namespace (exit {result.returncode}):\n"
            f"{result.stdout[-12000:]}\n{result.stderr[-4000:]}",
            pytrace=False,
        )


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(probe, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


def _pid1(node: str) -> int:
    """As PID 1 of the namespace: run pytest on `node`, reap every orphan, exit with its code."""
    _loopback_up()
    argv = [sys.executable, "-m", "pytest", node, "-p", "no:cacheprovider", "-q", "--no-header"]
    child = subprocess.Popen(argv)
    while True:
        pid, status = os.wait()
        if pid == child.pid:
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    raise SystemExit(_pid1(sys.argv[1]))
