"""One failing and one passing case per rule, each checked by the real Compose binary."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from audit.audit_support import DOCKERFILE, Project, counted, only, rule_ids
from hotmode.audit import checker
from hotmode.audit.catalog import load_rules
from hotmode.audit.model import Severity, Stack
from hotmode.audit.report import text as report_text

CURL = {"test": ["CMD", "curl", "-f", "http://127.0.0.1:8000/health"]}

# rule, what makes the base (prod) file fail, files of app/ to replace (None deletes).
PROD_FAILING: list[tuple[str, dict[str, Any], dict[str, str | None]]] = [
    ("HM-P01", {"volumes": ["./.env:/app/.env:ro", "../app:/app"]}, {}),
    ("HM-P01", {"volumes": ["../app/static:/app/static:ro"]}, {}),
    ("HM-P02", {"command": "uvicorn main:app --reload --port 8000"}, {}),
    ("HM-P02", {"command": ["watchfiles", "uvicorn main:app"]}, {}),
    ("HM-P03", {"volumes": ["./.env:/app/.env"]}, {}),
    ("HM-P04", {"read_only": None}, {}),
    ("HM-P04", {"tmpfs": None}, {}),
    ("HM-P05", {"user": "root"}, {}),
    ("HM-P05", {"user": None}, {"Dockerfile": "FROM python:3.12-slim\nCOPY . /app\n"}),
    ("HM-P06", {}, {"Dockerfile": "FROM python:3.12-slim\nUSER 10001\n"}),
    ("HM-P07", {"environment": {"DEBUG": "true"}}, {}),
    ("HM-P07", {"environment": {"LOG_LEVEL": "DEBUG"}}, {}),
    ("HM-P07", {"command": ["uvicorn", "main:app", "--log-level", "debug"]}, {}),
    ("HM-P08", {}, {".dockerignore": None}),
    ("HM-P08", {}, {".dockerignore": ".git\n"}),
    ("HM-P09", {"environment": {"SECRET_KEY": "${SECRET_KEY:-change_this_secret_key}"}}, {}),
    ("HM-A01", {"build": None, "image": "python:3.12-slim", "healthcheck": CURL}, {}),
    ("HM-A01", {"healthcheck": CURL}, {}),  # the Dockerfile's slim base has no curl
    ("HM-A03", {"restart": None}, {}),
    ("HM-A04", {"logging": None}, {}),
    ("HM-A04", {"logging": {"driver": "json-file"}}, {}),
    ("CL-0005", {"ports": ["8000:8000"]}, {}),
    ("HM-A05", {"env_file": [".env.missing"]}, {}),
    ("HM-A07", {"env_file": ["../app/prod.env"]}, {"prod.env": "SECRET_KEY=change-me\n"}),
    ("HM-A07", {"env_file": ["../app/prod.env"]}, {"prod.env": "DB_PASSWORD='password'\n"}),
    ("HM-A05", {"environment": {"TOKEN_FILE": "${HOTMODE_TEST_UNSET:?set it}"}}, {}),
]

# rule, what keeps the base file passing it although it differs from GOOD_PROD.
PROD_PASSING: list[tuple[str, dict[str, Any], dict[str, str | None]]] = [
    ("HM-P01", {"volumes": ["./.env:/app/.env:ro", "./data:/data"]}, {}),
    # Configuration inside the source folder, mounted read-only outside the code: not code.
    ("HM-P01", {"volumes": ["../app/configuration:/etc/app/config:ro"]}, {}),
    ("HM-P02", {"command": "uvicorn main:app --port 8000"}, {}),
    (
        "HM-P03",
        {
            "volumes": [
                {"type": "bind", "source": "./.env", "target": "/app/.env", "read_only": True}
            ]
        },
        {},
    ),
    ("HM-P04", {"tmpfs": None, "volumes": [{"type": "tmpfs", "target": "/tmp"}]}, {}),
    ("HM-P05", {"user": None}, {}),  # the Dockerfile's USER is not root
    (
        "HM-P06",
        {"build": {"context": "../app", "labels": {"org.opencontainers.image.revision": "abc"}}},
        {"Dockerfile": "FROM python:3.12-slim\n"},
    ),
    ("HM-P07", {"environment": {"DEBUG": "0", "LOG_LEVEL": "warning"}}, {}),
    ("HM-P08", {}, {"Dockerfile.dockerignore": "**/.env*\n", ".dockerignore": None}),
    ("HM-P09", {"environment": {"SECRET_KEY": "${SECRET_KEY:?set SECRET_KEY}"}}, {}),
    ("HM-A01", {"build": None, "image": "python:3.12-slim"}, {}),
    ("HM-A01", {"healthcheck": CURL}, {"Dockerfile": DOCKERFILE + "RUN apt-get install -y curl\n"}),
    (
        "HM-A03",
        {
            "restart": None,
            "deploy": {
                "restart_policy": {"condition": "on-failure"},
                "resources": {"limits": {"memory": "1G"}},
            },
        },
        {},
    ),
    ("HM-A04", {"logging": {"driver": "local"}}, {}),
    ("CL-0005", {"ports": ["127.0.0.1:8000:8000"]}, {}),
    ("HM-A05", {"env_file": [{"path": ".env.missing", "required": False}]}, {}),
    ("HM-A07", {"env_file": ["../app/prod.env"]}, {"prod.env": "SECRET_KEY=kJ8s-Qz1\nMODE=test\n"}),
]


def _apply(project: Project, app_files: dict[str, str | None]) -> None:
    for name, text in app_files.items():
        path = project.app / name
        if text is None:
            path.unlink()
        else:
            path.write_text(text)


def test_the_good_prod_file_passes_every_rule(project: Project) -> None:
    report = project.check("prod", project.prod())
    assert counted(report) == []


@pytest.mark.parametrize(("rule", "changes", "app_files"), PROD_FAILING)
def test_prod_rule_fails(
    project: Project,
    rule: str,
    changes: dict[str, Any],
    app_files: dict[str, str | None],
) -> None:
    _apply(project, app_files)
    base = project.prod(**changes)
    found = only(project.check("prod", base), rule)
    assert found, f"{rule} did not fire"
    # A placeholder secret is found at its line of the env file, the rest in the Compose file.
    where = project.app / "prod.env" if rule == "HM-A07" else base
    assert all(f.location is not None and f.location.path == where for f in found)
    assert all(f.fix and "\n" not in f.fix for f in found)


@pytest.mark.parametrize(("rule", "changes", "app_files"), PROD_PASSING)
def test_prod_rule_passes(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    rule: str,
    changes: dict[str, Any],
    app_files: dict[str, str | None],
) -> None:
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    _apply(project, app_files)
    report = project.check("prod", project.prod(**changes))
    assert rule not in rule_ids(report)


def _dev(
    image: str | None = "app:dev",
    command: str = '["uvicorn", "main:app", "--reload", "--port", "8000"]',
    volumes: tuple[str, ...] = ("../app:/app",),
) -> str:
    lines = ["services:", "  web:"]
    if image:
        lines.append(f"    image: {image}")
    lines.append(f"    command: {command}")
    lines.append("    volumes: !override" if volumes else "    volumes: !reset []")
    lines += [f"      - {volume}" for volume in volumes]
    lines.append("    read_only: false")
    if any(v.startswith("logs:") for v in volumes):
        lines += ["volumes:", "  logs: {}"]
    return "\n".join(lines) + "\n"


INSTALL = "sh -c 'pip install -r requirements.txt && uvicorn main:app --reload'"
DEV_FAILING = [
    ("HM-D01", _dev(volumes=())),
    ("HM-D01", _dev(command='["uvicorn", "main:app", "--port", "8000"]')),
    ("HM-D02", _dev(image="python:3.12-slim")),
    ("HM-D02", _dev(image=None)),  # the dev build keeps prod's tag, app:prod
    ("HM-D03", _dev(command=f'"{INSTALL}"')),
    ("HM-D03", _dev(command='["sh", "-c", "apt-get update && apt-get install -y gcc"]')),
    (
        "HM-D03",
        _dev(command="\"sh -c 'pip install -r r.txt && hotmode run main:app --reload'\""),
    ),
    ("HM-D04", _dev(volumes=("../app:/app", "/app/__pycache__", "/app/pkg/__pycache__"))),
    ("HM-D05", _dev(volumes=("../app:/app", "logs:/app/logs"))),
    ("HM-D05", _dev(volumes=("../app:/app", "./.env:/app/.env:ro"))),
]
DEV_PASSING = [
    ("HM-D01", _dev(command='["python", "-m", "hotmode", "run", "main:app", "--reload"]')),
    ("HM-D02", _dev(image="registry.example/app:dev")),
    ("HM-D03", _dev(command='"uvicorn main:app --reload"')),
    # The reload engine runs --install CMD when a dependency file changes, not at start.
    (
        "HM-D03",
        _dev(
            command='["python", "-m", "hotmode", "run", "main:app", "--reload", "--install",'
            ' "python -m pip install -r requirements.txt"]'
        ),
    ),
    ("HM-D04", _dev(volumes=("../app:/app", "/tmp/pycache"))),
    ("HM-D05", _dev(volumes=("../app:/app", "logs:/var/log/app"))),
]


def test_the_good_dev_overlay_passes_every_mode_rule(project: Project) -> None:
    report = project.check("dev", project.prod(), project.write("dev.yml", _dev()))
    assert {r for r in rule_ids(report) if r.startswith("HM-")} == set()


@pytest.mark.parametrize(("rule", "overlay"), DEV_FAILING)
def test_dev_rule_fails(project: Project, rule: str, overlay: str) -> None:
    dev = project.write("dev.yml", overlay)
    found = only(project.check("dev", project.prod(), dev), rule)
    assert found, f"{rule} did not fire"


@pytest.mark.parametrize(("rule", "overlay"), DEV_PASSING)
def test_dev_rule_passes(project: Project, rule: str, overlay: str) -> None:
    dev = project.write("dev.yml", overlay)
    assert rule not in rule_ids(project.check("dev", project.prod(), dev))


def _two_modes(project: Project, dev_name: str) -> list[Stack]:
    base = project.prod()
    dev = project.write("dev.yml", f"name: {dev_name}\n" + _dev())
    return [checker.file_stack([base], "prod"), checker.file_stack([base, dev], "dev")]


def test_modes_sharing_a_port_and_a_project_fail(project: Project) -> None:
    report = checker.check(_two_modes(project, "app"))
    found = only(report, "HM-A02")
    assert len(found) == 1
    assert found[0].stack.startswith("dev")
    assert found[0].location is not None and found[0].location.path.name == "dev.yml"


def test_modes_sharing_a_port_with_their_own_projects_pass(project: Project) -> None:
    assert "HM-A02" not in rule_ids(checker.check(_two_modes(project, "app-dev")))


def test_every_rule_has_a_failing_and_a_passing_case() -> None:
    # HM-A02 has its own tests above; HM-A06 only ever says unknown (test_audit_evidence).
    apart = {"HM-A02", "HM-A06"}
    failing = {rule for rule, *_ in PROD_FAILING} | {rule for rule, _ in DEV_FAILING} | apart
    passing = {rule for rule, *_ in PROD_PASSING} | {rule for rule, _ in DEV_PASSING} | apart
    assert set(load_rules()) <= failing
    assert set(load_rules()) <= passing


def test_rule_fixes_are_one_line() -> None:
    for registered in load_rules().values():
        assert registered.rule.fix and "\n" not in registered.rule.fix
        assert len(registered.rule.fix) <= 100


def test_a_prod_file_with_a_locally_built_tag_waives_the_digest_rule(project: Project) -> None:
    report = project.check("prod", project.prod())
    waived = [f for f in report.findings if f.rule_id == "CL-0019"]
    assert waived and all(f.suppressed for f in waived)
    pulled = project.check("prod", project.prod(build=None, image="nginx:1.27"))
    assert "CL-0019" in rule_ids(pulled)


def test_mode_rules_are_about_the_app_and_every_mode_rules_about_all(project: Project) -> None:
    base = project.prod()
    db = project.write("db.yml", "services:\n  db:\n    image: postgres:16\n")
    report = project.check("prod", base, db)
    about_db = {f.rule_id for f in counted(report) if f.service == "db"}
    assert "HM-P05" not in about_db and "HM-P04" not in about_db
    assert {"HM-A03", "HM-A04", "CL-0007"} <= about_db
    assert {f.rule_id for f in counted(report) if f.service == "web"} == set()


def test_a_writable_root_without_tmp_is_one_finding(project: Project) -> None:
    (finding,) = only(project.check("prod", project.prod(read_only=None, tmpfs=None)), "HM-P04")
    assert "no tmpfs for /tmp" in finding.message


def test_restart_and_log_rotation_are_not_asked_of_jobs_nor_in_dev(project: Project) -> None:
    job = "services:\n  migrate:\n    image: app:prod\n    command: alembic upgrade head\n"
    base = project.prod(restart=None, logging=None)
    prod = project.check("prod", base, project.write("job.yml", job))
    assert {(f.rule_id, f.service) for f in counted(prod) if f.rule_id in {"HM-A03", "HM-A04"}} == {
        ("HM-A03", "web"),
        ("HM-A04", "web"),
    }
    dev = project.check("dev", base, project.write("dev.yml", _dev()))
    assert {"HM-A03", "HM-A04"}.isdisjoint(rule_ids(dev))


ELSEWHERE = """\
services:
  pushed:
    image: acme/api:1
  elsewhere:
    build: ../checkout-elsewhere
    command: gunicorn app:app
    healthcheck:
      test: ["CMD", "curl", "-f", "http://127.0.0.1:8000/health"]
"""
MOUNTED = """\
services:
  mounted:
    image: python:3.12-slim
    command: uvicorn main:app
    volumes:
      - ./src:/app
"""


def test_rules_without_their_evidence_say_unknown_once_per_run(project: Project) -> None:
    elsewhere = project.write("elsewhere.yml", ELSEWHERE)
    mounted = project.write("mounted.yml", MOUNTED)
    stacks = [
        checker.file_stack([elsewhere], "prod", apps=("pushed", "elsewhere")),
        replace(
            checker.file_stack([elsewhere], "prod", apps=("pushed", "elsewhere")), label="again"
        ),
        checker.file_stack([elsewhere], "dev", apps=("pushed",)),
        checker.file_stack([mounted], "prod"),
        checker.file_stack([mounted], "dev"),
    ]
    report = checker.check(stacks)
    unknown = {(u.stack.split()[0], u.rule_id, u.service) for u in report.unknowns}
    assert unknown == {
        ("prod", "HM-P02", "pushed"),  # the command is the image's
        ("prod", "HM-P05", "pushed"),  # so is the user
        ("prod", "HM-P05", "elsewhere"),  # the build context is not here
        ("prod", "HM-P06", "elsewhere"),
        ("prod", "HM-P08", "elsewhere"),
        ("prod", "HM-A01", "elsewhere"),  # is curl in an image nobody can read?
        ("again", "HM-P02", "pushed"),
        ("again", "HM-P05", "pushed"),
        ("again", "HM-P05", "elsewhere"),
        ("again", "HM-P06", "elsewhere"),
        ("again", "HM-P08", "elsewhere"),
        ("again", "HM-A01", "elsewhere"),
        ("dev", "HM-A01", "elsewhere"),
        ("dev", "HM-D01", "pushed"),  # does the image's command reload?
        ("prod", "HM-P01", "mounted"),  # is ./src code? it is not here to tell
        ("dev", "HM-D01", "mounted"),
    }
    # Nothing a rule could not tell is stated as a finding (D01 has two halves: mount, reload).
    stated = {(f.rule_id, f.service) for f in counted(report) if f.rule_id != "HM-D01"}
    assert stated.isdisjoint({(rule, service) for _, rule, service in unknown})
    # The same unknown in two modes is one line, one count.
    text = report_text(report, Severity.MEDIUM, project.root)
    lines = [line for line in text.splitlines() if " unknown HM-" in line]
    assert len(lines) == 9
    assert any("[prod elsewhere.yml, again] elsewhere: not checked: " in line for line in lines)
    assert "9 unknown" in text.splitlines()[-1]


def test_data_folders_beside_a_read_only_source_mount_are_not_source(project: Project) -> None:
    """`./:/app:ro` is the source; `./data` and `./media` mounted inside it are data."""
    base = project.prod(
        volumes=["../app:/app:ro", "../app/data:/app/data", "../app/media:/app/media"]
    )
    (project.root / "app" / "data").mkdir(exist_ok=True)
    found = only(project.check("prod", base), "HM-P01")
    assert [f.message.split(" over ")[1].split(":")[0] for f in found] == ["/app"]
    beside = project.prod(volumes=["../app/src:/app/src:ro", "../app/media:/app/media"])
    found = only(project.check("prod", beside), "HM-P01")
    assert [f.message.split(" over ")[1].split(":")[0] for f in found] == ["/app/src"]
