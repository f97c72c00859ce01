"""Where a companion's data lives is believed only on proof (issue 26).

A link under `.hotmode/data` is followed only when it is the one hotmode makes: into this
project's folder of a data home whose every folder is root's or the user's and closed to
others. Real folders, links and owners; root-only cases are skipped for other users."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pwd
from pathlib import Path

import pytest

from hotmode.config import Config, load_config
from hotmode.errors import LinkError
from hotmode.modes import Selection
from hotmode.native import data_home

PROD = Selection("prod", "default", "test", "test")
DECLARATION = """name = "trusting"
source = "app"

[services.db]
image = "db:1"
port = 5432
embedded = { DB_DIR = "{data}" }

[services.db.native]
user = "nobody"
command = ["no-such-database", "{data}"]
"""


def _project(folder: Path) -> Config:
    (folder / "app").mkdir(parents=True)
    (folder / "hotmode.toml").write_text(DECLARATION)
    return load_config(folder / "hotmode.toml")


def _shared(home: Path, config: Config, owner: str) -> Path:
    """A data folder as hotmode makes it in `home` for `config`'s project, naming `owner`."""
    target = data_home.shared_folder(config, PROD, config.services[0])
    target.mkdir(parents=True)
    for folder in (home, *list(target.parents)[: len(target.parents) - len(home.parents) - 1]):
        folder.chmod(0o711)
    (target.parents[1] / data_home.OWNER_FILE).write_text(f"{owner}\n")
    (target / "PG_VERSION").write_text("16\n")
    return target


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data-home"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    monkeypatch.setenv(data_home.HOME_VARIABLE, str(folder))
    return folder


def test_a_planted_link_into_another_projects_data_is_refused_for_the_process_and_the_fallback(
    tmp_path: Path, home: Path
) -> None:
    # A non-root project: the planted companion-level link names another project's folder.
    other = _project(tmp_path / "other")
    theirs = _shared(home, other, str(other.root))
    config = _project(tmp_path / "mine")
    link = data_home.data_folder(config, PROD, config.services[0])
    link.parent.mkdir(parents=True)
    link.symlink_to(theirs, target_is_directory=True)

    with pytest.raises(LinkError, match=rf"^{link} is a link to {theirs}, which is not where"):
        data_home.place(config, PROD, config.services[0], None)
    with pytest.raises(LinkError):  # the embedded default does not write through it either
        data_home.embedded_folder(config, PROD, config.services[0])
    assert sorted(p.name for p in theirs.iterdir()) == ["PG_VERSION"]


def test_hotmodes_own_link_is_believed_in_a_trusted_home(tmp_path: Path, home: Path) -> None:
    config = _project(tmp_path / "mine")
    target = _shared(home, config, str(config.root))
    link = data_home.data_folder(config, PROD, config.services[0])
    link.parent.mkdir(parents=True)
    link.symlink_to(target, target_is_directory=True)
    assert data_home.linked_target(config, link) == target
    assert data_home.place(config, PROD, config.services[0], None)[0] == target

    home.chmod(0o777)  # anyone could have put it there: no proof any more
    assert data_home.linked_target(config, link) is None
    with pytest.raises(LinkError):
        data_home.place(config, PROD, config.services[0], None)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="chown needs root")
def test_another_users_project_folder_or_owner_file_is_not_believed(
    tmp_path: Path, home: Path
) -> None:
    config = _project(tmp_path / "mine")
    target = _shared(home, config, str(config.root))
    link = data_home.data_folder(config, PROD, config.services[0])
    link.parent.mkdir(parents=True)
    link.symlink_to(target, target_is_directory=True)
    owner = target.parents[1] / data_home.OWNER_FILE
    os.chown(owner, 65534, 65534)
    assert data_home.linked_target(config, link) is None
    os.chown(owner, 0, 0)
    os.chown(target.parents[1], 65534, 65534)  # the project's folder, pre-made by another user
    assert data_home.linked_target(config, link) is None


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="only root drops")
@pytest.mark.parametrize("planted", ["world-writable home", "another user's project folder"])
def test_root_keeps_no_data_in_a_home_it_cannot_trust(
    tmp_path: Path, home: Path, planted: str
) -> None:
    # As root in a private folder the data moves to the data home: not to one others can change.
    private = tmp_path / "root-home"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    config = _project(private / "mine")
    nobody = pwd.getpwnam("nobody")
    if planted == "world-writable home":
        home.chmod(0o777)
    else:
        project = data_home.shared_folder(config, PROD, config.services[0]).parents[1]
        project.mkdir()
        os.chown(project, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(LinkError, match=r"cannot hold db's data: "):
        data_home.place(config, PROD, config.services[0], nobody)
    assert not data_home.data_folder(config, PROD, config.services[0]).is_symlink()


def test_down_volumes_deletes_while_it_holds_the_project_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent `up` waits for the lock: it never starts on a folder being deleted."""
    from hotmode.cli import main

    config = _project(tmp_path / "mine")
    folder = data_home.data_folder(config, PROD, config.services[0])
    folder.mkdir(parents=True)
    (folder / "app.sqlite3").write_text("data")
    held: list[bool] = []
    delete = data_home.delete

    def deleting(config: Config, path: Path) -> None:
        with open(config.root / ".hotmode" / "lock", "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(True)
            else:
                held.append(False)
                fcntl.flock(handle, fcntl.LOCK_UN)
        delete(config, path)

    monkeypatch.setattr(data_home, "delete", deleting)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "down",
                "--native",
                "--volumes",
                "--yes",
                "--config",
                str(config.root / "hotmode.toml"),
            ]
        )
    assert code == 0, out.getvalue()
    assert held == [True]
    assert not folder.exists()
    assert f"hotmode: deleted {folder}" in out.getvalue()


def test_a_link_refused_for_the_database_process_is_not_written_through_by_the_fallback(
    tmp_path: Path,
) -> None:
    """The database's data link is refused, and the start stops there (exit 2): the embedded
    default never gets the same folder to write into."""
    from hotmode.native import companions

    root = tmp_path / "mine"
    (root / "app").mkdir(parents=True)
    (root / "hotmode.toml").write_text(
        DECLARATION.replace('user = "nobody"\n', "").replace("no-such-database", "true")
    )
    config = load_config(root / "hotmode.toml")
    victim = tmp_path / "victim"
    victim.mkdir()
    link = data_home.data_folder(config, PROD, config.services[0])
    link.parent.mkdir(parents=True)
    link.symlink_to(victim, target_is_directory=True)
    said: list[str] = []
    with pytest.raises(LinkError, match=rf"^{link} is a link to {victim}"):
        companions.start(config, PROD, said.append, engine=lambda: False)
    assert list(victim.iterdir()) == []
    assert not any("embedded default" in line for line in said), said
