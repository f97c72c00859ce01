"""Read-only snapshots of the committed source, for native prod.

`git archive <commit>:<source>` is unpacked under `.hotmode/snapshots/<commit>/` and made
read-only, so what native prod serves is exactly a commit, whatever the working tree holds.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

from hotmode.config import Config
from hotmode.errors import UsageError
from hotmode.source import UNCOMMITTED, git, revision

_COMMIT = re.compile(r"[0-9a-f]{7,64}")


def _make_read_only(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            os.chmod(Path(folder) / name, 0o444)
        os.chmod(folder, 0o555)


def _remove(root: Path) -> None:
    def writable(func: object, path: str, _exc: object) -> None:
        os.chmod(os.path.dirname(path), 0o755)
        os.chmod(path, stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)

    for folder, _dirs, _files in os.walk(root):
        os.chmod(folder, 0o755)
    shutil.rmtree(root, onerror=writable)


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
        if commit == UNCOMMITTED and target.is_dir():
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
        if target.exists():
            _remove(target)
        return _place(partial, target), UNCOMMITTED
    target = snapshots / commit
    if target.is_dir():
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
    return _place(partial, target), commit


def _partial(snapshots: Path, name: str) -> Path:
    snapshots.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=snapshots))


def _place(partial: Path, target: Path) -> Path:
    """Make `partial` read-only and rename it to `target`; if another run placed it first,
    keep theirs (the same commit, the same files) and remove ours."""
    _make_read_only(partial)
    os.chmod(partial, 0o755)
    try:
        partial.rename(target)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            _remove(partial)
            raise
        _remove(partial)
        return target
    os.chmod(target, 0o555)
    return target


def prune(work: Path, keep: set[str]) -> None:
    """Remove the snapshots of commits not in `keep`, and folders left by interrupted runs.

    Called under the project lock once the new mode is healthy, so no run is unpacking.
    """
    snapshots = work / "snapshots"
    try:
        entries = list(snapshots.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name not in keep and entry.is_dir():
            _remove(entry)
