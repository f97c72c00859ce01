"""`check` finds each of the guide's problems in its four files, at the file that causes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.audit_support import counted
from hotmode.audit import checker
from hotmode.audit.model import Report, Stack
from hotmode.cli import main

GUIDE = Path(__file__).parents[1] / "fixtures" / "guide" / "deployment"
BASE, SAAS = "docker-compose.yml", "docker-compose.saas.yml"
DEV, DEV_SAAS = "docker-compose.dev.yml", "docker-compose.dev-saas.yml"
# The guide's four modes, with the -f lists it tells users to type.
MODES = {
    "prod core": ("prod", (BASE,)),
    "prod saas": ("prod", (BASE, SAAS)),
    "dev core": ("dev", (DEV,)),
    "dev saas": ("dev", (BASE, SAAS, DEV_SAAS)),
}
PROD_PROBLEMS = {
    ("HM-P04", BASE),  # writable root filesystem, no tmpfs
    ("HM-P05", BASE),  # runs as root
    ("HM-P06", BASE),  # no revision label
    ("HM-P08", BASE),  # no .dockerignore: .env goes into the image
    ("HM-P09", BASE),  # ${SECRET_KEY:-change_this_secret_key}
    ("HM-A04", BASE),  # logs never rotated
    ("CL-0005", BASE),  # the port is published on every interface
}
EXPECTED = {
    "prod core": PROD_PROBLEMS,
    "prod saas": PROD_PROBLEMS | {("HM-A02", BASE)},  # same project as prod core, same port
    "dev core": {
        ("HM-A01", DEV),  # curl in python:3.11-slim
        ("HM-D03", DEV),  # apt-get and pip install at every start
        ("HM-D04", DEV),  # __pycache__ volume list
        ("HM-D05", DEV),  # logs mounted inside the source mount
        ("HM-A02", DEV),  # same project as prod core, same port
    },
    "dev saas": {
        ("HM-D02", DEV_SAAS),  # build + image: python:3.11-slim overwrites the public tag
        ("HM-D03", DEV_SAAS),
        ("HM-D04", DEV_SAAS),
        ("HM-D05", DEV_SAAS),  # logs inside /app
        ("HM-D05", BASE),  # the base's .env mount lands inside /app: a stub in the tree
        ("HM-A01", BASE),  # the base's curl healthcheck, in the slim image
    },
}


@pytest.fixture(scope="module")
def report() -> Report:
    stacks = [
        Stack(label, mode, tuple(GUIDE / name for name in names))
        for label, (mode, names) in MODES.items()
    ]
    return checker.check(stacks)


@pytest.mark.parametrize("label", list(MODES))
def test_each_problem_of_the_guide_is_found_where_it_is_written(report: Report, label: str) -> None:
    found = {
        (f.rule_id, f.location.path.name)
        for f in counted(report)
        if f.stack == label and f.location is not None
    }
    assert EXPECTED[label] <= found


def test_the_guide_prod_mode_keeps_what_it_gets_right(report: Report) -> None:
    prod = {f.rule_id for f in counted(report) if f.stack.startswith("prod")}
    # No source mount, no reload, the .env read-only, no debug: the guide's prod claims hold.
    assert prod.isdisjoint({"HM-P01", "HM-P02", "HM-P03", "HM-P07"})


def test_check_on_the_guide_files_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(GUIDE)
    assert main(["check", "--dev", "-f", DEV]) == 1
    out = capsys.readouterr().out
    assert f"{DEV}:" in out and "HM-D03" in out and out.rstrip().splitlines()[-1].startswith("FAIL")
