"""Targets as users write them, and ASGI told from WSGI by inspection, on real frameworks' apps."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from hotmode.reload import apps
from hotmode.target import Target, TargetSyntaxError, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("main:app", Target("main", "app")),
        ("config.wsgi:application", Target("config.wsgi", "application")),
        ("app:create_app()", Target("app", "create_app", ((), {}))),
        (
            "app:create_app('dev', debug=True)",
            Target("app", "create_app", (("dev",), {"debug": True})),
        ),
        ("pkg.mod:holder.app", Target("pkg.mod", "holder.app")),
    ],
)
def test_targets_parse_as_users_write_them(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("main", "is not module:attribute"),
        ("main:", "is not module:attribute"),
        (":app", "is not module:attribute"),
        ("main:app(", "do not parse"),
        ("app:create_app(os.environ)", "must be literals"),
        ("app:create_app(**options)", "name each one"),
        ("main:app; rm -rf /", "is not module:attribute"),
    ],
)
def test_a_bad_target_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(TargetSyntaxError, match=says):
        parse_target(text)


def _flask() -> Any:
    from flask import Flask

    return Flask("probe")


def _falcon_wsgi() -> Any:
    import falcon

    return falcon.App()


def _falcon_asgi() -> Any:
    import falcon.asgi

    return falcon.asgi.App()


def _pyramid() -> Any:
    from pyramid.config import Configurator

    with Configurator() as config:
        return config.make_wsgi_app()


def _fastapi() -> Any:
    from fastapi import FastAPI

    return FastAPI()


def _starlette() -> Any:
    from starlette.applications import Starlette

    return Starlette()


def _wsgi_function() -> Any:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        return [b""]

    return app


def _asgi_function() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    return app


def _asgi_via_plain_call() -> Any:
    class Wrapper:  # a middleware whose __call__ returns the inner app's coroutine
        def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
            return _asgi_function()(scope, receive, send)

    return Wrapper()


class _Asgi2:
    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        return None


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_flask, apps.WSGI),
        (_falcon_wsgi, apps.WSGI),
        # Pyramid's stack is older than its API: WebOb imports the cgi module, and with a recent
        # setuptools, pkg_resources warns that it and its namespace packages are deprecated.
        pytest.param(
            _pyramid,
            apps.WSGI,
            marks=[
                pytest.mark.filterwarnings("ignore::DeprecationWarning"),
                pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning"),
            ],
        ),
        (_wsgi_function, apps.WSGI),
        (_falcon_asgi, apps.ASGI3),
        (_fastapi, apps.ASGI3),
        (_starlette, apps.ASGI3),
        (_asgi_function, apps.ASGI3),
        (_asgi_via_plain_call, apps.ASGI3),
        (lambda: _Asgi2, apps.ASGI2),
    ],
)
def test_the_interface_is_told_by_inspection(make: Any, kind: str) -> None:
    assert apps.interface(make()) == kind


@pytest.fixture
def package(tmp_path: Path) -> Any:
    (tmp_path / "factories.py").write_text(
        "from flask import Flask\n"
        "def create_app(name='default', debug=False):\n"
        "    app = Flask(name)\n"
        "    app.config['DEBUG'] = debug\n"
        "    return app\n"
        "settings = {'a': 1}\n"
    )
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("factories", None)


def test_factories_are_called_with_the_flag_or_as_written(package: Path) -> None:
    called = apps.load_app("factories:create_app('surveys', debug=True)", str(package))
    assert (called.name, called.config["DEBUG"]) == ("surveys", True)
    assert apps.load_app("factories:create_app", str(package), factory=True).name == "default"
    with pytest.raises(apps.TargetError, match=r"is a factory .*--factory.*create_app\(\)"):
        apps.load_app("factories:create_app", str(package))
    with pytest.raises(apps.TargetError, match="not an ASGI or WSGI app"):
        apps.load_app("factories:settings", str(package))
    with pytest.raises(apps.TargetError, match="no module 'nowhere'"):
        apps.load_app("nowhere:app", str(package))
