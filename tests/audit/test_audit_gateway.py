"""The rendered example gateway passes `hotmode check --all`, the gate `make test` runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GATEWAY = Path(__file__).parents[2] / "examples" / "linkedin-gateway"


@pytest.fixture(scope="module")
def run() -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "hotmode", "check", "--all", "--format", "json"]
    return subprocess.run(
        argv, cwd=GATEWAY, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def report(run: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert run.returncode in (0, 1), run.stderr
    document: dict[str, object] = json.loads(run.stdout)
    return document


def _findings(report: dict[str, object]) -> list[dict[str, object]]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return [f for f in findings if f["waived"] is None]


def test_every_mode_is_checked(report: dict[str, object]) -> None:
    modes = report["modes"]
    assert isinstance(modes, list)
    assert [m["label"] for m in modes] == ["prod core", "prod saas", "dev core", "dev saas"]


def test_the_rendered_files_break_none_of_hotmodes_rules(report: dict[str, object]) -> None:
    assert [f for f in _findings(report) if f["tool"] == "hotmode"] == []


def test_the_rendered_files_pass_the_gate_at_medium(
    run: subprocess.CompletedProcess[str], report: dict[str, object]
) -> None:
    assert report["passed"] is True
    assert run.returncode == 0
