"""WSGI apps on the reload engine, end to end: Flask (object, factory) and a Django project, with
every guarantee an ASGI app has (saves served, no failed request, the last good version after a
broken edit, keep-alive connections handed over), large bodies and streamed responses."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from reload.reload_support import Poller, Server, stale_answers, write_version
from reload.wsgi_support import django_project, write_flask_app

pytestmark = pytest.mark.e2e


@pytest.fixture
def flask_dir(tmp_path: Path) -> Path:
    return write_flask_app(tmp_path / "app")


def test_a_flask_app_reloads_with_no_failed_request_and_keeps_the_last_good_version(
    flask_dir: Path, servers: list[Server]
) -> None:
    server = Server(flask_dir, "--reload", target="app:app")
    servers.append(server)
    assert server.get()["reload"] == "true"
    server.wait_for(r"app:app is a WSGI app: served through a2wsgi")
    order = ["v1", "v2", "v3"]
    getter, poster = Poller(server.port, "GET"), Poller(server.port, "POST")
    with getter, poster:
        for version in order:
            if version != "v1":
                write_version(flask_dir, version)
            for poller in (getter, poster):
                poller.wait_version(version, timeout=15)
    for poller in (getter, poster):
        assert poller.errors == []
        assert set(poller.versions()) == set(order)
        assert len(poller.ports) == 1  # one keep-alive connection, handed from worker to worker
    assert stale_answers([getter, poster], order) == []

    mark = len(server.lines)
    (flask_dir / "version.py").write_text("VERSION = 'v4'\ndef broken(:\n")
    server.wait_for(r"version\.py:2: SyntaxError: .* still serving the last good version", 15, mark)
    assert {server.get()["version"] for _ in range(10)} == {"v3"}
    write_version(flask_dir, "v4")
    server.wait_version("v4", timeout=15)
    assert server.stop() == 143


@pytest.mark.parametrize(
    ("target", "flags", "greeting"),
    [("app:create_app", ("--factory",), "hello"), ("app:create_app('surveys')", (), "surveys")],
)
def test_a_flask_factory_is_served_and_reloaded(
    flask_dir: Path, servers: list[Server], target: str, flags: tuple[str, ...], greeting: str
) -> None:
    server = Server(flask_dir, "--reload", *flags, target=target)
    servers.append(server)
    assert server.get()["greeting"] == greeting
    write_version(flask_dir, "v2")
    assert server.wait_version("v2", timeout=15)["greeting"] == greeting
    assert server.stop() == 143


def test_a_factory_named_without_the_flag_is_refused_with_the_fix(flask_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hotmode", "run", "app:create_app", "--app-dir", str(flask_dir),
         "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "app:create_app is a factory" in done.stderr
    assert "pass --factory, or write app:create_app()" in done.stderr


def test_large_bodies_and_streamed_responses(flask_dir: Path, servers: list[Server]) -> None:
    server = Server(flask_dir, "--reload", target="app:app")
    servers.append(server)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    size = 48 << 20

    def chunks() -> object:
        for _ in range(size >> 20):
            yield b"y" * (1 << 20)

    connection.request("POST", "/size", body=chunks(), headers={"Content-Length": str(size)})
    assert json.loads(connection.getresponse().read()) == {"size": size}
    connection.request("GET", "/big")
    response = connection.getresponse()
    assert response.status == 200 and len(response.read()) == 8 << 20

    connection.request("GET", "/stream")
    response = connection.getresponse()
    started = time.monotonic()
    first = response.readline()
    arrived = time.monotonic() - started
    rest = response.read().decode().splitlines()
    whole = time.monotonic() - started
    assert first == b"v1 0\n"
    assert rest == [f"v1 {i}" for i in range(1, 10)]
    assert arrived < whole - 0.5  # the first line came while the app was still producing
    connection.close()
    assert server.stop() == 143


@pytest.fixture
def django_dir(tmp_path: Path) -> Path:
    return django_project(tmp_path / "site")


def _readers(folder: Path) -> set[int]:
    path = folder / "settings-read-by"
    return {int(line) for line in path.read_text().split()} if path.exists() else set()


def test_a_django_project_as_runserver_serves_it(django_dir: Path, servers: list[Server]) -> None:
    server = Server(
        django_dir,
        "--reload",
        target="config.wsgi:application",
        env={"DJANGO_SETTINGS_MODULE": "config.settings"},  # as a dev container sets it
    )
    servers.append(server)
    served = {server.get()["pid"]}
    # The zygote rebuilt with what the first worker imported: django.contrib's models among them.
    server.wait_for(r"reloaded \(preloaded modules refreshed\)", timeout=30)
    zygotes = _zygotes(server)
    assert server.get()["notes"] == 0  # the project's own SQLite database, migrated
    status, css = server.fetch("/static/notes/site.css")
    assert (status, css) == (200, b"body { color: teal }\n")
    assert server.fetch("/admin/login/")[0] == 200
    server.wait_for(r"static files served at /static/ as runserver serves them \(DEBUG is on")
    with Poller(server.port, "POST") as poster:
        for version in ("v2", "v3"):
            write_version(django_dir, version)
            poster.wait_version(version, timeout=20)
            served.add(server.get()["pid"])
    assert poster.errors == []
    assert len(poster.ports) == 1

    mark = len(server.lines)
    views = django_dir / "notes" / "views.py"
    views.write_text(views.read_text() + "\ndef broken(:\n")
    server.wait_for(r"notes/views\.py:\d+: SyntaxError: .* still serving the last good", 20, mark)
    assert server.get()["version"] == "v3"  # a broken view is not served as a 500
    views.write_text(views.read_text().replace("\ndef broken(:\n", "\n"))
    write_version(django_dir, "v4")
    served.add(server.wait_version("v4", timeout=20)["pid"])

    said = [line for line in server.lines if "saves import the whole app" in line]
    assert len(said) == 1 and "Django sets up its settings and app registry" in said[0]
    # Workers read the project's settings; the zygotes hold Django imported, not set up.
    zygotes |= _zygotes(server)
    assert zygotes
    assert _readers(django_dir) >= served
    assert not _readers(django_dir) & zygotes
    assert server.stop() == 143


def _zygotes(server: Server) -> set[int]:
    """The zygotes: the supervisor's own children started as one (its workers are theirs)."""
    children = psutil.Process(server.process.pid).children()
    return {p.pid for p in children if "zygote" in p.cmdline()}


def _settings(folder: Path, name: str, text: str) -> None:
    (folder / "config" / f"{name}.py").write_text(f"from config.settings import *\n{text}")


def test_django_settings_errors_are_named(django_dir: Path, servers: list[Server]) -> None:
    _settings(django_dir, "closed", "DEBUG = False\nALLOWED_HOSTS = []\n")
    done = subprocess.run(
        [sys.executable, "-m", "hotmode", "run", "config.wsgi:application", "--app-dir",
         str(django_dir), "--port", "0"],
        capture_output=True, text=True, timeout=60,
        env={**_environ(), "DJANGO_SETTINGS_MODULE": "config.closed"},
    )  # fmt: skip
    assert done.returncode != 0
    assert "DEBUG is off and ALLOWED_HOSTS is empty in config.closed" in done.stderr

    _settings(django_dir, "hosts", "DEBUG = False\nALLOWED_HOSTS = ['app.example']\n")
    server = Server(
        django_dir,
        target="config.wsgi:application",
        env={"DJANGO_SETTINGS_MODULE": "config.hosts"},
    )
    servers.append(server)
    assert server.fetch()[0] == 400
    server.wait_for(r"Django answered 400: Invalid HTTP_HOST header: '127\.0\.0\.1:\d+'.*ALLOWED")
    assert server.stop() == 143


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
