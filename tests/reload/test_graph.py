"""The app's import graph and the plan for a save: what to import again, or the whole app."""

from __future__ import annotations

from hotmode.reload.graph import ImportGraph, Node, parse_imports


def test_imports_are_found_at_any_depth_and_relative_ones_resolved() -> None:
    source = (
        "import a.b\nfrom . import sibling\nfrom ..up import thing\n"
        "def f():\n    from .inner import x\n"
    )
    found, dynamic = parse_imports(source, "pkg.sub.mod", is_package=False)
    assert {"a", "a.b", "pkg.sub.sibling", "pkg.up", "pkg.up.thing", "pkg.sub.inner"} <= found
    assert not dynamic
    found, _ = parse_imports("from .models import User\n", "pkg", is_package=True)
    assert {"pkg.models", "pkg.models.User"} <= found
    _, dynamic = parse_imports("import importlib\nimportlib.import_module(name)\n", "m", False)
    assert dynamic


def graph() -> ImportGraph:
    edges = {
        "main": {"routes", "health", "db"},
        "routes": {"models", "db"},
        "models": {"db"},
        "health": set(),
        "db": set(),
        "settings": set(),
        "extra": set(),
    }
    return ImportGraph({name: Node(f"/app/{name}.py", frozenset(imports))
                        for name, imports in edges.items()})  # fmt: skip


def test_a_leaf_save_reimports_the_leaf_and_its_importers_only() -> None:
    plan = graph().plan(["/app/health.py"])
    assert plan.fresh == {"health", "main"}
    assert plan.why == "2 of 7 app modules re-imported"
    assert graph().plan(["/app/models.py"]).fresh == {"models", "routes", "main"}


def test_in_doubt_the_whole_app() -> None:
    many = graph().plan(["/app/db.py"])
    assert many.fresh is None and many.why == "4 of 7 app modules depend on it"
    unknown = graph().plan(["/app/new.py"])
    assert unknown.fresh is None and "/app/new.py is not a module the app had loaded" in unknown.why
    distrusting = graph()
    distrusting.distrusted.add("models")
    assert distrusting.plan(["/app/models.py"]).fresh is None


def test_a_module_importing_by_name_counts_as_importing_everything() -> None:
    dynamic = graph()
    dynamic.update({"plugins": Node("/app/plugins.py", frozenset(), dynamic=True)})
    assert dynamic.plan(["/app/health.py"]).fresh == {"health", "main", "plugins"}
