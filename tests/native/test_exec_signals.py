"""`hotmode exec` behaves like the command it runs, as a shell runs it (issue 26).

Its exit code is 128 + N when a signal N ends the command; SIGTERM and SIGHUP sent to `exec` go to
the command, which is waited for (it never outlives `exec`); Ctrl-C on a terminal is the command's
to handle: one that handles SIGINT itself (as psql does) goes on, one that does not ends with 130.
Real processes in PID, network and mount namespaces of their own; the terminal is a real pty.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from helpers import scrubbed_env, wait_until
from namespace import in_namespace
from native_support import Project, pid_alive

pytestmark = pytest.mark.e2e

# The command run through `exec`: writes its PID, says how it ends, and (with "handle") goes on
# after a SIGINT, as psql does, ending only when told through its file.
CHILD = """
import os, signal, sys, time
report, how = sys.argv[1], sys.argv[2]
def note(text):
    with open(report, "a") as handle:
        handle.write(text + "\\n")
if how == "handle":
    signal.signal(signal.SIGINT, lambda *_: note("caught SIGINT"))
if how == "term":
    signal.signal(signal.SIGTERM, lambda *_: (note("caught SIGTERM"), sys.exit(7)))
note(f"pid {os.getpid()}")
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    if "stop" in open(report).read():
        note("stopping")
        sys.exit(5)
    time.sleep(0.02)
"""


def start_exec(
    project: Project, report: Path, how: str, **popen: object
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "hotmode", "exec", "--", sys.executable, "-c", CHILD]
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [*argv, str(report), how], cwd=project.root, env=scrubbed_env(), **popen
    )


def child_pid(report: Path) -> int:
    wait_until(lambda: report.exists() and "pid " in report.read_text(), 60)
    return int(report.read_text().split("pid ")[1].split()[0])


@pytest.fixture
def running(project: Project) -> Project:
    up = project.up("--prod")
    assert up.returncode == 0, up.stderr
    return project


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGKILL, 137), (signal.SIGTERM, 143)])
@in_namespace
def test_a_command_killed_by_a_signal_exits_128_plus_n(
    running: Project, tmp_path: Path, signum: int, code: int
) -> None:
    report = tmp_path / "report"
    executing = start_exec(running, report, "plain")
    try:
        os.kill(child_pid(report), signum)
        assert executing.wait(timeout=60) == code
    finally:
        executing.kill()
        executing.wait(timeout=10)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
@in_namespace
def test_sigterm_or_sighup_to_exec_reaches_the_command_and_is_waited_for(
    running: Project, tmp_path: Path, signum: int
) -> None:
    report = tmp_path / "report"
    executing = start_exec(running, report, "term" if signum == signal.SIGTERM else "plain")
    try:
        child = child_pid(report)
        executing.send_signal(signum)
        code = executing.wait(timeout=60)
        # `exec` ends only after its command: nothing is left behind for `down` to miss.
        assert not pid_alive(child)
        if signum == signal.SIGTERM:
            assert "caught SIGTERM" in report.read_text()
            assert code == 7  # the command's own code, as it chose to exit
        else:
            assert code == 128 + signum
    finally:
        executing.kill()
        executing.wait(timeout=10)


def _on_a_terminal(project: Project, report: Path, how: str) -> tuple[subprocess.Popen[bytes], int]:
    """`exec` as the foreground job of a new terminal (a pty it controls), as a shell runs it."""
    master, slave = pty.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    executing = start_exec(
        project, report, how, stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, preexec_fn=take_terminal,
    )  # fmt: skip
    os.close(slave)
    return executing, master


@pytest.mark.parametrize("how", ["handle", "plain"])
@in_namespace
def test_ctrl_c_on_the_terminal_is_the_commands_to_handle(
    running: Project, tmp_path: Path, how: str
) -> None:
    report = tmp_path / "report"
    executing, master = _on_a_terminal(running, report, how)
    try:
        child = child_pid(report)
        os.write(master, b"\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground group
        if how == "plain":
            assert executing.wait(timeout=60) == 130
            assert not pid_alive(child)
            return
        wait_until(lambda: "caught SIGINT" in report.read_text(), 30)
        with report.open("a") as handle:
            handle.write("stop\n")
        # The command went on and ended by itself: its own code, not 130.
        assert executing.wait(timeout=60) == 5
        assert "stopping" in report.read_text()
    finally:
        executing.kill()
        executing.wait(timeout=10)
        os.close(master)


@in_namespace
def test_a_sigint_sent_to_exec_alone_is_passed_on_to_the_command(
    running: Project, tmp_path: Path
) -> None:
    """No terminal (a CI job, `kill -INT`): the command gets the SIGINT and handles it."""
    report = tmp_path / "report"
    executing = start_exec(running, report, "handle", stdin=subprocess.DEVNULL)
    try:
        child_pid(report)
        executing.send_signal(signal.SIGINT)
        wait_until(lambda: "caught SIGINT" in report.read_text(), 30)
        with report.open("a") as handle:
            handle.write("stop\n")
        assert executing.wait(timeout=60) == 5
    finally:
        executing.kill()
        executing.wait(timeout=10)
