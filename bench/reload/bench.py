"""Reload benchmark: `hotmode run --reload` against `uvicorn --reload` and `granian --reload`.

On a temporary copy of the example gateway (examples/linkedin-gateway/backend), for each server
in turn, in the same run: start it on 127.0.0.1, let it settle, measure the idle CPU and memory
(PSS) of its process tree, then run three clients back to back -- a fresh connection per request,
one keep-alive connection sending GETs, one keep-alive connection sending POSTs with a JSON body
-- while it makes N edits to app/routes.py (half written in place, half to a temp file renamed
over), timing each from the save to the first response carrying the new code, per client. Then
it holds a WebSocket open across a few more edits, and ends with a broken edit held 3 s and its
fix. Only 127.0.0.1 is ever contacted.

    .venv/bin/python bench/reload/bench.py [--edits 30] [--json results.json]

granian is optional (`pip install 'granian[reload]'`, or the `bench` extra); without it, its
column is left out.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "examples" / "linkedin-gateway" / "backend"
HEAVY = ROOT / "tests" / "fixtures" / "heavy-app"
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CLIENTS = ("fresh", "keep-alive GET", "keep-alive POST")
TIMEOUT = 5.0  # per request
PACE = 0.005  # between two requests of one client
CASES = ("edits", "cold", "heavy")


@dataclass
class Result:
    tool: str
    start_s: float = 0.0
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    ws_latencies_ms: list[float] = field(default_factory=list)
    ws_endings: dict[str, int] = field(default_factory=dict)
    ws_new_greeting: int = 0
    ws_edits: int = 0
    broken_requests: int = 0
    broken_failed: int = 0
    recovery_ms: float = 0.0
    idle_cpu_pct: float = 0.0
    idle_pss_mb: float = 0.0
    idle_rss_mb: float = 0.0
    processes: int = 0
    load_average: str = ""
    cold_start_s: list[float] = field(default_factory=list)
    first_save_ms: dict[str, list[float]] = field(default_factory=dict)  # held / bare
    warm_save_ms: dict[str, list[float]] = field(default_factory=dict)
    heavy_ms: dict[str, list[float]] = field(default_factory=dict)  # leaf / many dependents
    heavy_import_ms: dict[str, list[float]] = field(default_factory=dict)  # hotmode's own log
    heavy_how: dict[str, list[str]] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = {pid}, {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return sorted(found)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLOCK_TICKS


def memory_mb(pids: list[int]) -> tuple[float, float]:
    """(PSS, RSS) of the processes, in MB: PSS shares forked pages fairly."""
    pss = rss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        pss += int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
        rss += int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    return pss / 1024, rss / 1024


def quiet(pid: int, least: float, limit: float = 30.0) -> None:
    """Wait at least `least` seconds, then until the tree used under 2% CPU for a second."""
    time.sleep(least)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(tree(pid))
        time.sleep(1.0)
        if cpu_seconds(tree(pid)) - before < 0.02:
            return


class Client:
    """One client sending requests back to back and recording what came back: (sent, received,
    greeting) for answers, errors by type. Fresh: a new connection per request; else one
    keep-alive connection (reopened only after an error)."""

    def __init__(self, port: int, kind: str) -> None:
        self.port, self.kind = port, kind
        self.answers: list[tuple[float, float, str]] = []
        self.errors: dict[str, int] = {}
        self.error_times: list[float] = []
        self.connections = 0
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _request(self, count: int) -> str:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT)
            self.connections += 1
        connection = self._connection
        if self.kind == "keep-alive POST":
            body = json.dumps({"n": count, "text": "x" * 200})
            connection.request("POST", "/api/v1/echo", body=body,
                               headers={"Content-Type": "application/json"})  # fmt: skip
        else:
            headers = {"Connection": "close"} if self.kind == "fresh" else {}
            connection.request("GET", "/api/v1/server-info", headers=headers)
        response = connection.getresponse()
        data = response.read()
        if self.kind == "fresh":
            connection.close()
            self._connection = None
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        answer = json.loads(data)
        if self.kind == "keep-alive POST" and answer["echo"]["n"] != count:
            raise RuntimeError("wrong echo")
        return str(answer["name"])

    def _run(self) -> None:
        count = 0
        deadline = time.monotonic() + 1800  # bounded, whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            count += 1
            sent = time.monotonic()
            try:
                name = self._request(count)
            except Exception as exc:
                with self._lock:
                    key = type(exc).__name__
                    self.errors[key] = self.errors.get(key, 0) + 1
                    self.error_times.append(sent)
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None
                self._stop.wait(0.05)
                continue
            with self._lock:
                self.answers.append((sent, time.monotonic(), name))
            self._stop.wait(PACE)

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT + 5)
        if self._connection is not None:
            self._connection.close()

    def first_seen(self, name: str, since: float) -> float | None:
        with self._lock:
            for _sent, received, value in self.answers:
                if value == name and received >= since:
                    return received
        return None

    def window(self, start: float, end: float) -> tuple[int, int]:
        """(requests, failed) among those sent in [start, end)."""
        with self._lock:
            ok = sum(1 for sent, _r, _v in self.answers if start <= sent < end)
            bad = sum(1 for sent in self.error_times if start <= sent < end)
        return ok + bad, bad


def stale_count(clients: list[Client], order: list[str]) -> dict[str, int]:
    """Per client: answers with older code to requests sent after any client had received newer
    code (the same or another client: what a user with a browser and a script would see)."""
    rank = {name: index for index, name in enumerate(order)}
    seen: list[tuple[float, int]] = sorted(
        (received, rank[value]) for c in clients for _s, received, value in c.answers
        if value in rank
    )  # fmt: skip
    newest: list[tuple[float, int]] = []  # (time, newest rank seen by then), increasing
    best = -1
    for received, value in seen:
        if value > best:
            best = value
            newest.append((received, best))
    counts = {}
    for client in clients:
        stale = 0
        for sent, _received, value in client.answers:
            known = [r for t, r in newest if t < sent]
            if value in rank and known and rank[value] < known[-1]:
                stale += 1
        counts[client.kind] = stale
    return counts


def set_greeting(app: Path, value: str, *, rename: bool, source: str | None = None) -> None:
    routes = app / "app" / "routes.py"
    text = source if source is not None else routes.read_text()
    text = re.sub(r'^GREETING = ".*"$', f'GREETING = "{value}"', text, flags=re.M)
    if rename:
        temp = routes.with_name(".routes.py.hotmode-bench~")
        temp.write_text(text)
        os.replace(temp, routes)
    else:
        routes.write_text(text)


def wait_all(clients: list[Client], value: str, since: float, timeout: float) -> dict[str, float]:
    """Per client, when it first received `value` (all of them, or RuntimeError past timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {c.kind: c.first_seen(value, since) for c in clients}
        if all(t is not None for t in seen.values()):
            return {k: t for k, t in seen.items() if t is not None}
        time.sleep(0.002)
    raise RuntimeError(f"{value!r} not served to every client within {timeout} s")


class HeldSocket:
    """A WebSocket to /ws held open in a thread: its greeting, and how and when it ended."""

    def __init__(self, port: int) -> None:
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self.socket = self._stack.enter_context(
            connect(f"ws://{HOST}:{port}/ws", open_timeout=TIMEOUT)
        )
        self.greeting = json.loads(self.socket.recv(timeout=TIMEOUT))["hello"]["name"]
        self.ended: tuple[float, str] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                self.socket.recv()
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else "no close frame"
            self.ended = (time.monotonic(), f"close {code}")
        except Exception as exc:
            self.ended = (time.monotonic(), type(exc).__name__)

    def close(self) -> None:
        self._stack.close()
        self._thread.join(timeout=5)


def bench(
    tool: str, command: list[str], app: Path, edits: int, settle: float, idle: float
) -> Result:
    result = Result(tool)
    port = free_port()
    env = server_env(tool, app.parent)
    started = time.monotonic()
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        cwd=app, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with Client(port, "fresh") as probe:
            wait_all([probe], "LinkedIn Gateway", 0.0, 60)
        result.start_s = time.monotonic() - started
        quiet(process.pid, settle)  # let each settle: a zygote rebuild, first bytecode writes

        pids = tree(process.pid)
        result.processes = len(pids)
        result.idle_pss_mb, result.idle_rss_mb = memory_mb(pids)
        before, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(idle)  # ticks are 10 ms: a long window keeps the reading meaningful
        result.idle_cpu_pct = 100 * (cpu_seconds(pids) - before) / (time.monotonic() - t0)

        clients = [Client(port, kind) for kind in CLIENTS]
        with contextlib.ExitStack() as stack:
            for client in clients:
                stack.enter_context(client)
            wait_all(clients, "LinkedIn Gateway", 0.0, 30)
            order = ["LinkedIn Gateway"]
            result.latencies_ms = {kind: [] for kind in CLIENTS}
            begin = time.monotonic()
            for index in range(edits):
                value = f"{tool}-edit-{index}"
                order.append(value)
                saved = time.monotonic()
                set_greeting(app, value, rename=index % 2 == 1)
                for kind, seen in wait_all(clients, value, saved, 60).items():
                    result.latencies_ms[kind].append((seen - saved) * 1000)
                time.sleep(0.3)
            end = time.monotonic()
            for client in clients:
                result.requests[client.kind], result.failed[client.kind] = client.window(begin, end)
                result.connections[client.kind] = client.connections
            result.stale = stale_count(clients, order)

            held_socket(result, app, port, clients[0], tool)

            routes = app / "app" / "routes.py"
            good = routes.read_text()
            broken_at = time.monotonic()
            routes.write_text(good + "\ndef broken(:\n")
            time.sleep(3)
            fixed_at = time.monotonic()
            set_greeting(app, f"{tool}-fixed", rename=False, source=good)
            try:
                seen = wait_all(clients, f"{tool}-fixed", fixed_at, 60)["fresh"]
                result.recovery_ms = (seen - fixed_at) * 1000
            except RuntimeError:
                result.recovery_ms = -1.0  # not served within 60 s
            time.sleep(TIMEOUT)  # requests sent while broken may still be waiting
            for client in clients:
                requests, failed = client.window(broken_at, fixed_at)
                result.broken_requests += requests
                result.broken_failed += failed
        for client in clients:
            for key, count in client.errors.items():
                result.errors[key] = result.errors.get(key, 0) + count
        set_greeting(app, "LinkedIn Gateway", rename=False)
    finally:
        stop(process)
    result.load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return result


def held_socket(result: Result, app: Path, port: int, fresh: Client, tool: str) -> None:
    """A few edits with a WebSocket held open: save-to-served for fresh requests, how the socket
    ended, and whether a reconnect is greeted by the new code."""
    for index in range(5):
        value = f"{tool}-ws-{index}"
        socket_ = HeldSocket(port)
        saved = time.monotonic()
        set_greeting(app, value, rename=False)
        try:
            seen = wait_all([fresh], value, saved, 15)["fresh"]
            result.ws_latencies_ms.append((seen - saved) * 1000)
        except RuntimeError:
            result.ws_endings["reload held up (>15 s)"] = (
                result.ws_endings.get("reload held up (>15 s)", 0) + 1
            )
        deadline = time.monotonic() + 10
        while socket_.ended is None and time.monotonic() < deadline:
            time.sleep(0.01)
        ending = socket_.ended[1] if socket_.ended else "still open after 10 s"
        result.ws_endings[ending] = result.ws_endings.get(ending, 0) + 1
        socket_.close()
        result.ws_edits += 1
        with contextlib.suppress(Exception):
            wait_all([fresh], value, saved, 30)
            again = HeldSocket(port)
            result.ws_new_greeting += again.greeting == value
            again.close()
        time.sleep(0.3)


class HeldStream:
    """The gateway's event stream (SSE) read in a thread until it ends."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
        self.connection.request("GET", "/api/v1/events", headers={"Accept": "text/event-stream"})
        self.response = self.connection.getresponse()
        self.response.readline()  # the first event is under way: the stream is held
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):
            while self.response.readline():
                pass

    def close(self) -> None:
        self.connection.close()
        self._thread.join(timeout=5)


def server_env(tool: str, temp: Path) -> dict[str, str]:
    """What a user's shell would give: no byte-code prefix, so every server reads the installed
    packages' bytecode where pip compiled it. hotmode keeps its workers' bytecode of the app and
    the module lists it learns under its default prefix, in the temporary folder; here a fresh
    one for the whole run (its default is one per user; each app folder has its own list)."""
    env = {**os.environ}
    for name in ("HOTMODE_FORCE_POLLING", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    if tool.startswith("hotmode"):
        (temp / "tmp-hotmode").mkdir(exist_ok=True)
        env["TMPDIR"] = str(temp / "tmp-hotmode")
    if tool == WHOLE:
        env["HOTMODE_PARTIAL_RELOAD"] = "0"
    return env


HELD_UP = 5.0  # a save not served this long while the streams are held: held up by them


def saved_to_served(app: Path, port: int, value: str, held: bool) -> float:
    """Save `value` as the greeting (with a WebSocket and an event stream held open if `held`);
    the time until a fresh request gets it (ms), or -1 if not within HELD_UP (then the streams
    are closed, and it waits for the save to be served before going on)."""
    socket_, stream = (HeldSocket(port), HeldStream(port)) if held else (None, None)
    with Client(port, "fresh") as probe:
        saved = time.monotonic()
        set_greeting(app, value, rename=False)
        try:
            return (wait_all([probe], value, saved, HELD_UP)["fresh"] - saved) * 1000
        except RuntimeError:
            return -1.0
        finally:
            for holder in (socket_, stream):
                if holder is not None:
                    holder.close()
            wait_all([probe], value, saved, 60)


def cold_start(result: Result, command: list[str], temp: Path, rounds: int) -> None:
    """From a cold start (a fresh copy of the app: nothing learned about it): the time to the
    first 200, then a save 1 s after it, then three more saves 2 s apart (warm); in every other
    round, each save is made with a WebSocket and an event stream held open."""
    for round_ in range(rounds):
        kind = "held" if round_ % 2 == 0 else "bare"
        app = temp / f"cold-{round_}" / "backend"
        shutil.copytree(GATEWAY, app, ignore=shutil.ignore_patterns("__pycache__", "logs"))
        port = free_port()
        started = time.monotonic()
        process = subprocess.Popen(
            [*command, "--port", str(port), "--log-level", "warning"],
            cwd=app, env=server_env(result.tool, temp),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with Client(port, "fresh") as probe:
                wait_all([probe], "LinkedIn Gateway", 0.0, 60)
            result.cold_start_s.append(time.monotonic() - started)
            time.sleep(1.0)
            value = f"{result.tool}-cold-{round_}"
            first = saved_to_served(app, port, value, kind == "held")
            result.first_save_ms.setdefault(kind, []).append(first)
            for index in range(3):
                time.sleep(2.0)
                value = f"{result.tool}-warm-{round_}-{index}"
                warm = saved_to_served(app, port, value, kind == "held")
                result.warm_save_ms.setdefault(kind, []).append(warm)
        finally:
            stop(process)


WHOLE = "hotmode, whole app"  # every save imports the whole app again (as before issue 18)
RELOADED = re.compile(r"reloaded \((.*) changed\): import (\d+) ms(?: \((.*?)\))?, ready")


def answer(port: int, path: str) -> str | None:
    """The one value /health or /revision answers, None on any error."""
    try:
        connection = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
        connection.request("GET", path)
        response = connection.getresponse()
        data = json.loads(response.read()) if response.status == 200 else {}
        connection.close()
    except (OSError, ValueError, http.client.HTTPException):
        return None
    values = list(data.values())
    return str(values[0]) if values else None


def heavy_app(result: Result, command: list[str], temp: Path, edits: int) -> None:
    """On the heavy-app fixture (40 SQLAlchemy models): `edits` saves to a leaf router, then
    `edits` saves to the database module every model imports, each timed from the save to the
    first answer with the new value; hotmode's own log gives its import time and path."""
    app = temp / "heavy" / "app"
    shutil.copytree(HEAVY, app, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    log = temp / "heavy" / "server.log"
    level = "info" if result.tool.startswith("hotmode") else "warning"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--log-level", level],
            cwd=app, env=server_env(result.tool, temp), stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    cases = (
        ("leaf", app / "app" / "routers" / "health.py", "GREETING", "/health"),
        ("many dependents", app / "app" / "db.py", "REVISION", "/revision"),
    )
    try:
        deadline = time.monotonic() + 60
        while answer(port, "/health") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        quiet(process.pid, 3.0)
        for kind, path, name, url in cases:
            for index in range(edits):
                value = f"{kind[0]}{index}"
                text = re.sub(rf'^{name} = ".*"$', f'{name} = "{value}"', path.read_text(),
                              flags=re.M)  # fmt: skip
                saved = time.monotonic()
                path.write_text(text)
                while answer(port, url) != value:
                    if time.monotonic() - saved > 60:
                        raise RuntimeError(f"{result.tool}: {value!r} not served within 60 s")
                    time.sleep(0.002)
                result.heavy_ms.setdefault(kind, []).append((time.monotonic() - saved) * 1000)
                time.sleep(0.5)
    finally:
        stop(process)
    for line in log.read_text(errors="replace").splitlines():
        match = RELOADED.search(line)
        if match and match.group(1) in ("app/routers/health.py", "app/db.py"):
            kind = "leaf" if match.group(1).endswith("health.py") else "many dependents"
            result.heavy_import_ms.setdefault(kind, []).append(float(match.group(2)))
            result.heavy_how.setdefault(kind, []).append(match.group(3) or "")


def stop(process: subprocess.Popen[bytes]) -> None:
    pids = tree(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


Row = tuple[str, Callable[[Result], str]]


def table(rows: list[Row], results: list[Result]) -> str:
    """A Markdown table: one row per measure, one column per server."""
    width = max(len(name) for name, _ in rows)
    cells = [[cell(r) for r in results] for _name, cell in rows]
    widths = [max(len(r.tool), *(len(row[i]) for row in cells)) for i, r in enumerate(results)]
    lines = [f"| {'':{width}} | " + " | ".join(
        f"{r.tool:{w}}" for r, w in zip(results, widths, strict=True)) + " |"]  # fmt: skip
    lines.append(f"|{'-' * (width + 2)}|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for (name, _cell), row in zip(rows, cells, strict=True):
        lines.append(
            f"| {name:{width}} | "
            + " | ".join(f"{c:{w}}" for c, w in zip(row, widths, strict=True))
            + " |"
        )
    return "\n".join(lines)


def report(results: list[Result]) -> str:
    def per_client(fn):  # type: ignore[no-untyped-def]
        return [(f"  {kind}", lambda r, k=kind: fn(r, k)) for kind in CLIENTS]

    rows = [
        ("start to first response (s)", lambda r: f"{r.start_s:.2f}"),
        ("save-to-served p50 / p90 (ms)", lambda r: ""),
        *per_client(lambda r, k: (f"{statistics.median(r.latencies_ms[k]):.0f} / "
                                  f"{percentile(r.latencies_ms[k], 0.9):.0f}")),
        ("failed requests during the edits", lambda r: ""),
        *per_client(lambda r, k: f"{r.failed[k]} of {r.requests[k]}"),
        ("old code after new code was served", lambda r: ""),
        *per_client(lambda r, k: str(r.stale[k])),
        ("connections opened (keep-alive clients)", lambda r: " / ".join(
            str(r.connections[k]) for k in CLIENTS[1:])),
        ("held WebSocket: save-to-served p50 (ms)", lambda r: (
            f"{statistics.median(r.ws_latencies_ms):.0f}" if r.ws_latencies_ms else "-")),
        ("held WebSocket: how it ended", lambda r: ", ".join(
            f"{k} x{v}" for k, v in sorted(r.ws_endings.items()))),
        ("held WebSocket: reconnect greeted by new code", lambda r: (
            f"{r.ws_new_greeting} of {r.ws_edits}")),
        ("failed requests, broken 3 s", lambda r: f"{r.broken_failed} of {r.broken_requests}"),
        ("recovery after the fix (ms)", lambda r: (
            f"{r.recovery_ms:.0f}" if r.recovery_ms >= 0 else "none within 60 s")),
        ("idle CPU of the tree (%)", lambda r: f"{r.idle_cpu_pct:.2f}"),
        ("idle memory, PSS / RSS (MB)", lambda r: f"{r.idle_pss_mb:.0f} / {r.idle_rss_mb:.0f}"),
        ("processes", lambda r: str(r.processes)),
        ("failed requests by error", lambda r: (
            ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items())) or "none")),
    ]  # fmt: skip
    lines = [table(rows, results)]
    base = results[0]
    for other in results[1:]:
        ratios = ", ".join(
            f"{kind} {statistics.median(base.latencies_ms[kind]) / statistics.median(other.latencies_ms[kind]):.3f}"  # noqa: E501
            for kind in CLIENTS
        )
        lines.append(f"\nsave-to-served p50, {base.tool}/{other.tool}: {ratios}")
        lines.append(
            f"idle PSS {base.tool}/{other.tool}: {base.idle_pss_mb / other.idle_pss_mb:.2f}"
        )
    return "\n".join(lines)


def report_cold(results: list[Result]) -> str:
    def spread(values: list[float], digits: int) -> str:
        if not values:
            return "-"
        low, high = min(values), max(values)
        return f"{low:.{digits}f}-{high:.{digits}f}" if round(low, digits) != round(high, digits) \
            else f"{low:.{digits}f}"  # fmt: skip

    def saves(values: list[float]) -> str:
        return " / ".join(f"{v:.0f}" if v >= 0 else "held up" for v in values) or "-"

    def warm(values: list[float]) -> str:
        if not values or min(values) < 0:
            return "held up" if values else "-"
        return f"{statistics.median(values):.0f} [{spread(values, 0)}]"

    def ratio(r: Result, kind: str) -> str:
        first, warm_ = r.first_save_ms.get(kind, []), r.warm_save_ms.get(kind, [])
        if not first or not warm_ or min([*first, *warm_]) < 0:
            return "-"
        return f"{max(first) / statistics.median(warm_):.2f}"

    rows: list[Row] = [
        ("cold start to first 200 (s), each round", lambda r: spread(r.cold_start_s, 2)),
    ]
    for kind, label in (("held", "WebSocket and SSE held"), ("bare", "no stream held")):
        rows += [
            (f"{label}: first save after cold start (ms)",
             lambda r, k=kind: saves(r.first_save_ms.get(k, []))),
            (f"{label}: warm saves (ms), median [range]",
             lambda r, k=kind: warm(r.warm_save_ms.get(k, []))),
            (f"{label}: worst first save / warm median", lambda r, k=kind: ratio(r, k)),
        ]  # fmt: skip
    return "\n" + table(rows, results)


def report_heavy(results: list[Result]) -> str:
    def times(values: list[float]) -> str:
        if not values:
            return "-"
        return f"{statistics.median(values):.0f} / {percentile(values, 0.9):.0f}"

    def paths(hows: list[str]) -> str:
        kinds = {"partial" if "re-imported" in how else "whole app" for how in hows}
        return " + ".join(sorted(kinds)) or "-"

    rows: list[Row] = []
    for kind in ("leaf", "many dependents"):
        rows += [
            (f"{kind}: save-to-served p50 / p90 (ms)",
             lambda r, k=kind: times(r.heavy_ms.get(k, []))),
            (f"{kind}: import p50 / p90 (ms, hotmode's log)",
             lambda r, k=kind: times(r.heavy_import_ms.get(k, []))),
            (f"{kind}: path taken", lambda r, k=kind: paths(r.heavy_how.get(k, []))),
        ]  # fmt: skip
    return "\n" + table(rows, [r for r in results if r.heavy_ms])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--settle", type=float, default=4.0)
    parser.add_argument("--idle", type=float, default=30.0, help="idle window (s)")
    parser.add_argument("--only", action="append", help="run only this tool (repeatable)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cold-rounds", type=int, default=4, help="cold starts per server")
    parser.add_argument("--heavy-edits", type=int, default=10, help="saves per heavy-app case")
    parser.add_argument(
        "--case", action="append", choices=CASES, help="run only this case (repeatable)"
    )
    args = parser.parse_args()
    cases = args.case or list(CASES)
    python = sys.executable
    tools = [
        ("hotmode", [python, "-m", "hotmode", "run", "main:app", "--reload"]),
        ("uvicorn", [python, "-m", "uvicorn", "main:app", "--reload"]),
    ]
    if "heavy" in cases:
        tools.insert(1, (WHOLE, tools[0][1]))
    if importlib.util.find_spec("granian") is not None:
        # Its reloader watches every file by default, and the gateway writes its log under
        # the app folder: without the ignore, each reload's log line triggers the next one.
        granian = [python, "-m", "granian", "--interface", "asgi", "--reload"]
        tools.append(("granian", [*granian, "--reload-ignore-dirs", "logs", "--host", HOST,
                                  "main:app"]))  # fmt: skip
    else:
        print("granian is not installed: its column is left out", file=sys.stderr)
    if args.only:
        tools = [t for t in tools if t[0] in args.only]
    results: list[Result] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hotmode-bench-") as temp:
        for tool, command in tools:
            app = Path(temp) / tool / "backend"
            shutil.copytree(GATEWAY, app, ignore=shutil.ignore_patterns("__pycache__", "logs"))
            print(f"benchmarking {tool}...", file=sys.stderr, flush=True)
            result = Result(tool)
            try:
                if "edits" in cases and tool != WHOLE:
                    result = bench(tool, command, app, args.edits, args.settle, args.idle)
            except RuntimeError as exc:  # a server that stops serving saves: said, not fatal
                failures.append(f"{tool}, edits: {exc}")
            try:
                if "cold" in cases and tool != WHOLE:
                    cold_start(result, command, app.parent, args.cold_rounds)
                if "heavy" in cases:
                    heavy_app(result, command, app.parent, args.heavy_edits)
            except RuntimeError as exc:
                failures.append(f"{tool}: {exc}")
            result.load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            results.append(result)
    if "edits" in cases:
        print(report([r for r in results if r.requests]))
    if "cold" in cases:
        print(report_cold([r for r in results if r.cold_start_s]))
    if "heavy" in cases:
        print(report_heavy(results))
    print(f"\nload average after each: {', '.join(r.load_average for r in results)}")
    for failure in failures:
        print(f"not measured: {failure}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
