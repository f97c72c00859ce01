"""A native companion that rewrites its own process title, and its environment with it (Redis:
`redis-server 127.0.0.1:PORT`), is still proven and stopped: hotmode runs it under a keeper
whose argv and marker stay, so `down` leaves nothing running. Real redis-server (Debian's, from
.ci/redis-setup), real processes, in a PID and network namespace of the test's own (root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        not shutil.which("redis-server") and os.environ.get("CI") != "true",
        reason="Debian's redis-server is not installed (.ci/redis-setup)",
    ),
    pytest.mark.skipif(os.getuid() != 0, reason="needs root for a PID and network namespace"),
]

DECLARATION = """\
name = "cache-app"
source = "app"
target = "main:app"
port = 8000

[services.redis]
image = "redis:7"
port = 6379
app_env = { REDIS_URL = "redis://{host}:{port}/0" }

[services.redis.native]
path = ["/usr/bin"]
command = ["redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--dir", "{data}",
           "--save", "", "--daemonize", "no"]
ready = ["redis-cli", "-p", "{port}", "ping"]
user = "redis"
retitles = true
"""

# In the namespace: up, a PING through the app's own URL, down; what runs after each, as JSON.
INSIDE = textwrap.dedent("""\
    import json, os, subprocess, sys, time
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTMODE_", "DOCKER_"))}
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    def hotmode(*args):
        done = subprocess.run([sys.executable, "-m", "hotmode", *args], env=env,
                              capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout + done.stderr
    def programs():
        out = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
        return [ln for ln in out.splitlines() if "redis-server" in ln and "ps -eo" not in ln]
    result = {"up": hotmode("up", "--native", "--dev", "--detach")}
    result["running"] = programs()
    result["ping"] = hotmode("exec", "--", "sh", "-c", 'redis-cli -u "$REDIS_URL" ping')
    result["down"] = hotmode("down")
    deadline = time.monotonic() + 20
    while programs() and time.monotonic() < deadline:
        time.sleep(0.2)
    result["after"] = programs()
    print(json.dumps(result))
""")


def test_a_server_that_rewrites_its_title_is_stopped_by_down(tmp_path: Path) -> None:
    root = tmp_path / "cache-app"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
    )
    (root / "hotmode.toml").write_text(DECLARATION)
    (root / "inside.py").write_text(INSIDE)
    tmp_path.chmod(0o755)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    done = subprocess.run(
        ["unshare", "--pid", "--net", "--fork", "--mount-proc", sys.executable, "inside.py"],
        cwd=root, env=env, capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["up"][0] == 0, result["up"][1]
    # The server's title is its own (not the argv hotmode gave it): only the keeper proves it.
    assert any(line.startswith("redis-server 127.0.0.1:") for line in result["running"])
    assert result["ping"] == [0, "PONG\n"]
    assert result["down"][0] == 0 and "stopped redis (pid " in result["down"][1]
    assert result["after"] == []
