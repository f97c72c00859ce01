"""What commit the source is, whether it is clean, and a digest of the committed source files.

Prod, in Docker or native, promises to serve exactly a commit. These are the facts that promise is
built and checked on: `revision` (the commit checked out), `is_dirty` (uncommitted changes under
a folder, untracked files included), `source_digest` (the git tree id of the committed source
folder: a hash of every committed file's path and content, the same whatever the working tree
holds) and `build_revision` (the revision a prod build is labelled with, refusing a dirty tree
unless allowed). All of them ask git; none of them changes anything.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hotmode.errors import UsageError

UNCOMMITTED = "uncommitted"
DIRTY_SUFFIX = "-dirty"


def git(folder: Path, *args: str) -> str | None:
    """Run git in `folder`; its stripped output, or None when git fails or is missing."""
    try:
        result = subprocess.run(  # noqa: S603
            ["git", "-C", str(folder), *args],  # noqa: S607 - git from PATH, as users run it
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def revision(folder: Path) -> str | None:
    """The commit checked out at `folder`, or None outside a repository."""
    return git(folder, "rev-parse", "HEAD")


def is_dirty(folder: Path, *also: Path) -> bool:
    """True if `folder` (or any of `also`) has uncommitted changes, untracked files included."""
    paths = [".", *(str(path.resolve()) for path in also)]
    return bool(git(folder, "status", "--porcelain", "--", *paths))


def describe_working_tree(folder: Path) -> str:
    """`<commit>`, `<commit>-dirty`, or 'uncommitted' outside a repository."""
    commit = revision(folder)
    if commit is None:
        return UNCOMMITTED
    return f"{commit}{DIRTY_SUFFIX}" if is_dirty(folder) else commit


def source_digest(folder: Path) -> str | None:
    """The git tree id of `folder` at HEAD, as `git-tree:<id>`; None outside a repository.

    Git's tree id hashes every committed file under the folder, path and content, so it changes
    exactly when the committed source does, and never with edits that are not committed.
    """
    tree = git(folder, "rev-parse", "HEAD:./")
    return f"git-tree:{tree}" if tree else None


def build_revision(folder: Path, *also: Path, allow_dirty: bool = False) -> str:
    """The revision a prod build of `folder` is labelled with: HEAD, or `HEAD-dirty` if allowed.

    Raises `UsageError` outside a repository, or when `folder` (or `also`, e.g. the Dockerfile)
    has uncommitted changes and `allow_dirty` is false.
    """
    commit = revision(folder)
    if commit is None:
        raise UsageError(
            f"{folder} is not in a git repository, so a prod image cannot carry the commit it "
            "was built from; commit the source first"
        )
    if not is_dirty(folder, *also):
        return commit
    if not allow_dirty:
        changed = git(folder, "status", "--porcelain", "--", ".", *(str(p) for p in also)) or ""
        # `git` strips its output, so the first line may have lost its leading status space.
        first = changed.splitlines()[0].split(None, 1)[-1] if changed else "?"
        raise UsageError(
            f"{folder} has uncommitted changes ({first}, ...); prod is built from a commit: "
            "commit or stash them, or pass --allow-dirty (the revision is then marked -dirty)"
        )
    return f"{commit}{DIRTY_SUFFIX}"


def committed_blobs(folder: Path) -> dict[str, str] | None:
    """Every committed regular file under `folder` at HEAD: relative path -> git blob id."""
    listing = git(folder, "ls-tree", "-r", "-z", "--full-tree", "HEAD:./")
    if listing is None:
        return None
    blobs: dict[str, str] = {}
    for entry in listing.split("\0"):
        meta, _, path = entry.partition("\t")
        fields = meta.split()
        if len(fields) == 3 and fields[1] == "blob" and fields[0] in ("100644", "100755"):
            blobs[path] = fields[2]
    return blobs
