"""Which service is the app, and which commands reload: the one matcher for dev and prod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from audit.audit_support import counted
from hotmode.audit import checker, commands
from hotmode.audit.model import Kind, Report
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
