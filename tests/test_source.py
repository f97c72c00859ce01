"""`hotmode.source`: revision, dirtiness, the committed-source digest, on a real git repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import commit, git
from hotmode import source
from hotmode.errors import UsageError


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "backend" / "app").mkdir(parents=True)
    (tmp_path / "backend" / "main.py").write_text("app = 1\n")
    (tmp_path / "backend" / "app" / "routes.py").write_text("GREETING = 'hi'\n")
    (tmp_path / "README").write_text("docs\n")
    git(tmp_path, "init", "-q")
    commit(tmp_path, "first")
    return tmp_path


def test_revision_is_head_and_clean_tree_builds_as_it(repo: Path) -> None:
    backend = repo / "backend"
    head = git(repo, "rev-parse", "HEAD")
    assert source.revision(backend) == head
    assert not source.is_dirty(backend)
    assert source.build_revision(backend) == head
    assert source.describe_working_tree(backend) == head


def test_a_dirty_source_is_refused_unless_allowed(repo: Path) -> None:
    backend = repo / "backend"
    (backend / "new.py").write_text("x = 1\n")
    assert source.is_dirty(backend)
    with pytest.raises(UsageError, match=r"uncommitted changes \(backend/new.py.*--allow-dirty"):
        source.build_revision(backend)
    head = git(repo, "rev-parse", "HEAD")
    assert source.build_revision(backend, allow_dirty=True) == f"{head}-dirty"
    (backend / "new.py").unlink()
    (backend / "main.py").write_text("app = 2\n")
    with pytest.raises(UsageError, match=r"uncommitted changes \(backend/main.py, "):
        source.build_revision(backend)


def test_changes_outside_the_source_do_not_make_it_dirty_unless_named(repo: Path) -> None:
    backend = repo / "backend"
    (repo / "README").write_text("more docs\n")
    assert not source.is_dirty(backend)
    assert source.is_dirty(backend, repo / "README")


def test_digest_follows_committed_source_only(repo: Path) -> None:
    backend = repo / "backend"
    first = source.source_digest(backend)
    assert first is not None
    assert first.startswith("git-tree:")
    (backend / "main.py").write_text("app = 2\n")
    assert source.source_digest(backend) == first, "an uncommitted edit is not the commit"
    (repo / "README").write_text("more docs\n")
    commit(repo, "docs and code")
    second = source.source_digest(backend)
    assert second != first
    (repo / "README").write_text("docs only\n")
    commit(repo, "docs only")
    assert source.source_digest(backend) == second, "a commit outside the source keeps it"


def test_committed_blobs_are_git_blob_ids_relative_to_the_source(repo: Path) -> None:
    blobs = source.committed_blobs(repo / "backend")
    assert blobs is not None
    assert set(blobs) == {"main.py", "app/routes.py"}
    assert blobs["main.py"] == git(repo, "hash-object", "backend/main.py")


def test_outside_a_repository(tmp_path: Path) -> None:
    assert source.revision(tmp_path) is None
    assert source.source_digest(tmp_path) is None
    assert source.describe_working_tree(tmp_path) == source.UNCOMMITTED
    with pytest.raises(UsageError, match="not in a git repository"):
        source.build_revision(tmp_path)
