"""Bytecode routing in a worker: the app's own under the prefix, the rest where pip put it."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from reload.reload_support import Server

SCRIPT = """\
import sys
from hotmode.reload import pycache
pycache.install((sys.argv[1],))
import installed_lib, app_module, uncompiled_lib
print(installed_lib.__cached__)
print(app_module.__cached__)
print(uncompiled_lib.__cached__)
"""


def test_third_party_bytecode_is_read_where_it_is_and_app_bytecode_goes_to_the_prefix(
    tmp_path: Path,
) -> None:
    site, app, prefix = tmp_path / "site", tmp_path / "app", tmp_path / "prefix"
    site.mkdir()
    app.mkdir()
    (site / "installed_lib.py").write_text("VALUE = 1\n")
    (site / "uncompiled_lib.py").write_text("VALUE = 2\n")
    beside = site / "__pycache__" / f"installed_lib.{sys.implementation.cache_tag}.pyc"
    compiled = py_compile.compile(str(site / "installed_lib.py"), str(beside), doraise=True)
    (app / "app_module.py").write_text("VALUE = 3\n")
    (app / "__pycache__").mkdir()  # a stale cache in the tree (an earlier plain run) is not used
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(app)]),
        "PYTHONPYCACHEPREFIX": str(prefix),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(app)],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    installed, own, uncompiled = result.stdout.split()
    assert installed == compiled
    assert own.startswith(str(prefix)) and Path(own).is_file()
    assert uncompiled.startswith(str(prefix)) and Path(uncompiled).is_file()
    assert not list((app / "__pycache__").iterdir())
    assert not (site / "__pycache__" / Path(uncompiled).name).exists()


SAME_SECOND = """\
import os, subprocess, sys
from hotmode.reload import pycache
pycache.install((sys.argv[1],))
import app_module
print(app_module.VALUE)
"""


def test_two_saves_of_the_same_size_in_one_second_are_both_seen(tmp_path: Path) -> None:
    # An editor saving twice within a second, with a reload in between: the bytecode written
    # for the first save must not be taken for the second.
    app, prefix = tmp_path / "app", tmp_path / "prefix"
    app.mkdir()
    module = app / "app_module.py"
    env = {**os.environ, "PYTHONPATH": str(app), "PYTHONPYCACHEPREFIX": str(prefix)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    seen = []
    for value, second in (("1", 1_700_000_000.1), ("2", 1_700_000_000.6)):
        module.write_text(f"VALUE = {value}\n")
        os.utime(module, (second, second))
        result = subprocess.run(
            [sys.executable, "-c", SAME_SECOND, str(app)],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        seen.append(result.stdout.strip())
    assert seen == ["1", "2"]
    assert list(prefix.rglob("app_module.*.pyc"))  # it was cached, and checked


def test_a_worker_routes_bytecode_before_it_imports_the_standard_library(tmp_path: Path) -> None:
    # Every module imported before the routing is looked for under the prefix only: with an
    # empty prefix (a first run), the standard library would be compiled from source again.
    script = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from hotmode.reload import entry\n"
        "entry.pycache.install(())\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )

    def run(code: str, prefix: Path) -> tuple[set[str], set[str]]:
        """What `code` imported (printed), and the bytecode it compiled under `prefix`."""
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        return set(result.stdout.split()), {p.name.split(".")[0] for p in prefix.rglob("*.pyc")}

    _, at_start = run("pass", tmp_path / "bare")  # the interpreter's own start (encodings)
    imported, compiled = run(script, tmp_path / "prefix")
    ours = {"__future__", "hotmode", "hotmode.reload", "hotmode.reload.entry",
            "hotmode.reload.pycache"}  # fmt: skip
    assert imported <= ours, imported
    assert compiled - at_start <= {"__future__", "__init__", "entry", "pycache"}, compiled


def test_the_prefix_handed_to_a_zygote_or_worker_is_routed_and_passed_on(tmp_path: Path) -> None:
    # The supervisor hands the prefix under another name (pycache.interpreter_env): the
    # interpreter's own start compiles nothing into it, and install() puts it back for the app
    # and the processes it starts.
    app, prefix = tmp_path / "app", tmp_path / "prefix"
    app.mkdir()
    (app / "app_module.py").write_text("VALUE = 1\n")
    script = (
        "import os, sys\n"
        "from hotmode.reload import entry\n"
        "entry.pycache.install((sys.argv[1],))\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import app_module\n"
        "print(os.environ['PYTHONPYCACHEPREFIX'], 'HOTMODE_PYCACHE_PREFIX' in os.environ)\n"
        "print(app_module.__cached__)\n"
    )
    from hotmode.reload import pycache

    env = pycache.interpreter_env({**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)})
    assert "PYTHONPYCACHEPREFIX" not in env and env["HOTMODE_PYCACHE_PREFIX"] == str(prefix)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run(
        [sys.executable, "-c", script, str(app)], env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    passed_on, cached = result.stdout.splitlines()
    assert passed_on == f"{prefix} False"
    assert cached.startswith(str(prefix))
    assert [p.name.split(".")[0] for p in prefix.rglob("*.pyc")] == ["app_module"]
    assert not (app / "__pycache__").exists()


def test_a_planted_default_prefix_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The default prefix has a name anyone can guess, in a folder anyone can write, and its
    # bytecode is run: only a private folder of the user's own is taken.
    from hotmode.reload.launcher import pycache_prefix

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    default = tmp_path / f"hotmode-pycache-{os.getuid()}"
    assert pycache_prefix({}) == str(default)  # made private on first use
    assert default.stat().st_mode & 0o777 == 0o700
    chosen = tmp_path / "chosen"
    assert pycache_prefix({"PYTHONPYCACHEPREFIX": str(chosen)}) == str(chosen)

    default.chmod(0o777)  # as if another user had made it first
    fresh = pycache_prefix({})
    assert fresh != str(default) and Path(fresh).stat().st_mode & 0o777 == 0o700
    assert "can be written by other users" in caplog.text

    default.rmdir()
    default.symlink_to(tmp_path)
    assert pycache_prefix({}) != str(default)
    assert "is not a folder" in caplog.text


@pytest.mark.parametrize("planted", ["world-writable", "link", "another user's"])
def test_a_given_prefix_that_is_not_the_users_own_private_folder_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, planted: str
) -> None:
    # PYTHONPYCACHEPREFIX given (a `.hotmode/pycache` link, an inherited variable): its
    # bytecode runs as this user, so it is held to the default's rule (issue 26).
    from hotmode.reload.launcher import pycache_prefix

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)
    (tmp_path / "tmp").mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    given = tmp_path / "given"
    if planted == "link":
        given.symlink_to(victim)
    else:
        given.mkdir()
        given.chmod(0o777 if planted == "world-writable" else 0o755)
        if planted == "another user's":
            if os.getuid() != 0:
                pytest.skip("only root can give a folder to another user")
            os.chown(given, 65534, 65534)
    used = pycache_prefix({"PYTHONPYCACHEPREFIX": str(given)})
    assert used == str(tmp_path / "tmp" / f"hotmode-pycache-{os.getuid()}")
    assert f"{given} " in caplog.text and "not used for bytecode" in caplog.text
    assert len([r for r in caplog.records if "bytecode" in r.getMessage()]) == 1
    assert list(victim.iterdir()) == []


def test_a_shared_sticky_prefix_holds_a_private_folder_of_the_users_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A dev image's cache volume (mode 1777, for whichever user the container runs as): the
    # byte-code still survives a restart, in a folder no other user can change.
    from hotmode.reload.launcher import pycache_prefix

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    shared = tmp_path / "cache"
    shared.mkdir()
    shared.chmod(0o1777)
    used = Path(pycache_prefix({"PYTHONPYCACHEPREFIX": str(shared)}))
    assert used == shared / f"hotmode-pycache-{os.getuid()}"
    assert used.stat().st_mode & 0o777 == 0o700
    assert "bytecode" not in caplog.text


def test_the_engine_runs_no_bytecode_from_a_given_prefix_others_can_write(
    tmp_path: Path, app_dir: Path, servers: list[Server]
) -> None:
    """`hotmode run` given a world-writable PYTHONPYCACHEPREFIX: one line says so, and neither
    the zygote nor a worker reads or writes the app's byte-code there: it goes to the user's own
    folder. (The supervisor interpreter's own start, before any hotmode code runs, is Python's.)"""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir(mode=0o700)
    env = {
        "PYTHONPYCACHEPREFIX": str(shared),
        "TMPDIR": str(private_tmp),
        "PYTHONDONTWRITEBYTECODE": "",  # written, so that where it goes is seen
    }
    server = Server(app_dir, "--reload", env=env)
    servers.append(server)
    assert server.get()["version"] == "v1"
    said = [line for line in server.output().splitlines() if "not used for bytecode" in line]
    assert len(said) == 1 and f"{shared} can be written by other users" in said[0], said
    assert [p for p in shared.rglob("*.pyc") if p.name.startswith("main.")] == []
    assert not list(shared.glob("hotmode-*.json"))  # nor the learned module list
    default = private_tmp / f"hotmode-pycache-{os.getuid()}"
    assert "main" in [p.name.split(".")[0] for p in default.rglob("*.pyc")]
