"""The WSGI bench: hotmode against the reloaders Flask and Django users run, side by side in one
run, on a realistic Flask app and a realistic Django app (bench/wsgi/apps.py); and a2wsgi against
uvicorn's own WSGI interface, the two adapters hotmode could serve WSGI apps through.

See README.md beside this file for what is measured and the last figures.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import apps  # noqa: E402 -- beside this file

_spec = importlib.util.spec_from_file_location("reload_bench", HERE.parent / "reload" / "bench.py")
assert _spec is not None and _spec.loader is not None
reload_bench = importlib.util.module_from_spec(_spec)
sys.modules["reload_bench"] = reload_bench  # its dataclasses look their module up
_spec.loader.exec_module(reload_bench)
free_port, tree, cpu_seconds, memory_mb, quiet, stop, server_env, percentile = (
    reload_bench.free_port, reload_bench.tree, reload_bench.cpu_seconds, reload_bench.memory_mb,
    reload_bench.quiet, reload_bench.stop, reload_bench.server_env, reload_bench.percentile,
)  # fmt: skip

HOST = "127.0.0.1"
PY = sys.executable


def commands(kind: str, port: int) -> dict[str, list[str]]:
    """The servers a user of each framework would otherwise pick, as they would start them."""
    if kind == "flask":
        return {
            "hotmode": [PY, "-m", "hotmode", "run", "wsgi:app", "--reload", "--port", str(port)],
            "flask run --debug": [PY, "-m", "flask", "--app", "wsgi:app", "run", "--debug",
                                  "--port", str(port)],
            "gunicorn --reload": [PY, "-m", "gunicorn", "--reload", "-b", f"{HOST}:{port}",
                                  "--log-level", "warning", "wsgi:app"],
        }  # fmt: skip
    return {
        "hotmode": [PY, "-m", "hotmode", "run", "config.wsgi:application", "--reload", "--port",
                    str(port)],
        "manage.py runserver": [PY, "manage.py", "runserver", f"{HOST}:{port}"],
        "gunicorn --reload": [PY, "-m", "gunicorn", "--reload", "-b", f"{HOST}:{port}",
                              "--log-level", "warning", "config.wsgi:application"],
    }  # fmt: skip


class Client:
    """One client on one keep-alive connection (reconnecting when the server closes it), asking
    for /greeting every 5 ms; a refused, reset or timed-out request, or a non-200, is failed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None
        self.last: tuple[float, str] | None = None  # when, what
        self.failed = 0
        self.ok = 0
        self.down_since: float | None = None
        self.down = 0.0  # seconds between a failure and the next answer
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def ask(self) -> str:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(HOST, self.port, timeout=5)
        self.connection.request("GET", "/greeting")
        response = self.connection.getresponse()
        body = response.read().decode()
        if response.getheader("connection", "").lower() == "close" or response.version == 10:
            self.connection.close()
            self.connection = None
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        return body

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                body = self.ask()
            except Exception:
                self.failed += 1
                if self.down_since is None:
                    self.down_since = time.monotonic()
                if self.connection is not None:
                    self.connection.close()
                self.connection = None
            else:
                now = time.monotonic()
                self.ok += 1
                if self.down_since is not None:
                    self.down += now - self.down_since
                    self.down_since = None
                self.last = (now, body)
            time.sleep(0.005)

    def wait_for(self, value: str, since: float, timeout: float) -> float | None:
        deadline = since + timeout
        while time.monotonic() < deadline:
            last = self.last
            if last is not None and last[0] > since and last[1] == value:
                return last[0] - since
            time.sleep(0.002)
        return None


def set_greeting(app: Path, kind: str, value: str, broken: bool = False) -> None:
    path = app / apps.GREETING_FILE[kind]
    text = path.read_text()
    start = text.index("GREETING = ")
    end = text.index("\n", start)
    line = f"GREETING = {value!r}" + ("\ndef broken(:" if broken else "")
    rest = text[end:]
    rest = rest.removeprefix("\ndef broken(:")
    path.write_text(text[:start] + line + rest)


@dataclass
class Result:
    server: str
    start_to_200: float = 0.0
    pss_mb: float = 0.0
    rss_mb: float = 0.0
    idle_cpu_pct: float = 0.0
    saves: list[float] = field(default_factory=list)
    unserved: int = 0
    failed: int = 0
    down_s: float = 0.0
    broken_ok: int = 0
    broken_failed: int = 0
    fix_s: float | None = None


def first_200(port: int, began: float) -> float:
    """Seconds from `began` (the server's start) to its first 200 for /greeting."""
    while time.monotonic() - began < 120:
        connection = http.client.HTTPConnection(HOST, port, timeout=5)
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection.request("GET", "/greeting")
            if connection.getresponse().status == 200:
                connection.close()
                return time.monotonic() - began
        connection.close()
        time.sleep(0.01)
    raise RuntimeError(f"nothing answered 200 on port {port} within 120 s")


def run_server(kind: str, name: str, template: Path, temp: Path, saves: int, idle: float) -> Result:
    app = temp / f"{kind}-{name.split()[0]}"
    shutil.copytree(template, app)
    port = free_port()
    command = commands(kind, port)[name]
    log = (temp / f"{app.name}.log").open("wb")
    began = time.monotonic()
    process = subprocess.Popen(command, cwd=app, env=server_env(name, temp), stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip
    result = Result(name)
    client = Client(port)
    try:
        result.start_to_200 = first_200(port, began)
        quiet(process.pid, 3.0, limit=10.0)  # a stat reloader never goes quiet: 10 s at most
        result.pss_mb, result.rss_mb = memory_mb(tree(process.pid))
        before = {pid: cpu_seconds([pid]) for pid in tree(process.pid)}
        time.sleep(idle)
        # Per process: one that exits meanwhile (a zygote replaced) takes its CPU time with it.
        after = {pid: cpu_seconds([pid]) for pid in tree(process.pid)}
        used = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
        result.idle_cpu_pct = used / idle * 100
        client.thread.start()
        time.sleep(0.5)
        for index in range(saves):
            value = f"save-{index}"
            saved = time.monotonic()
            set_greeting(app, kind, value)
            served = client.wait_for(value, saved, 20.0)
            if served is None:
                result.unserved += 1
            else:
                result.saves.append(served)
            time.sleep(1.0)  # StatReloader polls once a second: each save is a save of its own
        result.failed, result.down_s = client.failed, client.down
        ok, failed = client.ok, client.failed
        set_greeting(app, kind, "broken", broken=True)
        time.sleep(3.0)
        result.broken_ok, result.broken_failed = client.ok - ok, client.failed - failed
        last = client.last
        if last is not None and last[1] != f"save-{saves - 1}":
            result.broken_ok = 0  # answered, but not with the last good version
        fixed = time.monotonic()
        set_greeting(app, kind, "fixed")
        result.fix_s = client.wait_for("fixed", fixed, 30.0)
    finally:
        client.stop.set()
        if client.thread.is_alive():
            client.thread.join(timeout=10)
        stop(process)
        log.close()
    return result


def compare_adapters(template: Path, temp: Path, requests: int) -> dict[str, dict[str, Any]]:
    """a2wsgi against uvicorn's own WSGI adapter, on the same uvicorn and the same Flask shop."""
    figures: dict[str, dict[str, Any]] = {}
    for adapter in ("a2wsgi", "uvicorn"):
        port = free_port()
        process = subprocess.Popen(
            [PY, str(HERE / "adapter_server.py"), adapter, str(port), str(template)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=30)
            deadline = time.monotonic() + 60
            while True:
                try:
                    connection.request("GET", "/greeting")
                    connection.getresponse().read()
                    break
                except OSError:
                    connection.close()
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            quiet(process.pid, 1.0)
            idle_pss = memory_mb(tree(process.pid))[0]
            latencies, failed = [], 0
            for _ in range(requests):
                sent = time.perf_counter()
                try:
                    connection.request("GET", "/greeting")
                    response = connection.getresponse()
                    response.read()
                    failed += response.status != 200
                except OSError:
                    failed += 1
                    connection.close()
                latencies.append((time.perf_counter() - sent) * 1000)
            connection.request("GET", "/stream")
            response = connection.getresponse()
            sent = time.perf_counter()
            response.readline()
            first_chunk = time.perf_counter() - sent
            response.read()
            whole = time.perf_counter() - sent
            size = 64 << 20
            with PeakMemory(process.pid) as peak:
                sent = time.perf_counter()
                connection.request("POST", "/size", body=_chunks(size),
                                   headers={"Content-Length": str(size)})  # fmt: skip
                answer = json.loads(connection.getresponse().read())
                upload = time.perf_counter() - sent
            figures[adapter] = {
                "p50_ms": statistics.median(latencies),
                "p99_ms": percentile(latencies, 0.99),
                "failed": failed,
                "idle_pss_mb": idle_pss,
                "stream_first_chunk_s": first_chunk,
                "stream_whole_s": whole,
                "upload_64mb_s": upload,
                "upload_ok": answer.get("size") == size,
                "upload_peak_rss_mb": peak.rss,
            }
            connection.close()
        finally:
            stop(process)
    return figures


class PeakMemory:
    """The highest RSS of a process tree while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.rss = pid, 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        while not self.done.is_set():
            self.rss = max(self.rss, memory_mb(tree(self.pid))[1])
            time.sleep(0.02)

    def __enter__(self) -> PeakMemory:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def _chunks(size: int) -> Any:
    for _ in range(size >> 20):
        yield b"z" * (1 << 20)


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "--" if value is None else f"{value:.{digits}f}{unit}"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def report(kind: str, results: list[Result]) -> str:
    rows = [
        ("save-to-served p50", lambda r: fmt(_median(r.saves), " s", 3)),
        ("save-to-served max", lambda r: fmt(max(r.saves) if r.saves else None, " s", 3)),
        ("saves not served in 20 s", lambda r: str(r.unserved)),
        ("failed requests during saves", lambda r: str(r.failed)),
        ("time unavailable during saves", lambda r: fmt(r.down_s, " s")),
        ("broken edit: answered / failed (3 s)", lambda r: f"{r.broken_ok} / {r.broken_failed}"),
        ("broken edit: fix served after", lambda r: fmt(r.fix_s, " s", 3)),
        ("start to first 200", lambda r: fmt(r.start_to_200, " s")),
        ("idle CPU", lambda r: fmt(r.idle_cpu_pct, " %")),
        ("memory PSS / RSS", lambda r: f"{r.pss_mb:.0f} / {r.rss_mb:.0f} MB"),
    ]  # fmt: skip
    lines = [f"| {kind} | " + " | ".join(r.server for r in results) + " |"]
    lines.append("|---" * (len(results) + 1) + "|")
    lines += [f"| {label} | " + " | ".join(get(r) for r in results) + " |" for label, get in rows]
    hot = results[0]
    if hot.saves:
        for other in results[1:]:
            if other.saves:
                ratio = statistics.median(hot.saves) / statistics.median(other.saves)
                lines.append(f"\nhotmode's p50 / {other.server}'s: {ratio:.3f}x")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--saves", type=int, default=10)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--only", choices=("flask", "django", "adapters"), action="append")
    parser.add_argument("--json", type=Path, default=HERE / "last-results.json")
    args = parser.parse_args()
    only = args.only or ["adapters", "flask", "django"]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hotmode-bench-wsgi-") as folder:
        temp = Path(folder)
        templates = {"flask": apps.flask_shop(temp / "template-flask")}
        if "django" in only:
            templates["django"] = apps.django_site(temp / "template-django")
        if "adapters" in only:
            adapters = compare_adapters(templates["flask"], temp, args.requests)
            out["adapters"] = adapters
            print(json.dumps(adapters, indent=2), flush=True)
        for kind in ("flask", "django"):
            if kind not in only:
                continue
            results = []
            for name in commands(kind, 0):
                print(f"{kind}: {name}...", flush=True)
                results.append(run_server(kind, name, templates[kind], temp, args.saves,
                                          args.idle))  # fmt: skip
            out[kind] = [r.__dict__ for r in results]
            print(report(kind, results), flush=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
