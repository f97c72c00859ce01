"""init's target finding on the layouts Flask and Django projects really have: two real apps read
in place (../shared/apps, skipped when absent), and minimal layouts mirroring real ones
(startproject's `config/` and project-named package, cookiecutter-django's settings package,
nickjj's Dockerfiles, a Flask factory in a package whose scripts also call it, `.flaskenv`,
a uwsgi ini file)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers import run_hotmode
from hotmode.adopt.app import app_target
from hotmode.adopt.migrations import migration_jobs
from hotmode.adopt.targets import find_target


def _apps() -> Path:
    """The real apps, read in place: ../shared/apps beside this checkout, else the workplace's."""
    beside = Path(__file__).resolve().parents[1].parent / "shared" / "apps"
    return beside if beside.is_dir() else Path("/work/shared/apps")


APPS = _apps()
STYLEGUIDE = APPS / "05-HackSoftware-Django-Styleguide-Example"
SURVEYS = APPS / "06-pamelafox-flask-surveys-container-app"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.skipif(not STYLEGUIDE.is_dir(), reason="../shared/apps is not here")
def test_the_django_styleguide_example_in_place() -> None:
    # Its Compose command is `python manage.py runserver 0.0.0.0:8000`; manage.py sets
    # config.django.base, whose WSGI_APPLICATION is config.wsgi.application.
    found = find_target(STYLEGUIDE, ["python manage.py runserver 0.0.0.0:8000"])
    assert found is not None
    assert (found.target, found.source) == ("config.wsgi:application", STYLEGUIDE)
    assert "`manage.py runserver`" in found.why
    assert "config/django/base.py" in found.said(STYLEGUIDE)


@pytest.mark.skipif(not SURVEYS.is_dir(), reason="../shared/apps is not here")
def test_the_flask_surveys_app_in_place(tmp_path: Path) -> None:
    # Compose runs `entrypoint: /code/entrypoint-dev.sh`, whose last line is
    # `flask db upgrade && gunicorn -c gunicorn.conf.py --reload app:app`.
    service = {"entrypoint": ["/code/entrypoint-dev.sh"], "environment": {}}
    notes: list[str] = []
    target, source = app_target([service], SURVEYS / "src", SURVEYS, None, notes)
    assert (target, source) == ("app:app", SURVEYS / "src")
    assert notes == [
        "target app:app: the server command `gunicorn` names app:app (in src/entrypoint-dev.sh)"
    ]
    # Without any command, Flask's own rule finds the same app in app.py.
    found = find_target(SURVEYS / "src")
    assert found is not None and found.target == "app:app"


def _startproject(folder: Path, *args: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    admin = Path(sys.executable).parent / "django-admin"
    subprocess.run([str(admin), "startproject", *args], cwd=folder, check=True, timeout=60)
    return folder


def test_django_startproject_layouts(tmp_path: Path) -> None:
    config = _startproject(tmp_path / "one", "config", ".")
    found = find_target(config)
    assert found is not None and found.target == "config.wsgi:application"
    assert found.said(config) == (
        "Django: WSGI_APPLICATION in config/settings.py (settings config.settings, from manage.py)"
    )
    # testdriven.io's django-on-docker: the project-named package, in app/, run by gunicorn.
    named = _startproject(tmp_path / "two" / "app", "hello_django", ".")
    command = "gunicorn hello_django.wsgi:application --bind 0.0.0.0:8000"
    found = find_target(named, [command])
    assert found is not None and found.target == "hello_django.wsgi:application"
    assert found.why == "the server command `gunicorn` names hello_django.wsgi:application"
    assert find_target(named, ["python manage.py runserver 0.0.0.0:8000"]).target == (  # type: ignore[union-attr]
        "hello_django.wsgi:application"
    )


def test_cookiecutter_django_settings_package(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "manage.py": 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", '
            '"config.settings.local")\n',
            "config/__init__.py": "",
            "config/settings/__init__.py": "",
            "config/settings/base.py": 'WSGI_APPLICATION = "config.wsgi.application"\n',
            "config/settings/local.py": "from .base import *  # noqa\nDEBUG = True\n",
            "config/wsgi.py": "from django.core.wsgi import get_wsgi_application\n"
            "application = get_wsgi_application()\n",
            "squarelet/users/models.py": "app = object()\n",
        },
    )
    found = find_target(root, ["/start"])
    assert found is not None and found.target == "config.wsgi:application"
    assert "config/settings/base.py" in found.said(root)
    assert "settings config.settings.local" in found.why
    # DJANGO_SETTINGS_MODULE in the service's environment is the settings module used.
    found = find_target(root, [], {"DJANGO_SETTINGS_MODULE": "config.settings.base"})
    assert found is not None and "from DJANGO_SETTINGS_MODULE" in found.why


def test_nickjj_dockerfiles_name_the_app(tmp_path: Path) -> None:
    flask = _write(
        tmp_path / "flask",
        {
            "Dockerfile": 'FROM python:3.13 AS app\nENV FLASK_APP="hello.app" \\\n'
            '  FLASK_SKIP_DOTENV="true"\n'
            'ENTRYPOINT ["/app/bin/docker-entrypoint-web"]\n'
            'CMD ["gunicorn", "-c", "python:config.gunicorn", "hello.app:create_app()"]\n',
            "bin/docker-entrypoint-web": '#!/bin/bash\nexec "$@"\n',
            "config/gunicorn.py": "bind = '0.0.0.0:8000'\n",
            "hello/__init__.py": "",
            "hello/app.py": "from flask import Flask\ndef create_app(settings_override=None):\n"
            "    return Flask(__name__)\n",
        },
    )
    found = find_target(flask)
    assert found is not None and found.target == "hello.app:create_app()"
    django = _write(
        tmp_path / "django" / "src",
        {
            "Dockerfile": 'FROM python:3.13\nCMD ["gunicorn", "-c", "python:config.gunicorn", '
            '"config.wsgi"]\n',
            "config/__init__.py": "",
            "config/gunicorn.py": "",
            "config/wsgi.py": "application = object()\n",
        },
    )
    found = find_target(django)
    assert found is not None and found.target == "config.wsgi:application"


def test_a_flask_factory_in_a_package_not_a_script_that_calls_it(tmp_path: Path) -> None:
    # CTFd's layout: the package defines create_app; export.py and serve.py are scripts that
    # call it; the image's entrypoint script runs gunicorn on 'CTFd:create_app()'.
    root = _write(
        tmp_path,
        {
            "CTFd/__init__.py": "from flask import Flask\n\ndef create_app(config='CTFd.config."
            "Config'):\n    return Flask(__name__)\n",
            "export.py": "from CTFd import create_app\napp = create_app()\n",
            "serve.py": "from CTFd import create_app\napp = create_app()\napp.run()\n",
            "Dockerfile": 'FROM python:3.11\nENTRYPOINT ["/opt/CTFd/docker-entrypoint.sh"]\n',
            "docker-entrypoint.sh": "#!/bin/sh\nexec gunicorn 'CTFd:create_app()' "
            '--bind "0.0.0.0:8000" --workers $WORKERS\n',
        },
    )
    found = find_target(root)
    assert found is not None and found.target == "CTFd:create_app()"
    assert found.said(root) == (
        "the server command `gunicorn` names CTFd:create_app() (in docker-entrypoint.sh)"
    )
    (root / "docker-entrypoint.sh").unlink()
    found = find_target(root)
    assert found is not None and found.target == "CTFd:create_app()"
    assert found.said(root) == "the factory in CTFd/__init__.py"


def test_flask_app_py_flaskenv_and_flask_run(tmp_path: Path) -> None:
    plain = _write(
        tmp_path / "plain", {"app.py": "from flask import Flask\napp = Flask(__name__)\n"}
    )
    assert find_target(plain).target == "app:app"  # type: ignore[union-attr]
    factory = _write(
        tmp_path / "factory",
        {
            ".flaskenv": "FLASK_APP=surveys:create_app\nFLASK_DEBUG=1\n",
            "surveys/__init__.py": "from flask import Flask\ndef create_app(test_config=None):\n"
            "    return Flask(__name__)\n",
        },
    )
    found = find_target(factory)
    assert found is not None and (found.target, found.why) == (
        "surveys:create_app()",
        "Flask: FLASK_APP=surveys:create_app",
    )
    found = find_target(factory, ["flask --app surveys run --debug"])
    assert found is not None and found.target == "surveys:create_app()"


def test_the_server_command_wins_over_other_candidates(tmp_path: Path) -> None:
    root = _startproject(tmp_path, "config", ".")
    _write(root, {"main.py": "from fastapi import FastAPI\napp = FastAPI()\n"})
    command = "gunicorn config.asgi:application -k uvicorn.workers.UvicornWorker"
    found = find_target(root, [command])
    assert found is not None and found.target == "config.asgi:application"
    assert find_target(root).target == "config.wsgi:application"  # type: ignore[union-attr]


def test_uwsgi_ini_and_module(tmp_path: Path) -> None:
    # healthchecks: `uwsgi /opt/healthchecks/docker/uwsgi.ini`, the ini naming hc.wsgi.
    root = _write(
        tmp_path,
        {
            "docker/uwsgi.ini": "[uwsgi]\nmaster\nmodule = hc.wsgi:application\n",
            "hc/__init__.py": "",
            "hc/wsgi.py": "application = object()\n",
        },
    )
    assert find_target(root, ["uwsgi /opt/healthchecks/docker/uwsgi.ini"]).target == (  # type: ignore[union-attr]
        "hc.wsgi:application"
    )
    assert find_target(root, ["uwsgi --http :8000 --module hc.wsgi"]).target == (  # type: ignore[union-attr]
        "hc.wsgi:application"
    )


def test_a_server_started_in_the_code_a_python_command_runs(tmp_path: Path) -> None:
    # `python -m app` whose __main__.py starts Granian (a FastAPI template), `python serve.py`
    # calling uvicorn.run: the string the server is given names the app, not the app object's
    # factory in another module.
    root = _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/__main__.py": (
                "import granian\n\nif __name__ == '__main__':\n    granian.Granian(\n"
                '        target="app.application:application",\n        port=8000,\n'
                "    ).serve()\n"
            ),
            "app/application.py": (
                "from fastapi import FastAPI\n\ndef get_app():\n    return FastAPI()\n\n"
                "application = get_app()\n"
            ),
            "serve.py": "import uvicorn\nuvicorn.run('app.other:api', port=8000)\n",
        },
    )
    found = find_target(root, ["python -m app"])
    assert found is not None and found.target == "app.application:application"
    assert "app/__main__.py" in found.said(root)
    assert find_target(root, ["python serve.py"]).target == "app.other:api"  # type: ignore[union-attr]
    # A command running code that starts no server names nothing.
    _write(root, {"app/__main__.py": "print('hello')\n"})
    assert find_target(root, ["python -m app"]) is None


def test_a_module_that_merely_assigns_app_is_not_evidence(tmp_path: Path) -> None:
    root = _write(tmp_path, {"tools/export.py": "from lib import create_app\napp = create_app()\n"})
    assert find_target(root) is None
    result = run_hotmode(root, "init", "--yes")
    assert result.returncode == 2
    assert "no app found" in result.stderr


def test_init_writes_a_django_projects_target(tmp_path: Path) -> None:
    root = _startproject(tmp_path, "config", ".")
    (root / "requirements.txt").write_text("django>=4.2\n")
    result = run_hotmode(root, "init", "--yes")
    assert result.returncode == 0, result.stderr
    declared = tomllib.loads((root / "hotmode.toml").read_text())
    assert declared["target"] == "config.wsgi:application"
    assert "target config.wsgi:application: Django: WSGI_APPLICATION in config/settings.py" in (
        result.stdout
    )


@pytest.mark.skipif(not SURVEYS.is_dir(), reason="../shared/apps is not here")
def test_flask_db_upgrade_in_the_entrypoint_script_is_proposed_as_a_job() -> None:
    jobs, notes = migration_jobs(["/code/entrypoint-dev.sh"], SURVEYS / "src")
    assert jobs == {"db-upgrade": ["python", "-m", "flask", "db", "upgrade"]}
    assert notes == [
        "[jobs.db-upgrade]: entrypoint-dev.sh runs `python -m flask db upgrade` before the app: "
        "a job, before the app in every mode"
    ]


def test_django_migrate_is_proposed_from_evidence_only(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "manage.py": "",
            "docker/entrypoint.sh": "#!/bin/sh\nset -e\npython manage.py migrate --noinput\n"
            "exec gunicorn config.wsgi:application\n",
        },
    )
    jobs, _ = migration_jobs(["/app/docker/entrypoint.sh", "gunicorn config.wsgi"], root)
    assert jobs == {"migrate": ["python", "manage.py", "migrate", "--noinput"]}
    jobs, _ = migration_jobs(
        ["sh -c 'python manage.py migrate && python manage.py runserver'"], root
    )
    assert jobs == {"migrate": ["python", "manage.py", "migrate"]}
    # A Django project whose commands only serve: no job, whatever the framework does.
    assert migration_jobs(["python manage.py runserver 0.0.0.0:8000"], root) == ({}, [])
    # A migrate service the app waits for is its job already: not proposed twice.
    taken = [["python", "manage.py", "migrate"]]
    assert migration_jobs(["/app/docker/entrypoint.sh"], root, taken=taken) == ({}, [])
