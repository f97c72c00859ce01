"""The two realistic apps the WSGI bench runs, generated into a folder: a Flask shop (an app
factory in a package, four blueprints, Flask-SQLAlchemy models in four modules, Jinja templates)
and a Django site (`config/` as startproject lays it out, four apps with 32 models in all, each
registered in the admin, templates, SQLite migrated). Each answers `GET /greeting` with the
GREETING of one view module: the module the bench edits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

AREAS = ("catalog", "orders", "people", "billing")
MODELS_PER_AREA = 8
GREETING_FILE = {"flask": "shop/views/catalog.py", "django": "catalog/views.py"}


_GREETING_VIEW = (
    "GREETING = 'hello'\n\n\ndef greeting(request):\n    return HttpResponse(GREETING)\n\n"
)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _model_names(area: str) -> list[str]:
    return [f"{area.capitalize()}Item{i}" for i in range(MODELS_PER_AREA)]


def flask_shop(root: Path) -> Path:
    """The Flask shop: `wsgi:app` (an object built by `shop.create_app()`)."""
    files = {
        "wsgi.py": "from shop import create_app\n\napp = create_app()\n",
        "shop/extensions.py": "from flask_sqlalchemy import SQLAlchemy\n\ndb = SQLAlchemy()\n",
        "shop/__init__.py": (
            "import os\nfrom flask import Flask\nfrom shop.extensions import db\n\n\n"
            "def create_app(config=None):\n"
            "    app = Flask(__name__)\n"
            "    app.config['SQLALCHEMY_DATABASE_URI'] = os.environ.get(\n"
            "        'DATABASE_URL', 'sqlite:///' + os.path.join(app.root_path, 'shop.db'))\n"
            "    app.config.update(config or {})\n"
            "    db.init_app(app)\n"
            + "".join(
                f"    from shop.views.{area} import bp as {area}_bp\n"
                f"    app.register_blueprint({area}_bp)\n"
                for area in AREAS
            )
            + "    with app.app_context():\n        db.create_all()\n    return app\n"
        ),
        "shop/models/__init__.py": "".join(
            f"from shop.models.{a} import *  # noqa\n" for a in AREAS
        ),
        "shop/views/__init__.py": "",
        "shop/templates/base.html": (
            "<!doctype html><title>{% block title %}Shop{% endblock %}</title>"
            "<nav>{% for a in areas %}<a href='/{{ a }}/'>{{ a }}</a>{% endfor %}</nav>"
            "{% block body %}{% endblock %}\n"
        ),
    }
    for area in AREAS:
        models = ["from datetime import datetime", "from shop.extensions import db", ""]
        for name in _model_names(area):
            models += [
                f"class {name}(db.Model):",
                f"    __tablename__ = '{name.lower()}'",
                "    id = db.Column(db.Integer, primary_key=True)",
                "    name = db.Column(db.String(120), nullable=False, index=True)",
                "    price = db.Column(db.Numeric(10, 2), default=0)",
                "    created = db.Column(db.DateTime, default=datetime.utcnow)",
                "",
            ]
        files[f"shop/models/{area}.py"] = "\n".join(models) + "\n"
        first = _model_names(area)[0]
        greeting = "GREETING = 'hello'\n" if area == "catalog" else ""
        files[f"shop/views/{area}.py"] = (
            "from flask import Blueprint, render_template\n"
            f"from shop.models.{area} import {first}\n\n{greeting}"
            f"bp = Blueprint('{area}', __name__, url_prefix='/{area}')\n\n\n"
            "@bp.get('/')\ndef index():\n"
            f"    items = {first}.query.limit(20).all()\n"
            f"    return render_template('{area}.html', items=items, areas={AREAS!r})\n"
        )
        files[f"shop/templates/{area}.html"] = (
            "{% extends 'base.html' %}{% block body %}<ul>{% for i in items %}"
            "<li>{{ i.name }}</li>{% endfor %}</ul>{% endblock %}\n"
        )
    files["shop/views/catalog.py"] += (
        "\n\n@bp.get('/greeting', endpoint='greeting')\ndef greeting():\n    return GREETING\n"
    )
    # /greeting at the root too, the path every server is asked for; /stream and /size for the
    # adapters' comparison (a streamed response, a large request body read as a stream).
    files["shop/__init__.py"] = files["shop/__init__.py"].replace(
        "    with app.app_context():",
        "    from shop.views import catalog, transfer\n"
        "    app.add_url_rule('/greeting', 'greeting', lambda: catalog.GREETING)\n"
        "    app.register_blueprint(transfer.bp)\n"
        "    with app.app_context():",
    )
    files["shop/views/transfer.py"] = (
        "import time\nfrom flask import Blueprint, Response, request\n\n"
        "bp = Blueprint('transfer', __name__)\n\n\n"
        "@bp.get('/stream')\ndef stream():\n"
        "    def chunks():\n        for i in range(10):\n"
        "            yield f'chunk {i}\\n'\n            time.sleep(0.1)\n"
        "    return Response(chunks(), mimetype='text/plain')\n\n\n"
        "@bp.post('/size')\ndef size():\n    total = 0\n"
        "    while chunk := request.stream.read(1 << 16):\n        total += len(chunk)\n"
        "    return {'size': total}\n"
    )
    _write(root, files)
    return root


def django_site(root: Path) -> Path:
    """The Django site: `config.wsgi:application`, its SQLite database migrated."""
    bin_dir = Path(sys.executable).parent
    root.mkdir(parents=True, exist_ok=True)
    run = {"cwd": root, "check": True, "capture_output": True, "timeout": 300}
    subprocess.run([str(bin_dir / "django-admin"), "startproject", "config", "."], **run)
    settings = root / "config" / "settings.py"
    text = settings.read_text()
    marker = next(m for m in ("'django.contrib.staticfiles',", '"django.contrib.staticfiles",')
                  if m in text)  # fmt: skip
    apps = "".join(f"\n    '{area}'," for area in AREAS)
    settings.write_text(text.replace(marker, marker + apps))
    files = {
        "config/urls.py": (
            "from django.contrib import admin\nfrom django.urls import include, path\n"
            "from catalog.views import greeting\n\n"
            "urlpatterns = [\n    path('admin/', admin.site.urls),\n"
            "    path('greeting', greeting),\n"
            + "".join(f"    path('{a}/', include('{a}.urls')),\n" for a in AREAS)
            + "]\n"
        ),
        "templates/base.html": "<!doctype html>{% block body %}{% endblock %}\n",
    }
    for area in AREAS:
        names = _model_names(area)
        models = ["from django.db import models", ""]
        for name in names:
            models += [
                f"class {name}(models.Model):",
                "    name = models.CharField(max_length=120, db_index=True)",
                "    price = models.DecimalField(max_digits=10, decimal_places=2, default=0)",
                "    created = models.DateTimeField(auto_now_add=True)",
                "",
                "    def __str__(self):",
                "        return self.name",
                "",
            ]
        files[f"{area}/__init__.py"] = ""
        files[f"{area}/models.py"] = "\n".join(models) + "\n"
        files[f"{area}/admin.py"] = (
            "from django.contrib import admin\n"
            f"from {area}.models import {', '.join(names)}\n\n"
            + "".join(
                f"@admin.register({n})\nclass {n}Admin(admin.ModelAdmin):\n"
                "    list_display = ('name', 'price', 'created')\n    search_fields = ('name',)\n\n"
                for n in names
            )
        )
        files[f"{area}/views.py"] = (
            "from django.http import HttpResponse\nfrom django.shortcuts import render\n"
            f"from {area}.models import {names[0]}\n\n"
            + (
                "GREETING = 'hello'\n\n\n"
                "def greeting(request):\n    return HttpResponse(GREETING)\n\n"
                if area == "catalog"
                else ""
            )
            + f"\ndef index(request):\n    items = {names[0]}.objects.all()[:20]\n"
            f"    return render(request, '{area}/index.html', {{'items': items}})\n"
        )
        files[f"{area}/urls.py"] = (
            f"from django.urls import path\nfrom {area} import views\n\n"
            "urlpatterns = [path('', views.index)]\n"
        )
        files[f"{area}/templates/{area}/index.html"] = (
            "{% extends 'base.html' %}{% block body %}<ul>{% for i in items %}<li>{{ i }}</li>"
            "{% endfor %}</ul>{% endblock %}\n"
        )
    _write(root, files)
    text = settings.read_text()
    settings.write_text(text.replace("'DIRS': [],", "'DIRS': [BASE_DIR / 'templates'],").replace(
        '"DIRS": [],', '"DIRS": [BASE_DIR / "templates"],'))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    subprocess.run([sys.executable, "manage.py", "makemigrations", *AREAS], env=env, **run)
    subprocess.run([sys.executable, "manage.py", "migrate"], env=env, **run)
    return root
