"""Helpers the end-to-end tests share: waiting, a free port, a JSON GET, git, the hotmode CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


def wait_until(predicate: Callable[[], object], timeout: float = 15.0) -> object:
    """Poll `predicate` until it returns something true; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get_json(port: int, path: str = "/api/v1/server-info") -> dict[str, object] | None:
    """GET a JSON document from 127.0.0.1, or None if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            data: dict[str, object] = json.loads(response.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def answer(port: int, path: str) -> tuple[int, dict[str, object]]:
    """GET from 127.0.0.1: the status and the JSON document (empty for an error's)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def post_json(port: int, path: str, document: dict[str, str]) -> None:
    """POST a JSON document to 127.0.0.1; a 201 (a row written) or the test fails."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method="POST",
        data=json.dumps(document).encode(), headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1
        assert response.status == 201


def add_key(port: int, name: str) -> None:
    """Create an API key through the gateway: a row written to its database."""
    post_json(port, "/api/v1/api-keys", {"name": name})


def git(folder: Path, *args: str) -> str:
    """Run git in `folder`; its stripped output. A failure fails the test."""
    return subprocess.run(
        ["git", "-C", str(folder), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def commit(folder: Path, message: str) -> str:
    """Stage everything in `folder` and commit it; the new HEAD."""
    git(folder, "add", "-A")
    git(folder, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", message)
    return git(folder, "rev-parse", "HEAD")


# The settings that force the portable process layer and spawned workers: `make test` runs the
# native and reload suites once more with both, so they pass through to every hotmode started.
FORCED = ("HOTMODE_PLATFORM", "HOTMODE_WORKERS")


def scrubbed_env(cleared: tuple[str, ...] = ("HOTMODE_", "HOT_RELOAD")) -> dict[str, str]:
    """This environment without the variables named by a `cleared` prefix, but the forced
    platform settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(cleared) or k in FORCED}


def run_hotmode(cwd: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`python -m hotmode ARGS` in `cwd`, with no HOTMODE_*/HOT_RELOAD* from this environment
    but the forced platform settings."""
    env = scrubbed_env()
    return subprocess.run(
        [sys.executable, "-m", "hotmode", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def corpus() -> Path:
    """The real projects' Compose files (`shared/corpus`, read in place, never copied into the
    project): `HOTMODE_CORPUS`, else `../shared/corpus` beside this checkout, else the
    workplace's own `/work/shared/corpus` (a clone elsewhere, as CI's may be). A machine with
    none of them skips the calling module, saying where it looked."""
    import pytest

    places = [Path(p) for p in [os.environ.get("HOTMODE_CORPUS", "")] if p]
    places += [Path(__file__).resolve().parents[1].parent / "shared" / "corpus"]
    places += [Path("/work/shared/corpus")]
    for place in places:
        if (place / "runs.txt").is_file():
            return place.resolve()
    pytest.skip(
        f"no corpus of real projects in {', '.join(map(str, places))}; set HOTMODE_CORPUS",
        allow_module_level=True,
    )
    raise AssertionError("unreachable")


def as_nobody(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`argv` run as the local user nobody (root and setpriv needed), with a plain environment."""
    base = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/nonexistent"}
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv],
        env={**base, **(env or {})}, cwd="/", capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
