"""Reload benchmark: `hotmode run --reload` against `uvicorn --reload`, same app, same run.

On a temporary copy of the example gateway (examples/linkedin-gateway/backend), for each server:
start it on 127.0.0.1, let it settle, measure the idle CPU and memory of its process tree, then
run a bounded load of about 100 requests/s (a fresh connection each) while it makes N edits to
app/routes.py (half written in place, half written to a temp file and renamed over), timing each
from the save to the first response carrying the new code. Then it saves a syntax error, holds it
for 3 s under the same load, fixes it, and times the recovery. Only 127.0.0.1 is ever contacted.

    .venv/bin/python bench/reload/bench.py [--edits 30] [--json results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "examples" / "linkedin-gateway" / "backend"
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    tool: str
    start_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    in_place_ms: list[float] = field(default_factory=list)
    renamed_ms: list[float] = field(default_factory=list)
    reload_requests: int = 0
    reload_failed: int = 0
    broken_requests: int = 0
    broken_failed: int = 0
    recovery_ms: float = 0.0
    idle_cpu_pct: float = 0.0
    idle_pss_mb: float = 0.0
    idle_rss_mb: float = 0.0
    processes: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str, timeout: float) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


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


class Load:
    """About `rate` requests/s on /health, a fresh connection each, from a few threads."""

    def __init__(self, port: int, rate: float = 100.0, threads: int = 4, timeout: float = 2.0):
        self.port, self.timeout = port, timeout
        self.period = threads / rate
        self.results: list[tuple[float, bool]] = []
        self.errors: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        deadline = time.monotonic() + 600  # bounded, whatever happens
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            error = ""
            try:
                ok = get(self.port, "/health", self.timeout)[0] == 200
            except OSError as exc:
                ok, error = False, type(exc).__name__
            with self._lock:
                self.results.append((sent, ok))
                if error:
                    self.errors[error] = self.errors.get(error, 0) + 1
            next_at += self.period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Load:
        for index, thread in enumerate(self._threads):
            time.sleep(self.period / len(self._threads) if index else 0)
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def window(self, start: float, end: float) -> tuple[int, int]:
        """(requests, failed) among those sent in [start, end)."""
        with self._lock:
            inside = [ok for sent, ok in self.results if start <= sent < end]
        return len(inside), inside.count(False)


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


def serving(port: int) -> str | None:
    try:
        status, body = get(port, "/api/v1/server-info", 2.0)
    except OSError:
        return None
    return str(json.loads(body)["name"]) if status == 200 else None


def wait_greeting(port: int, value: str, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serving(port) == value:
            return time.monotonic()
        time.sleep(0.005)
    raise RuntimeError(f"{value!r} not served within {timeout} s")


def bench(
    tool: str, command: list[str], app: Path, edits: int, settle: float, idle: float
) -> Result:
    result = Result(tool)
    port = free_port()
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(app.parent / f"pycache-{tool}")}
    env.pop("HOTMODE_FORCE_POLLING", None)
    started = time.monotonic()
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        cwd=app,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_greeting(port, "LinkedIn Gateway", timeout=60)
        result.start_s = time.monotonic() - started
        quiet(process.pid, settle)  # let both settle: a zygote rebuild, first bytecode writes

        pids = tree(process.pid)
        result.processes = len(pids)
        result.idle_pss_mb, result.idle_rss_mb = memory_mb(pids)
        before, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(idle)  # ticks are 10 ms: a long window keeps the reading meaningful
        result.idle_cpu_pct = 100 * (cpu_seconds(pids) - before) / (time.monotonic() - t0)

        with Load(port) as load:
            begin = time.monotonic()
            for index in range(edits):
                rename = index % 2 == 1
                value = f"{tool}-edit-{index}"
                saved = time.monotonic()
                set_greeting(app, value, rename=rename)
                latency = (wait_greeting(port, value) - saved) * 1000
                result.latencies_ms.append(latency)
                (result.renamed_ms if rename else result.in_place_ms).append(latency)
                time.sleep(0.3)
            result.reload_requests, result.reload_failed = load.window(begin, time.monotonic())

            routes = app / "app" / "routes.py"
            good = routes.read_text()
            broken_at = time.monotonic()
            routes.write_text(good + "\ndef broken(:\n")
            time.sleep(3)
            fixed_at = time.monotonic()
            set_greeting(app, f"{tool}-fixed", rename=False, source=good)
            result.recovery_ms = (wait_greeting(port, f"{tool}-fixed") - fixed_at) * 1000
            result.broken_requests, result.broken_failed = load.window(broken_at, fixed_at)
            time.sleep(2.5)  # requests sent while broken may still be waiting: let them finish
            result.broken_requests, result.broken_failed = load.window(broken_at, fixed_at)
            result.errors = dict(load.errors)
        set_greeting(app, "LinkedIn Gateway", rename=False)
    finally:
        stop(process)
    return result


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


def report(results: list[Result]) -> str:
    rows = [
        ("start to first response (s)", lambda r: f"{r.start_s:.2f}"),
        ("reload p50 (ms)", lambda r: f"{statistics.median(r.latencies_ms):.0f}"),
        ("reload p90 (ms)", lambda r: f"{percentile(r.latencies_ms, 0.9):.0f}"),
        ("reload p50, in place / renamed (ms)", lambda r: (
            f"{statistics.median(r.in_place_ms):.0f} / {statistics.median(r.renamed_ms):.0f}")),
        ("requests failed during reloads", lambda r: f"{r.reload_failed} of {r.reload_requests}"),
        ("requests failed, broken 3 s", lambda r: f"{r.broken_failed} of {r.broken_requests}"),
        ("recovery after the fix (ms)", lambda r: f"{r.recovery_ms:.0f}"),
        ("idle CPU of the tree (%)", lambda r: f"{r.idle_cpu_pct:.2f}"),
        ("idle memory, PSS / RSS (MB)", lambda r: f"{r.idle_pss_mb:.0f} / {r.idle_rss_mb:.0f}"),
        ("processes", lambda r: str(r.processes)),
        ("failed requests by error", lambda r: (
            ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items())) or "none")),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'':{width}} | " + " | ".join(r.tool for r in results) + " |"]
    lines.append(
        f"|{'-' * (width + 2)}|" + "|".join("-" * (len(r.tool) + 2) for r in results) + "|"
    )
    for name, cell in rows:
        lines.append(f"| {name:{width}} | " + " | ".join(cell(r) for r in results) + " |")
    if len(results) == 2:
        ratio = statistics.median(results[0].latencies_ms) / statistics.median(
            results[1].latencies_ms
        )
        lines.append(f"\nreload p50 ratio {results[0].tool}/{results[1].tool}: {ratio:.3f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--settle", type=float, default=4.0)
    parser.add_argument("--idle", type=float, default=30.0, help="idle window (s)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    python = sys.executable
    tools = [
        ("hotmode", [python, "-m", "hotmode", "run", "main:app", "--reload"]),
        ("uvicorn", [python, "-m", "uvicorn", "main:app", "--reload"]),
    ]
    results = []
    with tempfile.TemporaryDirectory(prefix="hotmode-bench-") as temp:
        for tool, command in tools:
            app = Path(temp) / tool / "backend"
            shutil.copytree(GATEWAY, app, ignore=shutil.ignore_patterns("__pycache__", "logs"))
            print(f"benchmarking {tool}...", file=sys.stderr, flush=True)
            results.append(bench(tool, command, app, args.edits, args.settle, args.idle))
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
