"""Read-only snapshots of the committed source, for native prod.

`git archive <commit>:<source>` is unpacked under `.hotmode/snapshots/<commit>/` and made
read-only, so what native prod serves is exactly a commit, whatever the working tree holds.
"""

from __future__ import annotations

import errno
import io
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from hotmode import safefs
from hotmode.config import Config
from hotmode.errors import UsageError
from hotmode.source import UNCOMMITTED, git, revision

_COMMIT = re.compile(r"[0-9a-f]{7,64}")


def _make_read_only(work: Path, folder: Path) -> None:
    safefs.chmod_tree(work.parent, folder, 0o444, 0o555)


def _remove(work: Path, folder: Path) -> None:
    # From the project's descriptor, never across a link: a planted `snapshots` or
    # `snapshots/<commit>` link must not have hotmode delete or chmod what it names.
    safefs.remove_tree(work.parent, folder)


def _snapshot_at(target: Path) -> bool:
    """True if hotmode's snapshot folder is there; `LinkError` if a link is in its place."""
    if target.is_symlink():
        raise safefs.link_error(target)
    return target.is_dir()


def prepare(
    config: Config, work: Path, allow_uncommitted: bool, commit: str | None = None
) -> tuple[Path, str]:
    """Unpack a commit of the source read-only (HEAD unless `commit`); its folder and commit.

    Each run unpacks into a folder of its own and renames it into place, so two runs never
    write one folder; a snapshot already in place is used as it is. Nothing is pruned here:
    the snapshot of a mode that still runs must outlive the start of the next (see `prune`).
    """
    snapshots = work / "snapshots"
    if commit is None:
        commit = revision(config.source)
    elif commit != UNCOMMITTED and not _COMMIT.fullmatch(commit):
        raise UsageError(f"{commit!r} is not a commit id; prod serves a commit of the source")
    if commit is None or commit == UNCOMMITTED:
        target = snapshots / UNCOMMITTED
        if commit == UNCOMMITTED and _snapshot_at(target):
            return target, UNCOMMITTED
        if not allow_uncommitted:
            raise UsageError(
                f"{config.source} is not in a git repository, so prod cannot serve a commit; "
                "commit it, or pass --allow-uncommitted to serve the working tree read-only"
            )
        partial = _partial(snapshots, UNCOMMITTED)
        shutil.copytree(
            config.source,
            partial,
            ignore=shutil.ignore_patterns("__pycache__", "logs"),
            dirs_exist_ok=True,
        )
        if target.is_symlink() or target.exists():
            _remove(work, target)
        return _place(work, partial, target), UNCOMMITTED
    target = snapshots / commit
    if _snapshot_at(target):
        return target, commit
    # A tree-ish of the source folder, archived from the top: git refuses `<rev>:path` from
    # inside a subfolder whose cwd it considers untracked.
    prefix = git(config.source, "rev-parse", "--show-prefix") or ""
    top = git(config.source, "rev-parse", "--show-toplevel") or str(config.source)
    archive = subprocess.run(  # noqa: S603
        ["git", "-C", top, "archive", "--format=tar", f"{commit}:{prefix}"],  # noqa: S607
        capture_output=True,
        timeout=120,
        check=False,
    )
    if archive.returncode != 0:
        message = archive.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(
            f"git archive of {config.source} at {commit[:12]} failed: "
            f"{message[-1] if message else 'unknown'}; is the source folder committed?"
        )
    partial = _partial(snapshots, commit)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(partial, filter="data")
    return _place(work, partial, target), commit


def _partial(snapshots: Path, name: str) -> Path:
    safefs.make_folders(snapshots.parents[1], snapshots)
    return Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=snapshots))


def _place(work: Path, partial: Path, target: Path) -> Path:
    """Make `partial` read-only and rename it to `target`; if another run placed it first,
    keep theirs (the same commit, the same files) and remove ours."""
    _make_read_only(work, partial)
    safefs.chmod(work.parent, partial, 0o755)
    try:
        partial.rename(target)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            _remove(work, partial)
            raise
        _remove(work, partial)
        return target
    safefs.chmod(work.parent, target, 0o555)
    return target


def prune(work: Path, keep: set[str]) -> None:
    """Remove the snapshots of commits not in `keep`, and folders left by interrupted runs.

    Called under the project lock once the new mode is healthy, so no run is unpacking.
    """
    snapshots = work / "snapshots"
    if snapshots.is_symlink():
        raise safefs.link_error(snapshots)
    try:
        entries = list(snapshots.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_symlink():
            raise safefs.link_error(entry)
        if entry.name not in keep and entry.is_dir():
            _remove(work, entry)
