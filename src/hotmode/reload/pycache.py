"""Where a worker or the zygote reads and writes bytecode: the app's own under the prefix, the
rest where its installer compiled it.

`PYTHONPYCACHEPREFIX` keeps `__pycache__` out of the source tree, but Python then looks for every
module's bytecode under the prefix only, and ignores what pip compiled into site-packages: with
an empty prefix (a first run, or `PYTHONDONTWRITEBYTECODE`, which dev images often set) every
third-party module is compiled from source again, a second or more for a FastAPI app. `install`
keeps the prefix for the app's files and for anything with no bytecode of its own, and reads the
rest where it already is; and it checks the app's bytecode against its source's time to the
microsecond, not the second (see `_path_stats`). The hooks are `cache_from_source` and
`SourceFileLoader.path_stats` in the import system's path machinery (looked up at each call by
`SourceLoader.get_code`), the same on every CPython since 3.8.
"""

from __future__ import annotations

import _frozen_importlib_external as machinery
import os
import sys

TYPE_CHECKING = False  # not `typing`'s: nothing else is imported before `install` routes it
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

_ORIGINAL: Callable[..., str] = machinery.cache_from_source
_ORIGINAL_STATS = machinery.SourceFileLoader.path_stats
_routing: dict[str, Any] = {}  # prefix, roots: set once, the roots again in a forked worker


# The prefix, as the supervisor hands it to the interpreters it starts (see `interpreter_env`).
HANDED = "HOTMODE_PYCACHE_PREFIX"


def interpreter_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment to start a zygote or a worker with: the prefix under another name, so
    that the interpreter's own start (encodings, runpy, this module) reads the bytecode the
    installers wrote instead of compiling it into an empty prefix; `install` puts it back."""
    started = dict(env)
    prefix = started.pop("PYTHONPYCACHEPREFIX", None)
    if prefix:
        started[HANDED] = prefix
    return started


def install(roots: tuple[str, ...]) -> None:
    """Route bytecode as described above (again after a fork: with the worker's roots); nothing
    to do without a prefix."""
    handed = os.environ.pop(HANDED, None)
    if handed:  # back where the app and the processes it starts expect it
        os.environ["PYTHONPYCACHEPREFIX"] = handed
        _routing["prefix"] = handed
    if sys.pycache_prefix is not None:
        _routing["prefix"] = sys.pycache_prefix
        sys.pycache_prefix = None  # `_ORIGINAL` now answers the path beside the source
    if "prefix" not in _routing:
        return
    _routing["roots"] = roots
    if roots:  # imported once routed, so that its own imports read the installed bytecode
        from hotmode.reload.rules import is_app_file

        _routing["is_app_file"] = is_app_file
    machinery.cache_from_source = _cache_from_source  # type: ignore[assignment]
    machinery.SourceFileLoader.path_stats = _path_stats  # type: ignore[method-assign]


def _cache_from_source(path: str, *args: Any, **kwargs: Any) -> str:
    beside = _ORIGINAL(path, *args, **kwargs)
    source = os.path.abspath(path)
    if not _is_app_file(source) and os.path.exists(beside):
        return beside
    head = os.path.dirname(source)
    return os.path.join(_routing["prefix"], head.lstrip(os.sep), os.path.basename(beside))


def _path_stats(self: Any, path: str) -> Mapping[str, Any]:
    """A bytecode file records its source's time in whole seconds: two saves of the same size
    in one second (an editor's, seconds apart from a reload) would run the first one's code.
    For the app's files the time goes in microseconds (the stored field keeps 32 bits of it)."""
    stats = _ORIGINAL_STATS(self, path)
    if _is_app_file(os.path.abspath(path)):
        stats = {**stats, "mtime": os.stat(path).st_mtime_ns // 1000}
    return stats


def _is_app_file(path: str) -> bool:
    check = _routing.get("is_app_file")
    return check is not None and bool(check(path, _routing["roots"]))
