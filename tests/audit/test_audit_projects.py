"""`check -f` on file sets written to the patterns of real Python backends (tests/audit/projects).

Django (gunicorn, runserver, celery worker and beat, a migration job), Flask (an API run from a
pushed image, an rq worker whose build context is elsewhere, Flask debug from an env file) and
FastAPI (`fastapi run|dev`, a test runner, a node frontend) beside postgres, redis, nginx and
traefik. None of their git-ignored env files is here, and their required variables are unset,
as in a clean checkout or CI. Each case asserts every service's role and hotmode's verdict on it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from audit.audit_support import counted
from hotmode.audit import checker
from hotmode.audit.catalog import load_rules
from hotmode.audit.model import Location, Report
from hotmode.audit.report import SCHEMA
from hotmode.cli import main

PROJECTS = Path(__file__).parent / "projects"
SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
BASE, DEV = "docker-compose.yml", "docker-compose.dev.yml"
REQUIRED = ("SECRET_KEY", "DATABASE_URL", "API_PORT")

CASES = {
    "django prod": ("prod", "django-shop", (BASE,)),
    "django dev": ("dev", "django-shop", (BASE, DEV)),
    "django runserver in prod": ("prod", "django-shop", (BASE, "docker-compose.runserver.yml")),
    "flask prod": ("prod", "flask-notes", (BASE,)),
    "flask dev": ("dev", "flask-notes", (BASE, DEV)),
    "fastapi prod": ("prod", "fastapi-orders", (BASE,)),
    "fastapi dev": ("dev", "fastapi-orders", (BASE, DEV)),
    "fastapi dev in prod": ("prod", "fastapi-orders", (BASE, "docker-compose.fastapi-dev.yml")),
}
ROLES = {
    "django-shop": {
        "web": "app",
        "worker": "worker",
        "beat": "worker",
        "migrate": "job",
        "db": "companion",
        "redis": "companion",
        "nginx": "companion",
    },
    "flask-notes": {"api": "app", "worker": "worker", "redis": "companion"},
    "fastapi-orders": {
        "api": "app",
        "db": "companion",
        "proxy": "companion",
        "frontend": "other",
    },
}
# Per case and service: hotmode's counted findings, and its unknowns (rule ids).
A04, A05 = "HM-A04", "HM-A05"
DJANGO_PROD = {
    "web": ({A04, A05, "HM-P04", "HM-P06"}, set()),
    "worker": ({A04, A05, "HM-P04", "HM-P06"}, set()),  # built from the same Dockerfile
    "beat": ({A04, A05, "HM-P04"}, set()),  # runs the image web builds: not built itself
    "migrate": ({A05}, set()),  # a job: no restart policy or log rotation asked
    "db": ({A04, A05}, set()),
    "redis": ({A04}, set()),
    "nginx": ({A04}, set()),  # its read-only config mount is no source mount
}
FASTAPI_PROD = {
    "api": ({A04, A05}, set()),  # read-only, non-root, labelled: only the missing .env
    "db": ({A04}, set()),
    "proxy": ({A04}, set()),
    "frontend": ({A04}, set()),  # node: not the Python app
}
VERDICTS: dict[str, dict[str, tuple[set[str], set[str]]]] = {
    "django prod": DJANGO_PROD,
    "django dev": {
        "web": ({A05}, set()),  # runserver reloads; the checkout is mounted
        "worker": ({A05}, set()),  # watchmedo: a worker, never asked to "reload as a server"
        "beat": ({A05}, set()),
        "migrate": ({A05}, set()),
        "db": ({A05}, set()),
        "redis": (set(), set()),
        "nginx": (set(), set()),
    },
    "django runserver in prod": DJANGO_PROD
    | {"web": ({A04, A05, "HM-P04", "HM-P06", "HM-P02"}, set())},
    "flask prod": {
        # FLASK_DEBUG=1 comes from notes.env; the user comes from a pushed image: unknown.
        "api": ({A04, A05, "HM-P04", "HM-P07"}, {"HM-P05"}),
        # Its build context is another checkout: nothing about its image is stated.
        "worker": ({A04, "HM-P04"}, {"HM-P05", "HM-P06", "HM-P08"}),
        "redis": ({A04}, set()),
    },
    "flask dev": {"api": ({A05}, set()), "worker": (set(), set()), "redis": (set(), set())},
    "fastapi prod": FASTAPI_PROD,
    "fastapi dev": {
        "api": ({A05}, set()),  # fastapi dev reloads
        "tests": (set(), set()),  # a test runner is a job
        "db": (set(), set()),
        "proxy": (set(), set()),
        "frontend": (set(), set()),
    },
    "fastapi dev in prod": FASTAPI_PROD | {"api": ({A04, A05, "HM-P02"}, set())},
}


@pytest.fixture(scope="module")
def report() -> Report:
    stacks = []
    for label, (mode, project, files) in CASES.items():
        stack = checker.file_stack([PROJECTS / project / name for name in files], mode)
        stacks.append(replace(stack, label=label))
    with pytest.MonkeyPatch.context() as patch:
        for name in REQUIRED:
            patch.delenv(name, raising=False)
        # Any exit-2 error would raise here: every valid set lints without its env files.
        return checker.check(stacks)


def _hotmode(report: Report, label: str, service: str) -> tuple[set[str], set[str]]:
    found = {
        f.rule_id
        for f in counted(report)
        if f.stack == label and f.service == service and f.tool == "hotmode"
    }
    unknown = {u.rule_id for u in report.unknowns if u.stack == label and u.service == service}
    return found, unknown


@pytest.mark.parametrize("label", list(CASES))
def test_each_service_is_judged_and_given_its_verdict(report: Report, label: str) -> None:
    _, project, _ = CASES[label]
    roles = {name: role.kind.value for name, role in report.roles[label].items()}
    expected_roles = ROLES[project] | ({"tests": "job"} if label == "fastapi dev" else {})
    assert roles == expected_roles
    verdicts = {service: _hotmode(report, label, service) for service in roles}
    assert verdicts == VERDICTS[label]


def test_no_app_rule_fires_on_a_companion_or_another_service(report: Report) -> None:
    rules = load_rules()
    for finding in counted(report):
        if finding.tool != "hotmode" or finding.service is None:
            continue
        role = report.roles[finding.stack][finding.service]
        if role.kind.value in {"companion", "other"}:
            assert not finding.rule_id.startswith(("HM-P", "HM-D")), finding
        assert role.kind in rules[finding.rule_id].kinds or finding.rule_id == A05, finding


def test_env_file_values_are_attributed_to_the_env_file(report: Report) -> None:
    (debug,) = [f for f in counted(report) if f.stack == "flask prod" and f.rule_id == "HM-P07"]
    assert debug.location == Location(PROJECTS / "flask-notes" / "notes.env", 2)
    assert debug.message == "FLASK_DEBUG=1 in prod"


def test_missing_env_files_and_unset_variables_are_named_as_findings(report: Report) -> None:
    base = PROJECTS / "fastapi-orders" / BASE
    found = {
        (f.message.split(":")[0], f.location.line if f.location else None)
        for f in counted(report)
        if f.stack == "fastapi prod" and f.rule_id == A05
    }
    assert found == {
        ("env file .env is not here", 12),
        ("required variable DATABASE_URL is not set", 14),
        ("required variable API_PORT is not set", 16),
    }
    assert all(
        f.location is not None and f.location.path == base
        for f in counted(report)
        if f.stack == "fastapi prod" and f.rule_id == A05
    )


def test_a_required_secret_is_not_called_a_literal(report: Report) -> None:
    (secret,) = [
        f
        for f in report.findings
        if f.stack == "flask prod" and f.rule_id == "CL-0020" and "SECRET_KEY" in f.message
    ]
    assert secret.suppressed and "environment" in secret.suppressed


def test_the_reloading_server_is_refused_in_prod_where_it_is_written(report: Report) -> None:
    for label, overlay, why in (
        ("django runserver in prod", "docker-compose.runserver.yml", "runserver"),
        ("fastapi dev in prod", "docker-compose.fastapi-dev.yml", "fastapi dev"),
    ):
        (hit,) = [f for f in counted(report) if f.stack == label and f.rule_id == "HM-P02"]
        assert hit.location is not None and hit.location.path.name == overlay
        assert why in hit.message


def test_the_cli_reports_roles_unknowns_and_exits_0_or_1_without_env_files(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in REQUIRED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(PROJECTS / "flask-notes")
    assert main(["check", "-f", BASE, "--fail-on", "high"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "services [prod docker-compose.yml]: app: api (runs gunicorn); "
        "worker: worker (runs rq worker); companion: redis (redis:7)"
    )
    unknown = [line for line in out if " unknown " in line]
    assert len(unknown) == 4 and all("not checked: " in line for line in unknown)
    assert out[-1].startswith("PASS:") and "4 unknown" in out[-1]

    assert main(["check", "-f", BASE, "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(document)
    assert document["summary"]["unknown"] == 4
    assert document["modes"][0]["services"]["redis"] == {"role": "companion", "reason": "redis:7"}

    assert main(["check", "-f", BASE, "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    notes = [r for r in sarif["runs"][0]["results"] if r["properties"].get("verdict")]
    assert len(notes) == 4 and {r["level"] for r in notes} == {"note"}


def test_without_dev_or_prod_the_files_names_choose_the_mode(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.chdir(PROJECTS / "flask-notes")
    for files, mode in (([BASE, DEV], "dev"), ([BASE], "prod"), ([BASE, DEV, "--prod"], "prod")):
        main(["check", *(f if f.startswith("--") else f"-f{f}" for f in files)])
        first = capsys.readouterr().out.splitlines()[0]
        assert first.startswith(f"services [{mode} docker-compose.yml"), (files, first)


def test_a_base_file_with_only_a_prod_file_beside_it_is_devs(tmp_path: Path) -> None:
    from hotmode.adopt.old import named_mode

    base = tmp_path / "docker-compose.yml"
    base.write_text("services: {}\n")
    assert named_mode([base]) is None
    (tmp_path / "docker-compose.prod.yml").write_text("services: {}\n")
    assert named_mode([base]) == "dev"  # the team's prod is the file beside it
    assert named_mode([base, tmp_path / "docker-compose.prod.yml"]) == "prod"
    (tmp_path / "docker-compose.dev.yml").write_text("services: {}\n")
    assert named_mode([base]) is None  # a dev file of its own: the base is not dev's alone


def test_app_names_the_app_and_an_unknown_name_is_bad_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.chdir(PROJECTS / "flask-notes")
    main(["check", "-f", BASE, "--app", "worker", "--format", "json"])
    services = json.loads(capsys.readouterr().out)["modes"][0]["services"]
    assert services["worker"] == {"role": "app", "reason": "declared"}
    assert services["api"]["role"] == "other"
    assert main(["check", "-f", BASE, "--app", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--app nope" in err and "api, redis, worker" in err


def test_a_v1_file_is_named_as_one(capsys: pytest.CaptureFixture[str]) -> None:
    path = PROJECTS / "legacy-v1" / BASE
    assert main(["check", "-f", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: a Compose file in the v1 format" in err
    assert "move the services under `services:`" in err and len(err.splitlines()) == 1


def test_files_pulled_in_by_extends_and_include_lose_their_env_files_too(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    common = tmp_path / "common" / "base.yml"
    common.write_text(
        "services:\n  base:\n    image: acme/api:1\n    env_file: ../.env.common\n"
        "    command: gunicorn app:app\n    volumes:\n      - ./conf:/etc/api:ro\n"
    )
    extended = tmp_path / "docker-compose.yml"
    extended.write_text(
        "services:\n  web:\n    extends:\n      file: common/base.yml\n      service: base\n"
    )
    included = tmp_path / "included.yml"
    included.write_text("include:\n  - common/base.yml\n")
    for path, service in ((extended, "web"), (included, "base")):
        report = checker.check([checker.file_stack([path], "prod")])
        assert report.roles[f"prod {path.name}"][service].kind.value == "app"
        (missing,) = [f for f in counted(report) if f.rule_id == A05]
        assert missing.service == service and missing.location == Location(common, 4)
