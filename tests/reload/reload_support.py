"""Helpers for the reload engine's end-to-end tests: a small real app, a real `hotmode run`
process on 127.0.0.1, waits with deadlines, and the process tree it leaves (or does not)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from hotmode.reload import spawning

MAIN = """\
import asyncio, json, os
from version import VERSION

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":  # /ws
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hello from " + VERSION})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": VERSION + ": " + message["text"]})
    if scope["path"] == "/download":  # a streamed download: 60 lines over about 3 s
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(60):
            line = VERSION.encode() + b" " + str(i).encode() + b"\\n"
            await send({"type": "http.response.body", "body": line, "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] in ("/stream", "/events"):
        kind = b"text/event-stream" if scope["path"] == "/events" else b"text/plain"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind)]})
        for _ in range(600):
            line = b"data: " + VERSION.encode() + b"\\n\\n" if kind != b"text/plain" else b"tick\\n"
            await send({"type": "http.response.body", "body": line, "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    body = json.dumps({
        "version": VERSION, "pid": os.getpid(), "greeting": os.environ.get("GREETING"),
        "reload": os.environ.get("HOTMODE_RELOAD"), "echo": body.decode() or None,
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"""


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy, failing past the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def children_of(pid: int) -> set[int]:
    """Every live descendant of `pid` (psutil: the same on Linux, macOS and Windows)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    return {child.pid for child in children if alive(child.pid)}


# Whether this run's workers fork from a zygote (`make test` runs the suite once more with
# HOTMODE_WORKERS=spawn, as on Windows and macOS).
FORKED = spawning.choose(os.environ).fork


def parent_of(pid: int) -> int:
    return int(psutil.Process(pid).ppid())


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class Server:
    """A real `python -m hotmode run` process and its output."""

    def __init__(
        self,
        app_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        ready: str | None = None,
        target: str = "main:app",
    ) -> None:
        ready = ready or rf"serving {re.escape(target)} on (http://\S+) \(pid (\d+)\)"
        self.app_dir = app_dir
        full_env = {
            **os.environ,
            "PYTHONPYCACHEPREFIX": str(app_dir.parent / "pycache"),
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hotmode", "run", target, "--app-dir", str(app_dir),
             "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=app_dir.parent,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        match = self.wait_for(ready, timeout=30)
        self.url = match.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        regex = re.compile(pattern)

        def find() -> re.Match[str] | None:
            for line in self.lines[start:]:
                match = regex.search(line)
                if match:
                    return match
            if self.process.poll() is not None:
                raise AssertionError(
                    f"hotmode exited ({self.process.returncode}):\n{self.output()}"
                )
            return None

        try:
            return wait_until(find, timeout)  # type: ignore[no-any-return]
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {pattern!r} not seen in:\n{self.output()}") from None

    def fetch(self, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
        """(status, body) of a GET on a fresh connection."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path, headers={"Connection": "close"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def get(self, path: str = "/", timeout: float = 5.0) -> dict[str, Any]:
        status, body = self.fetch(path, timeout)
        assert status == 200, (status, body)
        return json.loads(body)  # type: ignore[no-any-return]

    def wait_version(self, version: str, timeout: float = 10.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            status, raw = self.fetch()
            body = json.loads(raw) if status == 200 else {}
            return body if body.get("version") == version else None

        return wait_until(check, timeout)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Kill whatever is left of the server's process tree, and close its output pipe."""
        tree = children_of(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=5)
        for pid in tree:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise AssertionError(
                f"hotmode did not stop within {timeout} s:\n{self.output()}"
            ) from None


def write_version(app_dir: Path, version: str, *, rename: bool = False) -> None:
    """Save version.py the way an editor does: in place, or to a temp file renamed over it."""
    text = f"VERSION = {version!r}\n"
    target = app_dir / "version.py"
    if rename:
        temp = app_dir / ".version.py.tmp"
        temp.write_text(text)
        os.replace(temp, target)
    else:
        target.write_text(text)


class Poller:
    """One client sending requests back to back in a thread, on one keep-alive connection (or a
    fresh one each, `fresh=True`), recording what it received: (sent, received, version), or the
    error."""

    def __init__(self, port: int, method: str = "GET", *, fresh: bool = False) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        self.method = method
        self.fresh = fresh
        self.received: list[tuple[float, float, str]] = []  # sent, received, version
        self.errors: list[str] = []
        self.ports: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        count = 0
        while not self._stop.is_set():
            count += 1
            body = f"request {count}".encode() if self.method == "POST" else None
            sent = time.monotonic()
            try:
                headers = {"Connection": "close"} if self.fresh else {}
                self.connection.request(self.method, "/", body=body, headers=headers)
                response = self.connection.getresponse()
                answer = json.loads(response.read())
                if self.fresh:
                    self.connection.close()
                assert response.status == 200
                if body is not None:
                    assert answer["echo"] == body.decode(), answer
                if not self.fresh:
                    self.ports.add(self.connection.sock.getsockname()[1])
                self.received.append((sent, time.monotonic(), answer["version"]))
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.connection.close()

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.connection.close()

    def wait_version(self, version: str, timeout: float = 10.0) -> None:
        wait_until(lambda: self.received and self.received[-1][2] == version, timeout)

    def versions(self) -> list[str]:
        return [version for _sent, _received, version in self.received]


def stale_answers(pollers: list[Poller], order: list[str]) -> list[str]:
    """Answers with older code to requests sent after some client had received newer code."""
    answers = sorted((r for p in pollers for r in p.received), key=lambda r: r[1])
    first_seen: dict[str, float] = {}
    for _sent, received, version in answers:
        first_seen.setdefault(version, received)
    stale = []
    for sent, _received, version in answers:
        newer = [v for v in order[order.index(version) + 1 :] if v in first_seen]
        if any(first_seen[v] < sent for v in newer):
            stale.append(f"{version} sent at {sent:.3f}")
    return stale
