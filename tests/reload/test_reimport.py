"""A partial re-import: a package's `__init__` run again over its kept submodules, which stay
the same objects and are reachable through the new package, as `import pkg.sub` reaches them."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotmode.reload.reimport import KeptSubmodules, forget

PACKAGE = "hm_reimport_shop"


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / PACKAGE
    (folder / "models").mkdir(parents=True)
    (folder / "__init__.py").write_text(
        f"import {PACKAGE}.models.user\nfrom {PACKAGE} import views\n"
        f"MODEL = {PACKAGE}.models.user.User\nRUNS = views.COUNT\n"
    )
    (folder / "models" / "__init__.py").write_text("")
    (folder / "models" / "user.py").write_text("class User:\n    pass\n")
    (folder / "views.py").write_text("COUNT = 1\n")
    sys.path.insert(0, str(tmp_path))
    meta_path = list(sys.meta_path)
    try:
        yield folder
    finally:
        sys.path.remove(str(tmp_path))
        sys.meta_path[:] = meta_path
        for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_a_package_runs_again_over_its_kept_submodules(package: Path) -> None:
    first = importlib.import_module(PACKAGE)
    user = sys.modules[f"{PACKAGE}.models.user"]
    (package / "views.py").write_text("COUNT = 2\n")
    importlib.invalidate_caches()
    forget([PACKAGE, f"{PACKAGE}.views"])
    again = importlib.import_module(PACKAGE)
    assert again is not first and again.RUNS == 2  # its code and the changed module ran again
    assert again.models.user is user and again.MODEL is user.User  # the kept ones as they were
    assert type(again.__loader__).__name__ == "SourceFileLoader"  # the real loader, after
    assert not any(isinstance(f, KeptSubmodules) and f.packages for f in sys.meta_path)


def test_without_kept_submodules_nothing_is_left_on_the_meta_path(package: Path) -> None:
    importlib.import_module(f"{PACKAGE}.views")
    before = list(sys.meta_path)
    forget([f"{PACKAGE}.views"])
    assert sys.meta_path == before and f"{PACKAGE}.views" not in sys.modules
