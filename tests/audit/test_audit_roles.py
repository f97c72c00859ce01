"""Which service is the app, and which commands reload: the one matcher for dev and prod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from audit.audit_support import counted
from hotmode.audit import checker, commands
from hotmode.audit.catalog import load_rules
from hotmode.audit.model import Kind, Report
from hotmode.audit.prod import RUNS
from hotmode.audit.roles import classify

# Every form of "reloads on change" people use, as a service: command (and environment).
RELOADING: dict[str, dict[str, Any]] = {
    "uvicorn": {"command": "uvicorn main:app --reload --host 0.0.0.0"},
    "uvicorn-module": {"command": ["python", "-m", "uvicorn", "main:app", "--reload"]},
    "uvicorn-env": {"command": "uvicorn main:app", "environment": {"UVICORN_RELOAD": "true"}},
    "gunicorn": {"command": "gunicorn --reload -b 0.0.0.0:8000 app:app"},
    "gunicorn-env": {
        "command": "gunicorn app:app",
        "environment": {"GUNICORN_CMD_ARGS": "--reload"},
    },
    "hypercorn": {"command": "hypercorn --reload main:app"},
    "granian": {"command": "granian --interface asgi --reload main:app"},
    "runserver": {"command": "python manage.py runserver 0.0.0.0:8000"},
    "runserver-plus": {"command": "python manage.py runserver_plus 0.0.0.0:8000"},
    "django-admin": {"command": "django-admin runserver"},
    "fastapi-dev": {"command": "fastapi dev app/main.py --host 0.0.0.0"},
    "fastapi-run-reload": {"command": "fastapi run --reload app/main.py"},
    "flask-debug": {"command": "flask --app notes run --debug"},
    "flask-debug-first": {"command": "flask --debug run"},
    "flask-env": {"command": "flask run", "environment": {"FLASK_DEBUG": "1"}},
    "flask-reload": {"command": "flask run --reload"},
    "watchmedo": {
        "command": "watchmedo auto-restart --pattern=*.py --recursive -- python -m uvicorn main:app"
    },
    "watchfiles": {"command": ["watchfiles", "uvicorn main:app", "."]},
    "hotmode": {"command": "python -m hotmode run main:app --reload"},
    "shell": {"command": "sh -c 'python manage.py migrate && exec uvicorn main:app --reload'"},
    "poetry": {"command": "poetry run uvicorn main:app --reload"},
}
STEADY: dict[str, dict[str, Any]] = {
    "uvicorn": {"command": "uvicorn main:app --host 0.0.0.0"},
    "gunicorn": {"command": "gunicorn -w 4 app:app"},
    "daphne": {"command": "daphne -b 0.0.0.0 shop.asgi:application"},
    "runserver-noreload": {"command": "python manage.py runserver --noreload 0.0.0.0:8000"},
    "fastapi-run": {"command": "fastapi run app/main.py"},
    "fastapi-dev-no-reload": {"command": "fastapi dev --no-reload app/main.py"},
    "flask": {"command": "flask run", "environment": {"FLASK_DEBUG": "0"}},
    "flask-no-reload": {"command": "flask run --debug --no-reload"},
}


def _check(tmp_path: Path, mode: str, services: dict[str, dict[str, Any]]) -> Report:
    document = {
        "services": {
            name: {"image": "python:3.12-slim", "read_only": True, **service}
            for name, service in services.items()
        }
    }
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return checker.check([checker.file_stack([path], mode)])


def _does_not_reload(report: Report) -> set[str]:
    return {
        f.service or ""
        for f in counted(report)
        if f.rule_id == "HM-D01" and "does not reload" in f.message
    }


def test_every_reloading_server_is_refused_in_prod(tmp_path: Path) -> None:
    report = _check(tmp_path, "prod", RELOADING | {f"steady-{k}": v for k, v in STEADY.items()})
    refused = {f.service for f in counted(report) if f.rule_id == "HM-P02"}
    assert refused == set(RELOADING)
    roles = report.roles[next(iter(report.roles))]
    assert all(roles[name].kind is Kind.APP for name in RELOADING), roles


def test_every_reloading_server_counts_as_reloading_in_dev(tmp_path: Path) -> None:
    report = _check(tmp_path, "dev", RELOADING | {f"steady-{k}": v for k, v in STEADY.items()})
    assert _does_not_reload(report) == {f"steady-{name}" for name in STEADY}


def test_a_reload_in_the_dockerfile_s_command_is_found_there(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(
        'FROM python:3.12-slim\nUSER 1000\nCMD ["uvicorn", "main:app", "--reload"]\n'
    )
    path = tmp_path / "docker-compose.yml"
    path.write_text("services:\n  web:\n    build: ./app\n")
    report = checker.check([checker.file_stack([path], "prod")])
    (hit,) = [f for f in counted(report) if f.rule_id == "HM-P02"]
    assert hit.location is not None and hit.location.path == app / "Dockerfile"


def test_workers_jobs_and_companions_are_not_asked_to_reload(tmp_path: Path) -> None:
    services = {
        "api": {"command": "uvicorn main:app"},
        "beat": {"command": "celery -A proj beat"},
        "migrate": {"command": "alembic upgrade head"},
        "tests": {"command": "pytest -q"},
        "once": {"command": "python seed.py", "restart": "no"},
        "db": {"image": "postgres:16"},
    }
    report = _check(tmp_path, "dev", services)
    assert _does_not_reload(report) == {"api"}
    assert {f.service for f in counted(report) if f.rule_id.startswith("HM-D")} == {"api"}


@pytest.mark.parametrize(
    ("service", "kind", "reason"),
    [
        ({"image": "postgres:16-alpine"}, Kind.COMPANION, "postgres:16-alpine"),
        ({"image": "bitnami/rabbitmq:3"}, Kind.COMPANION, "bitnami/rabbitmq:3"),
        ({"image": "traefik:v3", "command": "--api.insecure=true"}, Kind.COMPANION, "traefik:v3"),
        ({"image": "acme/api:1", "command": "gunicorn app:app"}, Kind.APP, "runs gunicorn"),
        ({"build": {"context": "/nowhere"}}, Kind.APP, "the only service built here"),
        (
            {"image": "acme/api:1", "command": "celery -A x worker"},
            Kind.WORKER,
            "runs celery worker",
        ),
        ({"image": "acme/api:1", "command": "dramatiq app.tasks"}, Kind.WORKER, "runs dramatiq"),
        ({"image": "acme/api:1", "command": "rq worker"}, Kind.WORKER, "runs rq worker"),
        (
            {"image": "acme/api:1", "command": "python manage.py migrate"},
            Kind.JOB,
            "runs manage.py migrate",
        ),
        ({"image": "acme/api:1", "restart": "no"}, Kind.JOB, 'restart: "no", runs once'),
        ({"image": "node:20", "command": "npm run dev"}, Kind.OTHER, "runs npm, not Python"),
        ({"image": "node:20"}, Kind.OTHER, "node:20, not Python"),
        ({"image": "acme/docs:1", "command": "mkdocs serve"}, Kind.OTHER, "runs mkdocs"),
        ({"build": {"context": "/nowhere"}, "command": "vite --host"}, Kind.OTHER, "runs vite"),
        ({"image": "acme/x:1", "command": "python -m http.server 8000"}, Kind.OTHER, "http.server"),
        (
            {
                "image": "python:3.12",
                "working_dir": "/srv",
                "volumes": [{"type": "bind", "source": "/home/me/api", "target": "/srv"}],
            },
            Kind.APP,
            "runs python:3.12",
        ),
        # A pulled image alone may as well be a store or a tool as the app.
        ({"image": "acme/api:1"}, Kind.UNKNOWN, "runs the image acme/api:1; it may be the app"),
        (
            {"build": {"context": "/nowhere"}, "image": "gateway-postgres:16"},
            Kind.COMPANION,
            "gateway-postgres:16, a postgres image",
        ),
        (
            {"build": {"context": "/nowhere"}, "command": "redis-server --appendonly yes"},
            Kind.COMPANION,
            "runs redis-server",
        ),
    ],
)
def test_classify_judges_a_service_by_its_shape(
    service: dict[str, Any], kind: Kind, reason: str
) -> None:
    (role,) = classify({"s": service}).values()
    assert role.kind is kind and reason in role.reason, role


def test_the_declared_app_wins_and_other_servers_are_not_the_app() -> None:
    services = {
        "backend": {"image": "acme/api:1"},
        "admin": {"image": "acme/admin:1", "command": "gunicorn admin:app"},
        "db": {"image": "postgres:16"},
    }
    roles = classify(services, declared_app="backend")
    assert roles["backend"].kind is Kind.APP and roles["backend"].reason == "declared"
    assert roles["admin"].kind is Kind.OTHER and "the app is backend" in roles["admin"].reason
    assert roles["db"].kind is Kind.COMPANION


def test_a_worker_under_a_watcher_is_a_worker_that_reloads() -> None:
    argv = commands.words("watchmedo auto-restart -d . -p '*.py' -- celery -A proj worker")
    assert commands.worker(argv) == "celery worker"
    assert commands.reloading(argv) == "watchmedo watches files"


def _stack(tmp_path: Path, mode: str, services: dict[str, dict[str, Any]]) -> Report:
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump({"services": services}, sort_keys=False))
    return checker.check([checker.file_stack([path], mode)])


# A project where every service restarts but one tool, run by hand, and a monitoring UI: the
# tool is a job ("on demand"), the UI other. Both carry what app rules look for (DEBUG=true, a
# writable root, no source mount); only the app may be told about it.
ON_DEMAND: dict[str, dict[str, Any]] = {
    "web": {
        "image": "acme/api:1",
        "command": "gunicorn shop.wsgi",
        "restart": "always",
        "ports": ["8000:8000"],
        "environment": {"DEBUG": "true"},
    },
    "db": {"image": "postgres:16", "restart": "always"},
    "redis": {"image": "redis:7", "restart": "always"},
    "flower": {
        "image": "acme/api:1",
        "command": "celery -A shop flower",
        "restart": "always",
        "environment": {"DEBUG": "true"},
    },
    "backup": {"image": "acme/backup:2", "environment": {"DEBUG": "true"}},
}


@pytest.mark.parametrize("mode", ["prod", "dev"])
def test_app_rules_never_run_on_a_job_or_an_other(tmp_path: Path, mode: str) -> None:
    report = _stack(tmp_path, mode, ON_DEMAND)
    (roles,) = report.roles.values()
    assert roles["backup"].kind is Kind.JOB and "on demand" in roles["backup"].reason
    assert roles["flower"].kind is Kind.OTHER and roles["web"].kind is Kind.APP
    rules = load_rules()
    findings = [f for f in counted(report) if f.service]
    for finding in findings:
        registered = rules.get(finding.rule_id)  # compose-lint's rules are about every service
        if registered is not None and registered.service_check is not None:
            assert roles[finding.service or ""].kind in registered.kinds, finding
    app_rules = {i for i, r in rules.items() if r.service_check and r.kinds <= RUNS}
    by_service = {(f.rule_id, f.service) for f in findings if f.rule_id in app_rules}
    # The same evidence on the app is found: the rules ran, and the gate kept them off the rest.
    expected = {("HM-P04", "web"), ("HM-P07", "web")} if mode == "prod" else {("HM-D01", "web")}
    assert expected <= by_service
    assert not {s for _, s in by_service} & {"backup", "flower"}


def _restarting(app: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An app with no restart policy and no published port beside services that all restart."""
    return {
        "app": app,
        "db": {"image": "postgres:16", "restart": "always"},
        "redis": {"image": "redis:7", "restart": "unless-stopped"},
        "proxy": {"image": "nginx:1.27", "restart": "always", "ports": ["80:80"]},
    }


def test_running_on_demand_never_makes_the_app_a_job(tmp_path: Path) -> None:
    dockerfile = tmp_path / "app" / "Dockerfile"
    dockerfile.parent.mkdir()
    dockerfile.write_text('FROM python:3.12-slim\nCMD ["uvicorn", "main:app"]\n')
    for app, evidence in [
        ({"image": "acme/api:1", "command": "gunicorn shop.wsgi"}, "command"),
        ({"build": {"context": str(dockerfile.parent)}}, "command"),
        ({"build": {"context": str(tmp_path / "absent")}}, "only build"),
        ({"image": "ghcr.io/acme/shop:1"}, "own image"),
    ]:
        roles = classify(_restarting(app), repository="acme/shop")
        assert roles["app"].kind is Kind.APP and roles["app"].evidence == evidence, roles["app"]
    # The same service beside an app whose command says so is the tool run by hand.
    services = _restarting({"image": "acme/backup:2"})
    services["web"] = {"image": "acme/api:1", "command": "gunicorn shop.wsgi", "restart": "always"}
    assert classify(services)["app"].kind is Kind.JOB
    # One alone without a restart policy beside a single other service is not "every other".
    lone = {"tool": {"image": "acme/backup:2"}, "web": services["web"]}
    assert classify(lone)["tool"].kind is Kind.OTHER
