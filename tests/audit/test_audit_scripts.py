"""The reload rules read the start script the Dockerfile copies into the image.

cookiecutter-django's dev `compose/local/django/start` runs `manage.py runserver` (or `uvicorn
--reload`), its prod `compose/production/django/start` runs gunicorn; the compose files say only
`command: /start`. A script whose branches disagree leaves reloading open, and the check says
so. Small trees on disk here; the real layouts are in `test_audit_corpus`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hotmode.audit import checker
from hotmode.audit.build import Copy
from hotmode.audit.model import Report
from hotmode.audit.scripts import endings

DOCKERFILE = (
    "FROM python:3.12-slim\nUSER 1000\nWORKDIR /app\n"
    "COPY ./compose/django/start /start\nCOPY ./compose/django/worker/start /start-worker\n"
    "COPY . /app\n"
)
RUNSERVER = "#!/bin/bash\nset -o errexit\npython manage.py migrate\n"
RUNSERVER += "exec python manage.py runserver_plus 0.0.0.0:8000\n"
GUNICORN = "#!/bin/bash\npython manage.py collectstatic --noinput\n"
GUNICORN += "exec gunicorn config.wsgi --bind 0.0.0.0:5000 --chdir=/app\n"
UVICORN_RELOAD = "#!/bin/bash\nexec uvicorn config.asgi:application --host 0.0.0.0 --reload\n"
EITHER = (
    '#!/bin/sh\npython manage.py migrate\nif [ "$DEBUG" ]; then\n'
    "  python manage.py runserver 0.0.0.0:8000\nelse\n  gunicorn config.wsgi\nfi\n"
)
WORKER = "#!/bin/bash\nexec celery -A config.celery_app worker -l INFO\n"


def _check(tmp_path: Path, mode: str, start: str) -> Report:
    for name, text in {
        "Dockerfile": DOCKERFILE,
        "compose/django/start": start,
        "compose/django/worker/start": WORKER,
        "manage.py": "import django\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    build = {"context": ".", "dockerfile": "./Dockerfile"}
    services = {
        "django": {
            "build": build,
            "image": "shop_django",
            "command": "/start",
            "volumes": [".:/app:z"],
            "ports": ["8000:8000"],
        },
        "worker": {"build": build, "image": "shop_worker", "command": "/start-worker"},
        "postgres": {"image": "postgres:16"},
    }
    path = tmp_path / "local.yml"
    path.write_text(yaml.safe_dump({"services": services}, sort_keys=False))
    return checker.check([checker.file_stack([path], mode)])


def _said(report: Report, rule: str) -> list[tuple[str, bool]]:
    """What a rule said about the app (its message, and whether it is an unknown)."""
    found = [(f.message, False) for f in report.findings if f.rule_id == rule]
    return found + [(u.reason, True) for u in report.unknowns if u.rule_id == rule]


def _reload(said: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    return [(message, unknown) for message, unknown in said if "reload" in message]


def test_a_start_script_that_runs_runserver_reloads_in_dev(tmp_path: Path) -> None:
    report = _check(tmp_path, "dev", RUNSERVER)
    (roles,) = report.roles.values()
    assert roles["django"].is_app and roles["worker"].kind.value == "worker"
    assert _reload(_said(report, "HM-D01")) == []


def test_a_start_script_that_runs_gunicorn_does_not_reload(tmp_path: Path) -> None:
    dev = _check(tmp_path, "dev", GUNICORN)
    ((message, unknown),) = _reload(_said(dev, "HM-D01"))
    assert not unknown and "does not reload" in message
    assert "/start (compose/django/start)" in message
    prod = _check(tmp_path, "prod", GUNICORN)
    assert _said(prod, "HM-P02") == []


def test_a_start_script_that_reloads_is_refused_in_prod(tmp_path: Path) -> None:
    report = _check(tmp_path, "prod", UVICORN_RELOAD)
    ((message, unknown),) = _said(report, "HM-P02")
    assert not unknown
    assert "/start (compose/django/start)" in message and "uvicorn --reload" in message


@pytest.mark.parametrize(("mode", "rule"), [("dev", "HM-D01"), ("prod", "HM-P02")])
def test_a_script_that_reloads_in_one_branch_only_is_said_to_be_open(
    tmp_path: Path, mode: str, rule: str
) -> None:
    report = _check(tmp_path, mode, EITHER)
    ((message, unknown),) = _reload(_said(report, rule))
    assert unknown
    assert "some of its branches only" in message and "gunicorn" in message


def test_a_script_s_endings_are_each_branch_s_command() -> None:
    assert endings(EITHER) == [
        ["python", "manage.py", "runserver", "0.0.0.0:8000"],
        ["gunicorn", "config.wsgi"],
    ]
    one_line = 'if [ -n "$X" ]; then exec a --reload; elif [ "$Y" ]; then exec b; fi\nexit 1\n'
    assert endings(one_line) == [["exec", "a", "--reload"], ["exec", "b"]]
    # Set-up before the end is not what the script runs.
    assert endings(GUNICORN) == [["exec", *GUNICORN.splitlines()[-1].split()[1:]]]


def test_files_copied_together_into_a_folder_land_by_their_own_names() -> None:
    copy = Copy(("docker/entrypoint-beat.sh", "docker/entrypoint-uwsgi.sh"), "//")
    assert copy.source_of("/entrypoint-uwsgi.sh") == "docker/entrypoint-uwsgi.sh"
    assert copy.source_of("/entrypoint-beat.sh") == "docker/entrypoint-beat.sh"
    assert Copy(("config",), "/etc/app/").source_of("/etc/app/a.ini") == "config/a.ini"


def test_a_script_run_from_the_mounted_source_is_read_from_the_repository(tmp_path: Path) -> None:
    """Ghostwriter's dev: `command: /bin/sh /app/compose/django/start` with `.:/app`: the mount,
    not the image, holds the script."""
    (tmp_path / "Dockerfile").write_text("FROM python:3.12-slim\nUSER 1000\n")
    (tmp_path / "compose/django").mkdir(parents=True)
    (tmp_path / "compose/django/start").write_text(UVICORN_RELOAD)
    service = {
        "build": {"context": "."},
        "command": "/bin/sh /app/compose/django/start",
        "volumes": [".:/app:z"],
    }
    path = tmp_path / "local.yml"
    path.write_text(yaml.safe_dump({"services": {"django": service}}))
    dev = checker.check([checker.file_stack([path], "dev")])
    assert _reload(_said(dev, "HM-D01")) == []
    prod = checker.check([checker.file_stack([path], "prod")])
    ((message, unknown),) = _said(prod, "HM-P02")
    assert not unknown and "compose/django/start" in message
    # Mounted from outside the build context, it is not read.
    service["volumes"] = [f"{tmp_path.parent}:/app"]
    path.write_text(yaml.safe_dump({"services": {"django": service}}))
    dev = checker.check([checker.file_stack([path], "dev")])
    ((message, unknown),) = _reload(_said(dev, "HM-D01"))
    assert unknown and "cannot see the command" in message
