"""The declared jobs (`[jobs.NAME]`, a migration), run natively before the app starts.

Each runs as a local process with the environment the app is given (its companions' addresses
included), from the folder the app is served from (prod's snapshot, dev's source), one after
the other; the first that fails stops the start, named with its exit code and its last lines.
A leading `python` is the interpreter that serves the app, as in the app's own image.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from hotmode.config import Config
from hotmode.errors import StateError

JOB_TIMEOUT = 600.0


def argv_of(command: tuple[str, ...]) -> list[str]:
    """The job's command, a leading `python` being the app's interpreter."""
    head, *rest = command
    return [sys.executable, *rest] if head in ("python", "python3") else [head, *rest]


def run_jobs(
    config: Config,
    env: Mapping[str, str],
    cwd: Path,
    say: Callable[[str], None] = lambda _line: None,
    timeout: float = JOB_TIMEOUT,
) -> None:
    """Run every declared job; raise `StateError` at the first that fails."""
    for job in config.jobs:
        say(f"job {job.name}: {' '.join(job.command)}")
        try:
            done = subprocess.run(  # noqa: S603 - the declaration's own command
                argv_of(job.command), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                capture_output=True, text=True, errors="replace", timeout=timeout, check=False,
            )  # fmt: skip
        except FileNotFoundError:
            raise StateError(
                f"job {job.name}: {job.command[0]} is not installed here; install it, or fix "
                f"[jobs.{job.name}] command"
            ) from None
        except subprocess.TimeoutExpired:
            raise StateError(
                f"job {job.name} did not finish within {timeout:.0f} s; the app was not started"
            ) from None
        if done.returncode != 0:
            lines = (done.stdout + done.stderr).strip().splitlines()
            tail = lines[-1] if lines else "no output"
            raise StateError(
                f"job {job.name} failed (exit {done.returncode}): {tail}; the app was not "
                f"started (fix it, then `hotmode up` again)"
            )
