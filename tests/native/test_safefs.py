"""safefs: writes, deletes and chmods under a trusted folder never go through a link (issue 26).

Real files and links in a temporary folder; each victim lives outside the trusted root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hotmode import safefs
from hotmode.errors import LinkError


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, victim = tmp_path / "project", tmp_path / "victim"
    root.mkdir()
    (victim / "sub").mkdir(parents=True)
    (victim / "file").write_text("victim\n")
    (victim / "sub" / "deep").write_text("deep\n")
    victim.chmod(0o700)
    return root, victim


def test_a_link_on_the_way_is_refused_by_name_and_nothing_is_made_through_it(
    tree: tuple[Path, Path],
) -> None:
    root, victim = tree
    (root / ".hotmode").symlink_to(victim)
    for act in (
        lambda: safefs.make_folders(root, root / ".hotmode" / "data" / "x"),
        lambda: safefs.write_atomic(root, root / ".hotmode" / "state.json", "{}"),
        lambda: safefs.open_file(root, root / ".hotmode" / "lock", os.O_RDWR | os.O_CREAT),
        lambda: safefs.remove_tree(root, root / ".hotmode" / "sub"),
        lambda: safefs.unlink(root, root / ".hotmode" / "file"),
        lambda: safefs.chmod(root, root / ".hotmode" / "sub", 0o777),
    ):
        with pytest.raises(LinkError, match=rf"^{root / '.hotmode'} is a symbolic link \(to "):
            act()
    assert sorted(p.name for p in victim.iterdir()) == ["file", "sub"]
    assert (victim / "sub" / "deep").read_text() == "deep\n"
    assert (victim / "sub").stat().st_mode & 0o777 != 0o777


def test_a_file_link_is_never_truncated_and_a_dangling_one_never_creates_its_target(
    tree: tuple[Path, Path],
) -> None:
    root, victim = tree
    (root / "lock").symlink_to(victim / "file")
    (root / "dangling").symlink_to(victim / "made")
    for name in ("lock", "dangling"):
        with pytest.raises(LinkError):
            safefs.open_file(root, root / name, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    assert (victim / "file").read_text() == "victim\n"
    assert not (victim / "made").exists()


def test_an_atomic_write_replaces_a_link_and_leaves_its_target(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    (root / "state.json").symlink_to(victim / "file")
    safefs.write_atomic(root, root / "state.json", "ours\n")
    assert not (root / "state.json").is_symlink()
    assert (root / "state.json").read_text() == "ours\n"
    assert (victim / "file").read_text() == "victim\n"


def test_a_tree_is_deleted_without_crossing_the_links_in_it(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    doomed = root / "snapshots" / "abc"
    (doomed / "inner").mkdir(parents=True)
    (doomed / "inner" / "to-folder").symlink_to(victim, target_is_directory=True)
    (doomed / "to-file").symlink_to(victim / "file")
    (doomed / "inner" / "x.py").write_text("x\n")
    safefs.chmod_tree(root, doomed, 0o444, 0o555)  # a snapshot: read-only
    assert (victim / "file").stat().st_mode & 0o777 != 0o444
    safefs.remove_tree(root, doomed)
    assert not doomed.exists() and (root / "snapshots").is_dir()
    assert (victim / "sub" / "deep").read_text() == "deep\n"
    assert victim.stat().st_mode & 0o777 == 0o700
    safefs.remove_tree(root, doomed)  # gone already is fine


def test_a_link_to_delete_is_refused_not_followed(tree: tuple[Path, Path]) -> None:
    root, victim = tree
    (root / "data").symlink_to(victim, target_is_directory=True)
    with pytest.raises(LinkError):
        safefs.remove_tree(root, root / "data")
    with pytest.raises(LinkError):
        safefs.chmod_tree(root, root / "data", 0o444, 0o555)
    assert (victim / "sub" / "deep").read_text() == "deep\n"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="owners and modes are POSIX's")
def test_trust_needs_every_folder_on_the_way_to_be_ours_and_closed_to_others(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home" / "hotmode"
    home.mkdir(parents=True)
    (tmp_path / "home").chmod(0o755)
    home.chmod(0o755)
    assert safefs.trust_problem(home) == ""
    (tmp_path / "home").chmod(0o777)
    assert safefs.trust_problem(home) == f"{tmp_path / 'home'} can be written by other users"
    (tmp_path / "home").chmod(0o1777)  # sticky, as /tmp: others cannot rename what is ours
    assert safefs.trust_problem(home) == ""
    home.chmod(0o1777)  # but the folder trusted itself may not be open
    assert "can be written by other users" in safefs.trust_problem(home)
    home.chmod(0o755)
    (tmp_path / "link").symlink_to(home)
    assert safefs.trust_problem(tmp_path / "link") == f"{tmp_path / 'link'} is a symbolic link"
    if os.getuid() == 0:
        os.chown(home, 65534, 65534)
        assert safefs.trust_problem(home) == f"{home} belongs to another user (uid 65534)"
