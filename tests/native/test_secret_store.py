"""The native companions' generated secrets: made once, private, never through a link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hotmode.errors import UsageError
from hotmode.native import secret_store


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / ".hotmode").mkdir(parents=True)
    return project


def test_a_secret_is_generated_once_private_and_kept(root: Path) -> None:
    first = secret_store.read(root, "dev", "core", "db_password", create=True)
    again = secret_store.read(root, "dev", "core", "db_password", create=True)
    path = secret_store.folder(root, "dev", "core") / "db_password"
    assert first == again == path.read_text().strip()
    assert len(first) >= 24
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (path.parent, path.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # Each mode x edition has its own; nothing is left of the temporary files.
    assert secret_store.read(root, "prod", "core", "db_password", create=True) != first
    assert os.listdir(path.parent) == ["db_password"]


def test_without_create_a_missing_secret_is_one_line(root: Path) -> None:
    with pytest.raises(UsageError, match="does not exist; start the mode with `hotmode up`"):
        secret_store.read(root, "dev", "core", "db_password", create=False)


@pytest.mark.parametrize("where", ["secrets", "secrets/dev-core", "secrets/dev-core/db_password"])
def test_a_planted_link_is_refused_and_its_target_untouched(
    root: Path, tmp_path: Path, where: str
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "db_password").write_text("the victim's\n")
    (victim / "db_password").chmod(0o644)
    link = root / ".hotmode" / where
    link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = victim / "db_password" if where.endswith("db_password") else victim
    link.symlink_to(target)

    with pytest.raises(UsageError, match="link"):
        secret_store.read(root, "dev", "core", "db_password", create=True)

    assert (victim / "db_password").read_text() == "the victim's\n"
    assert stat.S_IMODE((victim / "db_password").stat().st_mode) == 0o644
    assert sorted(os.listdir(victim)) == ["db_password"]


def test_a_secret_open_to_others_is_refused(root: Path) -> None:
    secret_store.read(root, "dev", "core", "db_password", create=True)
    path = secret_store.folder(root, "dev", "core") / "db_password"
    path.chmod(0o644)
    with pytest.raises(UsageError, match=r"is open to other users \(mode 644\); chmod 600 it"):
        secret_store.read(root, "dev", "core", "db_password", create=False)
