"""Importing only what changed: a save re-imports the changed module and its importers over the
app zygote, the rest stays preloaded; in doubt, the whole app. Real `hotmode run --reload`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reload.reload_support import Server, wait_until

pytestmark = pytest.mark.e2e

# Each module notes which process ran its code, so the test sees what a reload imported.
NOTE = "import os\nopen(os.environ['IMPORT_LOG'], 'a').write(f'{os.getpid()} {__name__}\\n')\n"

MAIN = (
    NOTE
    + """\
import leaf, model
from parts import p1, p2, p3, p4, p5, p6

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = f"{leaf.VERSION} {model.VERSION} {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""
)
# A registry outside what changes when `model` does: re-running `model` over the app zygote
# finds itself registered already, as a table on a shared metadata would.
REGISTERING = """\
import registry
if "model" in registry.NAMES:
    raise RuntimeError("model is registered")
registry.NAMES.add("model")
"""


def model_source(version: str) -> str:
    return NOTE + REGISTERING + f"VERSION = {version!r}\n"


def start(tmp_path: Path, servers: list[Server], partial: str = "1") -> tuple[Server, Path]:
    """The app above, served with --reload; the server and the app folder. It imports in a
    few ms, so the app zygote is kept only when asked for (HOTMODE_PARTIAL_RELOAD=1)."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    write_app(app_dir)
    env = {"IMPORT_LOG": str(tmp_path / "imports.log"), "HOTMODE_PARTIAL_RELOAD": partial}
    server = Server(app_dir, "--reload", "--log-level", "debug",
                    ready=r"serving main:app on (http://\S+)", env=env)  # fmt: skip
    servers.append(server)
    return server, app_dir


def write_app(app_dir: Path) -> None:
    (app_dir / "main.py").write_text(MAIN)
    (app_dir / "leaf.py").write_text(NOTE + "VERSION = 'leaf-1'\n")
    (app_dir / "registry.py").write_text(NOTE + "NAMES = set()\n")
    (app_dir / "model.py").write_text(model_source("model-1"))
    (app_dir / "parts").mkdir()
    (app_dir / "parts" / "__init__.py").write_text("")
    for index in range(1, 7):
        (app_dir / "parts" / f"p{index}.py").write_text(NOTE + "import registry\n")


def imports_by(log: Path, pid: int) -> set[str]:
    found = set()
    for line in log.read_text().splitlines():
        who, name = line.split()
        if int(who) == pid:
            found.add(name)
    return found


def reload_partly(server: Server, path: Path, name: str) -> str:
    """Once the app zygote is ready (built when saves pause), save `path` with a new VERSION;
    the log line of the reload, which keeps part of the app."""
    server.wait_for(r"app zygote: pid \d+ ready", timeout=30)
    mark = len(server.lines)
    text = path.read_text()
    path.write_text(text[: text.index("VERSION")] + f"VERSION = '{name}-2'\n")
    line = server.wait_for(rf"reloaded \({name}\.py changed\).*", start=mark, timeout=20).group(0)
    assert "re-imported" in line, line
    return line


def served(server: Server) -> tuple[str, str, int]:
    status, body = server.fetch()
    assert status == 200, body
    leaf, model, pid = body.decode().split()
    return leaf, model, int(pid)


def test_a_leaf_edit_reimports_only_the_leaf_and_its_importers(
    tmp_path: Path, servers: list[Server]
) -> None:
    server, app_dir = start(tmp_path, servers)
    line = reload_partly(server, app_dir / "leaf.py", "leaf")
    assert "(2 of 11 app modules re-imported)" in line
    leaf, model, pid = served_new(server, 0, "leaf-2")
    assert model == "model-1" and leaf.startswith("leaf-")
    assert imports_by(tmp_path / "imports.log", pid) == {"leaf", "main"}
    # A broken save is reported as usual, and the fix is imported partly again.
    mark = len(server.lines)
    (app_dir / "leaf.py").write_text(NOTE + "VERSION = 'leaf-broken'\nundefined_name\n")
    server.wait_for(r"leaf\.py:4: NameError: .* still serving the last good version", start=mark)
    mark = len(server.lines)
    (app_dir / "leaf.py").write_text(NOTE + "VERSION = 'leaf-fixed'\n")
    line = server.wait_for(r"reloaded \(leaf\.py changed\).*", start=mark).group(0)
    assert "(2 of 11 app modules re-imported)" in line
    assert served_new(server, 0, "leaf-fixed")[0] == "leaf-fixed"
    assert server.stop() == 143


def test_a_partial_import_that_fails_is_retried_whole_then_no_longer_tried(
    tmp_path: Path, servers: list[Server]
) -> None:
    server, app_dir = start(tmp_path, servers)
    reload_partly(server, app_dir / "leaf.py", "leaf")  # the app zygote is ready
    mark = len(server.lines)
    (app_dir / "model.py").write_text(model_source("model-2"))
    server.wait_for(
        r"the partial import failed \(model\.py:\d+: RuntimeError: model is registered\); "
        r"importing the whole app",
        start=mark,
    )
    server.wait_for(
        r"reloaded \(model\.py changed\): import \d+ ms \(the whole app: after a partial "
        r"import failed\), ready",
        start=mark,
    )
    assert served_new(server, 1, "model-2")[1] == "model-2"
    assert "still serving the last good version" not in server.output()
    mark = len(server.lines)
    (app_dir / "model.py").write_text(model_source("model-3"))
    server.wait_for(
        r"reloaded \(model\.py changed\): import \d+ ms \(the whole app: a partial import of "
        r"it failed before\)",
        start=mark,
    )
    assert served_new(server, 1, "model-3")[1] == "model-3"
    assert server.stop() == 143


def test_an_app_that_imports_fast_is_imported_whole_without_an_app_zygote(
    tmp_path: Path, servers: list[Server]
) -> None:
    # By default an app zygote (a process holding the app) is kept only for an app whose own
    # import takes 50 ms or more: this one takes a few ms, and saves import all of it.
    server, app_dir = start(tmp_path, servers, partial="auto")
    server.wait_for(r"saves import the whole app: it imports in \d+ ms, under the 50 ms", 30)
    mark = len(server.lines)
    (app_dir / "leaf.py").write_text(NOTE + "VERSION = 'leaf-2'\n")
    line = server.wait_for(r"reloaded \(leaf\.py changed\).*", start=mark).group(0)
    assert re.search(r"\(the whole app: it imports in \d+ ms\)", line), line
    leaf, _model, pid = served_new(server, 0, "leaf-2")
    assert leaf == "leaf-2"
    assert {"main", "leaf", "model", "registry"} <= imports_by(tmp_path / "imports.log", pid)
    assert "app zygote: pid" not in server.output()
    assert server.stop() == 143


def test_an_app_that_becomes_slow_to_import_gets_an_app_zygote(
    tmp_path: Path, servers: list[Server]
) -> None:
    # Decided again at each whole-app import: a model that now takes 80 ms to import makes the
    # app worth keeping preloaded, and the next leaf save imports only the leaf.
    server, app_dir = start(tmp_path, servers, partial="auto")
    server.wait_for(r"saves import the whole app: it imports in \d+ ms", 30)
    (app_dir / "model.py").write_text(
        NOTE + "import time\ntime.sleep(0.08)\n" + REGISTERING + "VERSION = 'model-2'\n"
    )
    line = reload_partly(server, app_dir / "leaf.py", "leaf")
    assert "(2 of 11 app modules re-imported)" in line
    # The log line comes when the new worker is ready; it takes over from the old one a moment
    # later, so the first request may still be the old worker's.
    assert served_new(server, 0, "leaf-2")[:2] == ("leaf-2", "model-2")
    assert server.stop() == 143


def test_a_wrong_partial_reload_setting_is_named() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hotmode", "run", "main:app"],
        env={**os.environ, "HOTMODE_PARTIAL_RELOAD": "sometimes"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "HOTMODE_PARTIAL_RELOAD='sometimes': use 0, 1 or auto" in result.stderr


def served_new(server: Server, index: int, value: str) -> tuple[str, str, int]:
    """What is served once `value` is (the reload's log line comes when the new worker is
    ready; it takes over from the old one a moment later)."""

    def check() -> tuple[str, str, int] | None:
        found = served(server)
        return found if found[index] == value else None

    return wait_until(check, 10)  # type: ignore[no-any-return]
