"""The app's own import graph, and what a save makes stale: the changed modules and, transitively,
the modules that import them.

Edges come from each module's source (`ast`: every `import` and `from ... import`, at any depth,
relative ones resolved), kept only between the app's modules that were loaded. A module that
imports by name at run time (`importlib.import_module`, `__import__`) is taken to import every
app module. `plan` decides, for the changes since the app zygote was built, whether a worker can
keep the rest preloaded (`Plan.fresh`: the modules to import again) or must import the whole app
(`Plan.fresh` is None, with the reason), and says which in a few words for the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Above this share of the app's modules, a partial re-import saves little and risks more.
MANY_DEPENDENTS = 0.5
DYNAMIC_CALLS = frozenset({"import_module", "__import__"})


@dataclass(frozen=True)
class Node:
    """One app module: its file, the modules it names in imports, whether it imports by name."""

    file: str
    imports: frozenset[str] = frozenset()
    dynamic: bool = False


def parse_imports(source: str, name: str, is_package: bool) -> tuple[set[str], bool]:
    """The absolute names a module's source imports (`import a.b`: `a` and `a.b`; `from a.b
    import c`: `a.b` and `a.b.c`), and whether it imports by name at run time. Raises
    SyntaxError."""
    import ast

    tree = ast.parse(source)
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    dynamic = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *([base] if base else [])])
            if base:
                # `base` only, not the packages above it: `from shop.models import User` binds
                # what shop.models holds, and a save that re-runs shop/__init__.py (where a
                # factory lives) leaves shop.models as it was (the worker binds it on the new
                # package). `import a.b` keeps them: it binds `a` and reaches `b` through it.
                found.add(base)
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            dynamic = dynamic or called in DYNAMIC_CALLS
    return found, dynamic


def read_nodes(modules: Mapping[str, tuple[str, bool, bool]]) -> dict[str, Node]:
    """Nodes for what a worker loaded, `name -> (file, is a package, imported fresh)`: the fresh
    ones parsed from their files, their imports kept between the app's modules. Parsed here, in
    the supervisor, and not in the worker, whose first requests it would hold up."""
    nodes = {}
    for name, (file, is_package, fresh) in modules.items():
        if not fresh:
            continue
        try:
            with open(file, encoding="utf-8") as source:
                imports, dynamic = parse_imports(source.read(), name, is_package)
        except (OSError, SyntaxError, ValueError):
            imports, dynamic = set(), True  # unknown: taken to import everything
        nodes[name] = Node(file, frozenset(imports & modules.keys()), dynamic)
    return nodes


@dataclass(frozen=True)
class Plan:
    """What a worker imports: `fresh` modules again over the app zygote, or (None) everything."""

    fresh: frozenset[str] | None
    why: str


@dataclass
class ImportGraph:
    """The app's modules by name, as the last workers reported them."""

    nodes: dict[str, Node] = field(default_factory=dict)
    distrusted: set[str] = field(default_factory=set)  # a partial import of these failed once

    def update(self, nodes: Mapping[str, Node]) -> None:
        self.nodes.update(nodes)

    def module_of(self, path: str) -> str | None:
        for name, node in self.nodes.items():
            if node.file == path:
                return name
        return None

    def importers(self) -> dict[str, set[str]]:
        """Module -> the app modules that import it (a dynamic importer imports all)."""
        found: dict[str, set[str]] = {name: set() for name in self.nodes}
        for name, node in self.nodes.items():
            targets = self.nodes.keys() if node.dynamic else node.imports & found.keys()
            for target in targets:
                if target != name:
                    found[target].add(name)
        return found

    def dependents(self, changed: Iterable[str]) -> set[str]:
        """The changed modules and every module that imports one of them, transitively."""
        importers = self.importers()
        stale, frontier = set(changed), list(changed)
        while frontier:
            for importer in importers.get(frontier.pop(), ()):
                if importer not in stale:
                    stale.add(importer)
                    frontier.append(importer)
        return stale

    def plan(self, changed_paths: Iterable[str]) -> Plan:
        """For the files changed since the app zygote was built: which modules to import again."""
        paths = sorted(set(changed_paths))
        modules = []
        for path in paths:
            name = self.module_of(path)
            if name is None:
                return Plan(None, f"{path} is not a module the app had loaded")
            modules.append(name)
        if self.distrusted & set(modules):
            return Plan(None, "a partial import of it failed before")
        fresh = self.dependents(modules)
        if len(fresh) > MANY_DEPENDENTS * len(self.nodes):
            return Plan(None, f"{len(fresh)} of {len(self.nodes)} app modules depend on it")
        return Plan(frozenset(fresh), f"{len(fresh)} of {len(self.nodes)} app modules re-imported")
