"""Dev in a container: hotmode's dev mode against the guide's dev service, side by side.

Run from the repository root, as root, with an engine (see README.md):
`.venv/bin/python bench/containers/bench_containers.py [--runs 3] [--edits 5]`.

1. Start to first 200: `hotmode up --dev` (the dev image has the dependencies baked in) against
   the guide's dev service (a plain Python image that runs apt-get and pip install at every
   start, then `uvicorn --reload`). Each is started `--runs` times from stopped; hotmode's first
   start also builds the dev image (reported apart as "cold").
2. Host edit to served: a file on the host is changed and /api/v1/server-info polled until it
   serves the change, `--edits` times: hotmode's reload engine against `uvicorn --reload`.

Both run on a committed copy of the example gateway with host networking, bound to 127.0.0.1.
Everything started is removed at the end; the base image stays (it is the tests' cache).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "linkedin-gateway"
BIN = Path(sys.executable).parent
PYTHON_IMAGE = "hotmode-bench-python:slim"
GUIDE_PROJECT = "hotmode-bench-guide"

SITE_OVERLAY = ROOT / ".ci" / "docker-compose.site.yml"

# The guide's dev service (shared/reference), on this engine: host network, 127.0.0.1.
GUIDE_SERVICE = """\
name: {project}
services:
  backend:
    image: {image}
    network_mode: host
    working_dir: /app
    volumes:
      - {source}:/app
      - /app/__pycache__
      - /app/app/__pycache__
    environment:
      DEBUG: "true"
      LOG_LEVEL: "DEBUG"
      PYTHONUNBUFFERED: "1"
      DEBIAN_FRONTEND: noninteractive
    command: >
      bash -c "
        apt-get update &&
        apt-get install -y gcc postgresql-client curl openssl &&
        pip install --no-cache-dir -r requirements/base.txt &&
        mkdir -p /app/logs &&
        uvicorn main:app --host 127.0.0.1 --port {port} --reload --log-level debug
      "
"""

# What python:3.11-slim gives (Python with pip on PATH), made from the local base image.
PYTHON_DOCKERFILE = """\
FROM {base}
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
"""


def get_json(port: int, path: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            data: dict[str, object] = json.loads(response.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_for(predicate: Callable[[], bool], timeout: float, poll: float = 0.02) -> float:
    """Seconds until `predicate` holds; raise after `timeout`."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if predicate():
            return time.perf_counter() - start
        time.sleep(poll)
    raise TimeoutError(f"not met within {timeout} s")


def run(*argv: str, cwd: Path | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:4])} failed: {(result.stderr or result.stdout)[-800:]}"
        )
    return result.stdout


def edit_latencies(source: Path, port: int, edits: int) -> list[float]:
    """Change the greeting on the host `edits` times; seconds until each one is served."""
    routes = source / "app" / "routes.py"
    original = routes.read_text()
    latencies = []
    try:
        for number in range(edits):
            greeting = f"edit {number} {time.time_ns()}"
            text = original.replace('GREETING = "LinkedIn Gateway"', f'GREETING = "{greeting}"')
            started = time.perf_counter()
            routes.write_text(text)
            wait_for(
                lambda g=greeting: (get_json(port, "/api/v1/server-info") or {}).get("name") == g,
                timeout=60,
            )
            latencies.append(time.perf_counter() - started)
            time.sleep(1.0)  # let the server settle before the next edit
    finally:
        routes.write_text(original)
    return latencies


def copy_gateway(work: Path, port: int, base: str) -> Path:
    root = work / "gateway"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", "logs", ".env", "*.local.yml")
    )
    deployment = root / "deployment"
    shutil.copyfile(SITE_OVERLAY, deployment / "docker-compose.local.yml")
    (deployment / ".env").write_text(f"PORT={port}\nHOTMODE_HOST=127.0.0.1\nBASE_IMAGE={base}\n")
    for args in (("init", "-q"), ("add", "-A")):
        run("git", "-C", str(root), *args)
    run("git", "-C", str(root), "-c", "user.name=b", "-c", "user.email=b@localhost",
        "commit", "-qm", "bench")  # fmt: skip
    if os.getuid() == 0:
        for path in [root / "backend", *(root / "backend").rglob("*")]:
            os.lchown(path, 1000, 1000)
    return root


def hotmode(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "hotmode"), *args],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def start_hotmode(root: Path, port: int) -> float:
    """`hotmode up --dev` from stopped; seconds to the first 200."""
    started = time.perf_counter()
    process = hotmode(root, "up", "--dev")
    wait_for(lambda: get_json(port, "/health") is not None, timeout=600)
    first = time.perf_counter() - started
    out, _ = process.communicate(timeout=120)
    if process.returncode != 0:
        raise RuntimeError(f"hotmode up --dev failed: {out[-800:]}")
    return first


def stop_hotmode(root: Path) -> None:
    process = hotmode(root, "down")
    process.communicate(timeout=120)


def guide_files(work: Path, root: Path, port: int) -> Path:
    compose = work / "guide-dev.yml"
    compose.write_text(
        GUIDE_SERVICE.format(
            project=GUIDE_PROJECT, image=PYTHON_IMAGE, source=root / "backend", port=port
        )
    )
    return compose


def start_guide(compose: Path, port: int) -> float:
    started = time.perf_counter()
    run(str(BIN / "docker-compose"), "-f", str(compose), "up", "--detach")
    wait_for(lambda: get_json(port, "/health") is not None, timeout=900, poll=0.1)
    return time.perf_counter() - started


def stop_guide(compose: Path) -> None:
    run(str(BIN / "docker-compose"), "-f", str(compose), "down", "--volumes", "--timeout", "5")


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[max(0, int(len(ordered) * 0.9 + 0.5) - 1)]
    return (
        f"| {name} | {statistics.median(ordered):.2f} | {p90:.2f} | {min(ordered):.2f} | "
        f"{len(ordered)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--port", type=int, default=7797)
    args = parser.parse_args()
    base = run(str(ROOT / ".ci" / "base-image")).strip().splitlines()[-1]
    # The gateway's database (the site overlay names this image; none can be pulled).
    run(str(ROOT / ".ci" / "postgres-image"))
    with tempfile.TemporaryDirectory(prefix="hotmode-bench-") as folder:
        work = Path(folder)
        (work / "Dockerfile").write_text(PYTHON_DOCKERFILE.format(base=base))
        run("docker", "build", "--quiet", "--network", "host", "-t", PYTHON_IMAGE, str(work))
        root = copy_gateway(work, args.port, base)
        guide = guide_files(work, root, args.port)
        rows: list[str] = []
        try:
            subprocess.run(["docker", "image", "rm", "linkedin-gateway:dev"], capture_output=True)
            cold = start_hotmode(root, args.port)
            stop_hotmode(root)
            warm = []
            for _ in range(args.runs):
                warm.append(start_hotmode(root, args.port))
                stop_hotmode(root)
            guide_starts = []
            for _ in range(args.runs):
                guide_starts.append(start_guide(guide, args.port))
                stop_guide(guide)
            rows.append(summary("`hotmode up --dev`, image tag removed (build cache kept)", [cold]))
            rows.append(summary("`hotmode up --dev`, image cached", warm))
            rows.append(summary("guide dev service (apt-get + pip each start)", guide_starts))

            start_hotmode(root, args.port)
            hot = edit_latencies(root / "backend", args.port, args.edits)
            stop_hotmode(root)
            start_guide(guide, args.port)
            uvicorn = edit_latencies(root / "backend", args.port, args.edits)
            stop_guide(guide)
            rows.append(summary("edit to served: hotmode reload engine", hot))
            rows.append(summary("edit to served: `uvicorn --reload` (guide)", uvicorn))
        finally:
            stop_hotmode(root)
            subprocess.run(
                [str(BIN / "docker-compose"), "-f", str(guide), "down", "--volumes"],
                capture_output=True,
            )
            subprocess.run(
                ["docker", "image", "rm", PYTHON_IMAGE, "linkedin-gateway:dev"],
                capture_output=True,
            )
            for volume in ("linkedin-gateway-dev_logs",):
                subprocess.run(["docker", "volume", "rm", volume], capture_output=True)
            # The guide's service runs as root in the mounted tree: remove what it left there.
            shutil.rmtree(root, ignore_errors=True)
    print("| what | median s | p90 s | min s | runs |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
