"""The app a TARGET names, loaded as users write it and served as ASGI whatever it speaks.

`module:app` may be an ASGI app (FastAPI, Starlette, Litestar, Django's ASGIHandler) or a WSGI one
(Flask, Django's WSGIHandler, Pyramid's router, Falcon's App): told apart by inspecting the
callable, never by a flag. A WSGI app runs behind a2wsgi's adapter (bench/wsgi says why that one)
on the same uvicorn, so every guarantee of the engine (the warm zygote, the handover, the last
good version) is the same for both. A factory is called with `--factory`, or when the target
calls it (`module:create_app()`, with literal arguments as Flask takes them).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from typing import Any

from hotmode.target import TargetSyntaxError, parse_target

ASGI3, ASGI2, WSGI = "asgi3", "asgi2", "wsgi"
# a2wsgi's threads: the requests a WSGI app serves at once (runserver serves each in a thread).
WSGI_THREADS = 10


class TargetError(Exception):
    """The TARGET itself is wrong: no such module in the app folder, no such attribute, a factory
    not called, or a value that is not an app."""


def load_app(target: str, app_dir: str, factory: bool = False) -> Any:
    """Import `module:attribute`, call it when it is a factory, and return the app."""
    try:
        parsed = parse_target(target)
    except TargetSyntaxError as exc:
        raise TargetError(str(exc)) from None
    try:
        module = importlib.import_module(parsed.module)
    except ModuleNotFoundError as exc:
        if exc.name != parsed.module:
            raise
        raise TargetError(
            f"no module {parsed.module!r} in {app_dir}; check TARGET and --app-dir"
        ) from None
    value: Any = module
    for part in parsed.attribute.split("."):
        if not hasattr(value, part):
            raise TargetError(
                f"{parsed.module} has no attribute {parsed.attribute!r}; check TARGET"
            )
        value = getattr(value, part)
    shown = f"{parsed.module}:{parsed.attribute}"
    if parsed.call is not None or factory:
        if not callable(value):
            raise TargetError(f"{shown} is not a factory (it cannot be called); check TARGET")
        args, kwargs = parsed.call or ((), {})
        value = value(*args, **kwargs)
    elif _is_factory(value):
        raise TargetError(
            f"{shown} is a factory (a function of no arguments, not an app): "
            f"pass --factory, or write {shown}()"
        )
    if not callable(value):
        raise TargetError(f"{shown} is a {type(value).__name__}, not an ASGI or WSGI app")
    return value


def _is_factory(value: Any) -> bool:
    if not inspect.isfunction(value) or inspect.iscoroutinefunction(value):
        return False
    parameters = inspect.signature(value).parameters.values()
    return not any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                   for p in parameters)  # fmt: skip


def interface(app: Any) -> str:
    """ASGI 3 (`scope, receive, send`), ASGI 2 (a class taking `scope`) or WSGI (`environ,
    start_response`), from the callable's own signature; ASGI 3 when it does not say."""
    if inspect.isclass(app):
        return ASGI3 if hasattr(app, "__await__") else ASGI2
    call = app if inspect.isroutine(app) else getattr(app, "__call__", None)  # noqa: B004
    if asyncio.iscoroutinefunction(call) or inspect.iscoroutinefunction(call):
        return ASGI3
    try:
        parameters = list(inspect.signature(app).parameters.values())
    except (TypeError, ValueError):  # a builtin or an extension type: no signature to read
        return ASGI3
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return ASGI3
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return {2: WSGI, 1: ASGI2}.get(len(positional), ASGI3)


def as_asgi(app: Any, kind: str) -> Any:
    """The ASGI 3 app that serves `app` of interface `kind`."""
    if kind == WSGI:
        from a2wsgi import WSGIMiddleware

        return WSGIMiddleware(app, workers=WSGI_THREADS)
    if kind == ASGI2:
        from uvicorn.middleware.asgi2 import ASGI2Middleware

        return ASGI2Middleware(app)
    return app
