"""Where a worker or the zygote reads and writes bytecode: the app's own under the prefix, the
rest where its installer compiled it.

`PYTHONPYCACHEPREFIX` keeps `__pycache__` out of the source tree, but Python then looks for every
module's bytecode under the prefix only, and ignores what pip compiled into site-packages: with
an empty prefix (a first run, or `PYTHONDONTWRITEBYTECODE`, which dev images often set) every
third-party module is compiled from source again, a second or more for a FastAPI app. `install`
keeps the prefix for the app's files and for anything with no bytecode of its own, and reads the
rest where it already is. The hook is `cache_from_source` in the import system's path machinery
(looked up at each call by `SourceLoader.get_code`), the same on every CPython since 3.8.
"""

from __future__ import annotations

import _frozen_importlib_external as machinery
import os
import sys
from collections.abc import Callable
from typing import Any

from hotmode.reload.rules import is_app_file

_ORIGINAL: Callable[..., str] = machinery.cache_from_source
_routing: dict[str, Any] = {}  # prefix, roots: set once, the roots again in a forked worker


def install(roots: tuple[str, ...]) -> None:
    """Route bytecode as described above (again after a fork: with the worker's roots); nothing
    to do without a prefix."""
    if sys.pycache_prefix is not None:
        _routing["prefix"] = sys.pycache_prefix
        sys.pycache_prefix = None  # `_ORIGINAL` now answers the path beside the source
    if "prefix" not in _routing:
        return
    _routing["roots"] = roots
    machinery.cache_from_source = _cache_from_source  # type: ignore[assignment]


def _cache_from_source(path: str, *args: Any, **kwargs: Any) -> str:
    beside = _ORIGINAL(path, *args, **kwargs)
    source = os.path.abspath(path)
    if not is_app_file(source, _routing["roots"]) and os.path.exists(beside):
        return beside
    head = os.path.dirname(source)
    return os.path.join(_routing["prefix"], head.lstrip(os.sep), os.path.basename(beside))
