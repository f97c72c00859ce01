"""Real WSGI apps for the reload engine's end-to-end tests: a Flask app (object and factory) and a
Django project laid out by Django's own `startproject`, with a model, a view, a static file and
its SQLite database migrated by `manage.py migrate`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FLASK_APP = """\
import os, time
from flask import Flask, Response, request
from version import VERSION

def create_app(greeting="hello"):
    app = Flask(__name__)

    @app.route("/", methods=["GET", "POST"])
    def index():
        return {"version": VERSION, "pid": os.getpid(), "greeting": greeting,
                "reload": os.environ.get("HOTMODE_RELOAD"),
                "echo": request.get_data().decode() or None}

    @app.post("/size")
    def size():
        total = 0
        while chunk := request.stream.read(1 << 16):
            total += len(chunk)
        return {"size": total}

    @app.get("/big")
    def big():
        return Response(b"x" * (8 << 20), mimetype="application/octet-stream")

    @app.get("/stream")
    def stream():
        def lines():
            for i in range(10):
                yield f"{VERSION} {i}\\n"
                time.sleep(0.1)
        return Response(lines(), mimetype="text/plain")

    return app

app = create_app()
"""

DJANGO_MODELS = """\
from django.db import models

class Note(models.Model):
    text = models.CharField(max_length=100)
"""

DJANGO_VIEWS = """\
import os
from django.http import JsonResponse
from notes.models import Note
from version import VERSION

def index(request):
    return JsonResponse({"version": VERSION, "pid": os.getpid(), "notes": Note.objects.count(),
                         "echo": request.body.decode() or None})
"""

DJANGO_URLS = """\
from django.contrib import admin
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from notes.views import index

urlpatterns = [path("admin/", admin.site.urls), path("", csrf_exempt(index))]
"""

# Appended to the settings startproject writes: each process that reads them says so.
SETTINGS_MARK = """
import os as _os
with open(_os.path.join(BASE_DIR, "settings-read-by"), "a") as _file:
    _file.write(f"{_os.getpid()}\\n")
"""


def write_flask_app(folder: Path, version: str = "v1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(FLASK_APP)
    (folder / "version.py").write_text(f"VERSION = {version!r}\n")
    return folder


# A Flask factory in a package, as prod serves it (`notes:create_app()`).
FLASK_PACKAGE = """\
import os
from flask import Flask


def create_app():
    app = Flask(__name__)

    @app.get("/")
    def index():
        return {"version": "v1", "mode": os.environ["HOTMODE_MODE"]}

    return app
"""


def django_project(folder: Path) -> Path:
    """A project as `django-admin startproject config .` lays it out, with an app `notes` (a
    model, a view, a static file) and its database migrated."""
    folder.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    run = {"cwd": folder, "check": True, "capture_output": True, "timeout": 120}
    subprocess.run([str(bin_dir / "django-admin"), "startproject", "config", "."], **run)
    subprocess.run([sys.executable, "manage.py", "startapp", "notes"], **run)
    (folder / "notes" / "models.py").write_text(DJANGO_MODELS)
    (folder / "notes" / "views.py").write_text(DJANGO_VIEWS)
    (folder / "config" / "urls.py").write_text(DJANGO_URLS)
    (folder / "version.py").write_text("VERSION = 'v1'\n")
    static = folder / "notes" / "static" / "notes"
    static.mkdir(parents=True)
    (static / "site.css").write_text("body { color: teal }\n")
    settings = folder / "config" / "settings.py"
    text = settings.read_text()
    installed = "'django.contrib.staticfiles',"
    if installed not in text:
        installed = installed.replace("'", '"')
    settings.write_text(text.replace(installed, f"{installed}\n    'notes',") + SETTINGS_MARK)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    subprocess.run([sys.executable, "manage.py", "makemigrations", "notes"], env=env, **run)
    subprocess.run([sys.executable, "manage.py", "migrate"], env=env, **run)
    (folder / "settings-read-by").unlink()
    return folder
