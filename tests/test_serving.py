"""What prod serves: the target's interface read from the source without importing it, and the
uvicorn command built from it, in the rendered prod Compose file and Dockerfile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hotmode.compose.render import render_files
from hotmode.config import load_config
from hotmode.errors import ConfigError
from hotmode.serving import ASGI, WSGI, command, interface


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "target", "expected"),
    [
        ({"app.py": "from flask import Flask\napp = Flask(__name__)\n"}, "app:app", WSGI),
        (
            {"config/wsgi.py": "from django.core.wsgi import get_wsgi_application\n"},
            "config.wsgi:application",
            WSGI,
        ),
        (
            {"config/asgi.py": "from django.core.asgi import get_asgi_application\n"},
            "config.asgi:application",
            ASGI,
        ),
        ({"main.py": "import falcon.asgi\napp = falcon.asgi.App()\n"}, "main:app", ASGI),
        ({"main.py": "import falcon\napp = falcon.App()\n"}, "main:app", WSGI),
        ({"main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}, "main:app", ASGI),
        # A factory in a package, and a wsgi.py that calls it: one step on to the package.
        (
            {
                "shop/__init__.py": "from flask import Flask\ndef create_app(): ...\n",
                "wsgi.py": "from shop import create_app\napp = create_app()\n",
            },
            "wsgi:app",
            WSGI,
        ),
        (
            {"shop/__init__.py": "from .views import bp\n", "shop/views.py": "import flask\n"},
            "shop:create_app()",
            WSGI,
        ),
        # No evidence, or both: unknown, never a guess.
        ({"main.py": "app = object()\n"}, "main:app", None),
        ({"main.py": "import flask, starlette\n"}, "main:app", None),
        ({"main.py": "def broken(:\n"}, "main:app", None),
        ({}, "missing:app", None),
    ],
)
def test_the_interface_is_read_from_what_the_module_imports(
    tmp_path: Path, files: dict[str, str], target: str, expected: str | None
) -> None:
    assert interface(_write(tmp_path, files), target) == expected


def test_a_module_reached_through_a_link_is_not_read(tmp_path: Path) -> None:
    outside = _write(tmp_path / "outside", {"app.py": "from flask import Flask\n"})
    source = tmp_path / "source"
    source.mkdir()
    (source / "app.py").symlink_to(outside / "app.py")
    assert interface(source, "app:app") is None


def test_the_command_serves_a_wsgi_factory_through_uvicorn_without_a_reloader() -> None:
    assert command("notes:create_app()", WSGI, "0.0.0.0", "8000") == [
        "uvicorn", "notes:create_app", "--factory", "--interface", "wsgi",
        "--host", "0.0.0.0", "--port", "8000",
    ]  # fmt: skip
    assert command("main:app", ASGI, "h", "1") == [
        "uvicorn",
        "main:app",
        "--host",
        "h",
        "--port",
        "1",
    ]
    assert command("main:app", None, "h", "1") == command("main:app", ASGI, "h", "1")


def test_a_factory_called_with_arguments_is_refused_for_prod_naming_the_fix() -> None:
    with pytest.raises(ConfigError, match="calls its factory with arguments"):
        command('app:create_app("prod")', WSGI, "h", "1")


def test_a_flask_factory_renders_its_prod_command_and_image(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "hotmode.toml": 'name = "shop"\nsource = "app"\ntarget = "shop:create_app()"\n'
            'port = 8000\nrequirements = "requirements.txt"\n',
            "app/requirements.txt": "flask\n",
            "app/shop/__init__.py": "from flask import Flask\ndef create_app(): ...\n",
        },
    )
    rendered = {
        p.name: text for p, text in render_files(load_config(tmp_path / "hotmode.toml")).items()
    }
    prod = yaml.safe_load(rendered["docker-compose.yml"])["services"]["backend"]
    served = ["uvicorn", "shop:create_app", "--factory", "--interface", "wsgi"]
    assert prod["command"][:5] == served
    assert prod["read_only"] is True and "--reload" not in prod["command"]
    cmd = next(line for line in rendered["Dockerfile"].splitlines() if line.startswith("CMD "))
    assert json.loads(cmd.removeprefix("CMD "))[:5] == served
    assert "pip install uvicorn a2wsgi" in rendered["Dockerfile"]
