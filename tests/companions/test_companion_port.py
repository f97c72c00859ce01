"""A native companion whose declared port is taken: hotmode says so in one line, starts it on
another free port, and the app is given that one (a real listener holds the declared port)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import answer, commit, free_port, git

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

APP = """\
import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/echo")
async def echo() -> dict[str, str]:
    return {"url": os.environ["ECHO_URL"]}
"""

DECLARATION = """\
name = "port-taken"
source = "app"
target = "main:app"
port = 8000
requirements = "requirements.txt"

[services.echo]
image = "python:3.11-slim"
port = 8080
app_env = {{ ECHO_URL = "http://{{host}}:{{port}}/" }}

[services.echo.native]
command = ["{python}", "-m", "http.server", "{{port}}", "--bind", "127.0.0.1"]
port = {declared}
"""


def hotmode(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTMODE_", "DOCKER_"))}
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # a process, never a container
    return subprocess.run(
        [sys.executable, "-m", "hotmode", *args], cwd=root, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_taken_port_is_said_and_another_is_given_to_the_app(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text(APP)
    (root / "app" / "requirements.txt").write_text("fastapi\n")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        declared = holder.getsockname()[1]
        (root / "hotmode.toml").write_text(
            DECLARATION.format(python=sys.executable, declared=declared)
        )
        git(root, "init", "-q")
        commit(root, "a project with a companion")
        port = free_port()
        try:
            up = hotmode(root, "up", "--native", "--dev", "--detach", "--port", str(port))
            assert up.returncode == 0, up.stdout + up.stderr
            said = [line for line in (up.stdout + up.stderr).splitlines() if "is taken" in line]
            assert len(said) == 1, up.stdout + up.stderr
            assert (
                f"echo: its port is taken: port {declared} is held by pid {os.getpid()}"
                in (said[0])
            )
            status, document = answer(port, "/echo")
            assert status == 200
            url = str(document["url"])
            given = int(url.rsplit(":", 1)[1].strip("/"))
            assert given != declared
            assert f"listens on {given} instead, and the app is given {given}" in said[0]
            # The companion really listens there.
            with socket.create_connection(("127.0.0.1", given), timeout=5):
                pass
        finally:
            down = hotmode(root, "down", "--native")
        assert down.returncode == 0, down.stdout + down.stderr
