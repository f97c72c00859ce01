"""What the watcher watches and how it classifies changes; mount detection; failure lines."""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import pytest

from hotmode.reload.protocol import StatusReader, StatusWriter, WorkerSpec
from hotmode.reload.rules import Rules, is_app_file, is_dependency_file, watched_dirs
from hotmode.reload.watcher import filesystem_of, mount_types, needs_polling
from hotmode.reload.worker import describe_failure


@pytest.fixture
def rules(tmp_path: Path) -> Rules:
    return Rules(roots=(tmp_path,), env_file=tmp_path / ".env", exclude=("tests/*",))


@pytest.mark.parametrize(
    ("relative", "kind"),
    [
        ("main.py", "code"),
        ("app/routes.py", "code"),
        (".env", "env"),
        ("requirements.txt", "deps"),
        ("requirements-dev.txt", "deps"),
        ("requirements/base.txt", "deps"),
        ("pyproject.toml", "deps"),
        ("notes.txt", None),
        ("templates/index.html", None),
        ("static/app.css", None),
        ("app/__pycache__/routes.cpython-311.pyc", None),
        (".git/index", None),
        (".venv/lib/site.py", None),
        ("node_modules/x/index.py", None),
        ("logs/gateway.log", None),
        ("app/.routes.py.swp", None),
        ("app/routes.py~", None),
        ("app/4913", None),
        ("data.db-wal", None),
        ("data.db-shm", None),
        ("tests/test_x.py", None),
        ("pkg.egg-info/PKG-INFO", None),
    ],
)
def test_classify(rules: Rules, tmp_path: Path, relative: str, kind: str | None) -> None:
    assert rules.classify(tmp_path / relative) == kind


def test_include_makes_templates_reload(tmp_path: Path) -> None:
    rules = Rules(roots=(tmp_path,), include=("*.py", "*.html"))
    assert rules.classify(tmp_path / "templates" / "index.html") == "code"


def test_files_outside_the_roots_are_ignored_except_the_env_file(tmp_path: Path) -> None:
    rules = Rules(roots=(tmp_path / "src",), env_file=tmp_path / "deploy" / ".env")
    assert rules.classify(tmp_path / "other.py") is None
    assert rules.classify(tmp_path / "deploy" / ".env") == "env"


def test_dependency_files() -> None:
    assert is_dependency_file(PurePath("requirements/prod.txt"))
    assert not is_dependency_file(PurePath("docs/readme.txt"))


def test_watched_dirs_prune_ignored_folders_and_virtualenvs(tmp_path: Path) -> None:
    for folder in ("app/sub", ".git/objects", "node_modules/pkg", "app/__pycache__", "env/lib"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    deploy = tmp_path.parent / f"{tmp_path.name}-deploy"
    deploy.mkdir()
    rules = Rules(roots=(tmp_path,), env_file=deploy / ".env")
    found = {p.relative_to(tmp_path.parent).as_posix() for p in watched_dirs(rules)}
    name = tmp_path.name
    assert found == {name, f"{name}/app", f"{name}/app/sub", f"{name}-deploy"}


def test_is_app_file() -> None:
    roots = ("/src/app",)
    assert is_app_file("/src/app/main.py", roots)
    assert is_app_file("/src/app/pkg/mod.py", roots)
    assert not is_app_file("/src/app/.venv/lib/python3.11/site-packages/fastapi/__init__.py", roots)
    assert not is_app_file("/usr/lib/python3.11/json/__init__.py", roots)
    assert not is_app_file("/src/application/main.py", roots)


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /app rw,relatime - virtiofs mount0 rw
41 22 0:36 / /work/my\\040tree rw - fuse.grpcfuse grpcfuse rw
42 22 0:37 / /srv/nfs rw - nfs4 server:/export rw
"""


def test_mount_detection() -> None:
    mounts = mount_types(MOUNTINFO)
    assert ("/work/my tree", "fuse.grpcfuse") in mounts
    assert filesystem_of(Path("/app/main.py"), mounts) == "virtiofs"
    assert filesystem_of(Path("/application"), mounts) == "ext4"
    assert filesystem_of(Path("/srv/nfs/x"), mounts) == "nfs4"


def test_force_polling_variable(tmp_path: Path) -> None:
    assert (
        needs_polling([tmp_path], {"HOTMODE_FORCE_POLLING": "1"}) == "HOTMODE_FORCE_POLLING is set"
    )
    assert needs_polling([tmp_path], {"HOTMODE_FORCE_POLLING": "no"}) != (
        "HOTMODE_FORCE_POLLING is set"
    )


def test_status_pipe_round_trip() -> None:
    read_fd, write_fd = os.pipe()
    try:
        writer, reader = StatusWriter(write_fd), StatusReader(read_fd)
        writer.send("started", pid=7)
        writer.send("modules", modules=["m" * 50] * 200)  # larger than one pipe write
        messages = []
        while len(messages) < 2:
            batch = reader.read()
            assert batch is not None
            messages.extend(batch)
        assert messages[0] == {"event": "started", "pid": 7}
        assert len(messages[1]["modules"]) == 200
        os.close(write_fd)
        write_fd = -1
        assert reader.read() is None
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def test_spec_round_trip() -> None:
    spec = WorkerSpec("main:app", "/a", ("/a",), {"X": "1"}, "debug", 2.0, 42)
    assert WorkerSpec.from_json(spec.to_json()) == spec


def test_describe_failure_points_at_the_users_line(tmp_path: Path) -> None:
    source = tmp_path / "app" / "routes.py"
    source.parent.mkdir()
    source.write_text("x = 1\nraise RuntimeError('boom')\n")
    try:
        exec(compile(source.read_text(), str(source), "exec"), {})  # noqa: S102 -- the test's own file
    except RuntimeError as exc:
        line = describe_failure(exc, (str(tmp_path),), str(tmp_path))
    assert line == "app/routes.py:2: RuntimeError: boom"

    try:
        compile("def f(:\n", str(tmp_path / "main.py"), "exec")
    except SyntaxError as exc:
        line = describe_failure(exc, (str(tmp_path),), str(tmp_path))
    assert line.startswith("main.py:1: SyntaxError: ")
