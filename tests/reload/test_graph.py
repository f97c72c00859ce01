"""The app's import graph and the plan for a save: what to import again, or the whole app."""

from __future__ import annotations

from pathlib import Path

from hotmode.reload.graph import ImportGraph, Node, parse_imports, read_nodes


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


def test_what_a_worker_loaded_is_parsed_fresh_modules_only_and_edges_kept_inside_the_app(
    tmp_path: Path,
) -> None:
    (tmp_path / "main.py").write_text("import fastapi\nfrom app import routes\nimport db\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    loaded = {
        "main": (str(tmp_path / "main.py"), False, True),
        "broken": (str(tmp_path / "broken.py"), False, True),
        "gone": (str(tmp_path / "gone.py"), False, True),
        "app": (str(tmp_path / "app" / "__init__.py"), True, False),  # preloaded: not parsed
        "app.routes": (str(tmp_path / "app" / "routes.py"), False, False),
    }
    nodes = read_nodes(loaded)
    assert nodes.keys() == {"main", "broken", "gone"}
    assert nodes["main"] == Node(str(tmp_path / "main.py"), frozenset({"app", "app.routes"}))
    # Unreadable or unparsable: taken to import everything, so that a save never misses it.
    assert nodes["broken"].dynamic and nodes["gone"].dynamic


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
