"""CLI start-up: `hotmode --help` and `hotmode status` against what a user would otherwise run.

Run from the repository root: `.venv/bin/python bench/cli/bench_startup.py [--runs 20]`.
Each command runs `--runs` times in the example gateway's folder; prints median and p90 in ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "linkedin-gateway"
BIN = Path(sys.executable).parent


def measure(argv: list[str], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=EXAMPLE, capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    deployment = EXAMPLE / "deployment"
    commands = {
        "hotmode --help": [str(BIN / "hotmode"), "--help"],
        "hotmode status": [str(BIN / "hotmode"), "status"],
        "hotmode files --dev": [str(BIN / "hotmode"), "files", "--dev"],
        "uvicorn --help (baseline)": [str(BIN / "uvicorn"), "--help"],
        "docker-compose config -q (baseline)": [
            str(BIN / "docker-compose"), "-f", str(deployment / "docker-compose.yml"),
            "config", "--quiet",
        ],
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
    }  # fmt: skip
    print(f"| command | median ms | p90 ms |  ({runs} runs each)")
    print("|---|---:|---:|")
    for name, argv in commands.items():
        median, p90 = measure(argv, runs)
        print(f"| `{name}` | {median:.0f} | {p90:.0f} |")


if __name__ == "__main__":
    main()
