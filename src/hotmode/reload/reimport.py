"""A partial re-import over the app zygote: the stale modules unloaded, the rest kept.

A package re-imported while some of its submodules are kept (a Flask app whose `create_app`
lives in `shop/__init__.py` and whose models did not change) comes back as a new module object,
and the import system binds a submodule on its package only when it loads it: `import
shop.models` in the new `__init__` would find `shop.models` loaded but not on `shop`. `forget`
therefore leaves a finder that, when the package is imported again, binds its kept submodules on
the new module before its code runs, as they were on the old one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from importlib.abc import Loader
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any


class _Rebinding(Loader):
    """The package's own loader, which first binds the kept submodules on the new module."""

    def __init__(self, loader: Any, children: dict[str, ModuleType]) -> None:
        self.loader = loader
        self.children = children

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        created: ModuleType | None = self.loader.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # the real one, for whatever reads it later
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        for child, value in self.children.items():
            setattr(module, child, value)
        self.loader.exec_module(module)


class KeptSubmodules:
    """A meta path finder, first on sys.meta_path, for the packages re-imported over kept
    submodules; each is handled once, then the finder answers nothing."""

    def __init__(self, packages: dict[str, dict[str, ModuleType]]) -> None:
        self.packages = packages

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        children = self.packages.pop(name, None)
        if children is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: ModuleSpec | None = find(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Rebinding(spec.loader, children)
                return spec
        return None


def forget(names: Iterable[str]) -> None:
    """Unload modules, so that importing them runs their code again: out of sys.modules, and off
    their package (`from package import module` takes the package's attribute if it is there).
    A package's submodules that stay loaded are bound on it again when it is re-imported."""
    stale = set(names)
    kept: dict[str, dict[str, ModuleType]] = {}
    for name in stale:
        module = sys.modules.get(name)
        if module is None or not hasattr(module, "__path__"):
            continue
        children = {
            child: value
            for child, value in vars(module).items()
            if isinstance(value, ModuleType)
            and value.__name__ == f"{name}.{child}"
            and value.__name__ not in stale
            and sys.modules.get(value.__name__) is value
        }
        if children:
            kept[name] = children
    for name in stale:
        module = sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        package = sys.modules.get(parent) if parent else None
        if module is not None and getattr(package, child, None) is module:
            delattr(package, child)
    if kept:
        sys.meta_path.insert(0, KeptSubmodules(kept))
