"""`hotmode up --native --dev` with WSGI apps and their database: a Flask app (a factory, its
SQLite tables made by a declared job, `flask init-db`) and a Django project (laid out by
startproject, `manage.py migrate` as a declared job and through `hotmode exec`): a save served,
a broken save leaving the last good version serving, `down` leaving nothing. And native prod: a
Flask factory in a package and a Django project served by prod's uvicorn through its WSGI
interface, from `up --native --prod` and from `switch --prod` out of dev, with no reloader."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

from helpers import commit, free_port, git, run_hotmode, wait_until
from native_support import pid_alive
from reload.wsgi_support import FLASK_PACKAGE, django_project

pytestmark = pytest.mark.e2e

FLASK_APP = """\
import os, sqlite3
import click
from flask import Flask
from version import VERSION


def create_app():
    app = Flask(__name__)
    database = os.environ["NOTES_DB"]

    @app.get("/")
    def index():
        with sqlite3.connect(database) as db:
            count = db.execute("select count(*) from notes").fetchone()[0]
        return {"version": VERSION, "notes": count, "pid": os.getpid()}

    @app.cli.command("init-db")
    def init_db():
        with sqlite3.connect(database) as db:
            db.execute("create table if not exists notes (text)")
            db.execute("insert into notes values ('first')")
        click.echo("notes table made")

    return app
"""

PROD_DECLARATION = """\
name = "{name}"
source = "app"
target = "{target}"
port = {port}
requirements = "requirements.txt"
"""

DECLARATION = (
    PROD_DECLARATION
    + """
[dev]
env = {{ DEBUG = "true", {env} }}

[jobs.{job}]
command = {command}
"""
)


def _get(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as response:
            data: dict[str, object] = json.loads(response.read())
            return data
    except (OSError, ValueError):
        return None


def _declare(root: Path, port: int, declaration: str = DECLARATION, **values: str) -> None:
    (root / "app" / "requirements.txt").write_text("flask\ndjango\n")
    (root / "hotmode.toml").write_text(declaration.format(port=port, **values))
    git(root, "init", "-q")
    commit(root, "init")


def _serve_save_and_broken_save(root: Path, port: int, edited: Path) -> None:
    up = run_hotmode(root, "up", "--native", "--dev", "--detach", timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    first = wait_until(lambda: _get(port), 60)
    assert isinstance(first, dict) and first["version"] == "v1"
    (root / "app" / "version.py").write_text("VERSION = 'v2'\n")
    wait_until(lambda: (_get(port) or {}).get("version") == "v2", 30)
    edited.write_text(edited.read_text() + "\ndef broken(:\n")
    log = root / ".hotmode"
    wait_until(
        lambda: any("still serving the last good version" in p.read_text(errors="replace")
                    for p in log.rglob("*.log")),
        30,
    )  # fmt: skip
    for _ in range(5):
        assert (_get(port) or {}).get("version") == "v2"
    edited.write_text(edited.read_text().replace("\ndef broken(:\n", "\n"))
    (root / "app" / "version.py").write_text("VERSION = 'v3'\n")
    wait_until(lambda: (_get(port) or {}).get("version") == "v3", 30)


def test_a_flask_factory_with_its_database_in_native_dev(tmp_path: Path) -> None:
    root, port = tmp_path / "notes", free_port()
    (root / "app").mkdir(parents=True)
    (root / "app" / "app.py").write_text(FLASK_APP)
    (root / "app" / "version.py").write_text("VERSION = 'v1'\n")
    _declare(
        root,
        port,
        name="flask-notes",
        target="app:create_app()",
        env=f'NOTES_DB = "{tmp_path / "notes.db"}"',
        job="init-db",
        command='["python", "-m", "flask", "--app", "app:create_app", "init-db"]',
    )
    try:
        _serve_save_and_broken_save(root, port, root / "app" / "app.py")
        assert (_get(port) or {}).get("notes") == 1  # the job made the table and its row
        pid = int(json.loads((root / ".hotmode" / "state.json").read_text())["server"]["pid"])
    finally:
        down = run_hotmode(root, "down", "--native")
    assert down.returncode == 0, down.stderr
    wait_until(lambda: not pid_alive(pid), 10)


def test_a_django_project_with_migrate_as_a_job_and_through_exec(tmp_path: Path) -> None:
    root, port = tmp_path / "site", free_port()
    app = django_project(root / "app")
    (app / "db.sqlite3").unlink()  # made again by the declared job
    (app / "version.py").write_text("VERSION = 'v1'\n")
    _declare(
        root,
        port,
        name="django-site",
        target="config.wsgi:application",
        env='DJANGO_SETTINGS_MODULE = "config.settings"',
        job="migrate",
        command='["python", "manage.py", "migrate", "--noinput"]',
    )
    try:
        _serve_save_and_broken_save(root, port, app / "notes" / "views.py")
        assert (_get(port) or {}).get("notes") == 0  # the tables the job made
        # The interpreter named in full: which one a bare `python` is, is issue 30's to settle.
        shown = run_hotmode(root, "exec", "--", sys.executable, "manage.py", "showmigrations")
        assert shown.returncode == 0, shown.stderr
        assert "[X] 0001_initial" in shown.stdout
    finally:
        down = run_hotmode(root, "down", "--native")
    assert down.returncode == 0, down.stderr


def _server_pid(root: Path) -> int:
    return int(json.loads((root / ".hotmode" / "state.json").read_text())["server"]["pid"])


def _down(root: Path, pid: int | None) -> None:
    down = run_hotmode(root, "down", "--native")
    assert down.returncode == 0, down.stderr
    if pid is not None:
        wait_until(lambda: not pid_alive(pid), 10)


def _served_in_prod(root: Path, port: int) -> dict[str, object]:
    served = wait_until(lambda: _get(port), 60)
    assert isinstance(served, dict)
    state = json.loads((root / ".hotmode" / "state.json").read_text())
    assert state["mode"] == "prod"
    argv = Path(f"/proc/{state['server']['pid']}/cmdline").read_bytes().split(b"\0")
    assert b"--reload" not in argv and b"wsgi" in argv  # uvicorn's WSGI interface, no reloader
    return served


def test_a_flask_factory_in_a_package_serves_in_native_prod(tmp_path: Path) -> None:
    root, port = tmp_path / "notes", free_port()
    (root / "app" / "notes").mkdir(parents=True)
    (root / "app" / "notes" / "__init__.py").write_text(FLASK_PACKAGE)
    _declare(root, port, PROD_DECLARATION, name="flask-prod", target="notes:create_app()")
    pid = None
    try:
        up = run_hotmode(root, "up", "--native", "--prod", "--detach", timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        pid = _server_pid(root)
        assert _served_in_prod(root, port) == {"version": "v1", "mode": "prod"}
    finally:
        _down(root, pid)


def test_a_django_project_switched_from_dev_to_prod_serves(tmp_path: Path) -> None:
    root, port = tmp_path / "site", free_port()
    django_project(root / "app")
    _declare(root, port, PROD_DECLARATION, name="django-prod", target="config.wsgi:application")
    pid = None
    try:
        up = run_hotmode(root, "up", "--native", "--dev", "--detach", timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        assert (wait_until(lambda: _get(port), 60) or {}).get("version") == "v1"
        switched = run_hotmode(root, "switch", "--native", "--prod", timeout=180)
        assert switched.returncode == 0, switched.stdout + switched.stderr
        pid = _server_pid(root)
        served = _served_in_prod(root, port)
        assert served["version"] == "v1" and served["notes"] == 0
    finally:
        _down(root, pid)
