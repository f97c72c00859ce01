"""What a framework's own dev server does around the app, done the same way by the engine.

Django, as `manage.py runserver` does it: static files served in dev through
`django.contrib.staticfiles`' handler when the project's settings have DEBUG on and the app
installed; DEBUG and ALLOWED_HOSTS read from the project's settings, never set by hotmode; a
start refused when DEBUG is off and ALLOWED_HOSTS is empty (runserver refuses it too), and a Host
that ALLOWED_HOSTS refuses named on the log even with DEBUG off (Django then logs it nowhere).
The URLconf is imported before the worker says it is ready, so that a broken view keeps the last
good version serving instead of answering 500.

The zygote holds Django imported but not set up: `DJANGO_SETTINGS_MODULE` is hidden while it
preloads, so that no module it imports reads the project's settings (app code, which each
worker imports afresh). A worker imports the target, whose `get_wsgi_application()` sets
Django up. Partial reloads are off under Django, said once: its settings and its app registry
are set up once per process, and a worker forked from an app zygote would keep the old ones.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

# Read by the zygote: variables that would make a preloaded module import the app's own code.
ZYGOTE_HIDDEN_ENV = ("DJANGO_SETTINGS_MODULE",)

DJANGO_PARTIAL = "Django sets up its settings and app registry once per process"


class SettingsError(Exception):
    """The project's settings keep the app from serving; the message says which and the fix."""


class Framework:
    """What the worker says about the app once it is loaded: its framework, the notes to log
    once, and why saves cannot import only what changed (None when they can)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.notes: list[str] = []
        self.partial_problem: str | None = None


def _django_ready() -> bool:
    apps_module = sys.modules.get("django.apps")
    return bool(apps_module is not None and apps_module.apps.ready)


def around(app: Any, kind: str, dev: bool) -> tuple[Any, Framework]:
    """`app` as its framework's dev server would serve it (`dev`: with --reload), and what to
    say about it. Raises `SettingsError` where that server would refuse to start."""
    if not _django_ready():
        return app, Framework()
    from django.conf import settings

    framework = Framework("django")
    framework.partial_problem = DJANGO_PARTIAL
    where = getattr(settings, "SETTINGS_MODULE", None) or "the settings"
    if not settings.DEBUG and not settings.ALLOWED_HOSTS:
        raise SettingsError(
            f"DEBUG is off and ALLOWED_HOSTS is empty in {where}: Django would refuse every "
            "request (runserver refuses to start); add the hosts to ALLOWED_HOSTS, or turn DEBUG "
            "on for dev"
        )
    if not settings.DEBUG:
        _name_refused_hosts(where)
    # Django imports the URLconf (and the views it names) at the first request: imported now,
    # a broken view fails this worker, and the last good one keeps serving (runserver's checks
    # import it at start for the same reason).
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 -- the import is the point
    if dev and settings.DEBUG:
        app = _with_static_files(app, kind, framework, where)
    return app, framework


def _with_static_files(app: Any, kind: str, framework: Framework, where: str) -> Any:
    from django.apps import apps
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    if not apps.is_installed("django.contrib.staticfiles"):
        return app
    try:
        if kind == "wsgi":
            from django.contrib.staticfiles.handlers import StaticFilesHandler

            app = StaticFilesHandler(app)
        else:
            from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

            app = ASGIStaticFilesHandler(app)
    except ImproperlyConfigured as exc:
        framework.notes.append(f"static files are not served ({where}: {exc})")
        return app
    framework.notes.append(
        f"static files served at {settings.STATIC_URL} as runserver serves them (DEBUG is on in "
        f"{where})"
    )
    return app


class _RefusedHost(logging.Handler):
    """Names each Host header Django refuses, once: with DEBUG off Django logs it nowhere."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where
        self.said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message in self.said:
            return
        self.said.add(message)
        sys.stderr.write(f"hotmode: Django answered 400: {message} (in {self.where})\n")


def _name_refused_hosts(where: str) -> None:
    logger = logging.getLogger("django.security.DisallowedHost")
    if not any(isinstance(h, _RefusedHost) for h in logger.handlers):
        logger.addHandler(_RefusedHost(where))
