"""Read-only snapshots of the committed source, for native prod.

`git archive HEAD:<source>` is unpacked under `.hotmode/snapshots/<commit>/` and made read-only,
so what native prod serves is exactly a commit, whatever the working tree holds.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

from hotmode.config import Config
from hotmode.errors import UsageError
from hotmode.source import UNCOMMITTED, git, revision


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


def prepare(config: Config, work: Path, allow_uncommitted: bool) -> tuple[Path, str]:
    """Unpack the committed source read-only; return its folder and the commit it is."""
    commit = revision(config.source)
    snapshots = work / "snapshots"
    if commit is None:
        if not allow_uncommitted:
            raise UsageError(
                f"{config.source} is not in a git repository, so prod cannot serve a commit; "
                "commit it, or pass --allow-uncommitted to serve the working tree read-only"
            )
        target = snapshots / UNCOMMITTED
        if target.exists():
            _remove(target)
        shutil.copytree(config.source, target, ignore=shutil.ignore_patterns("__pycache__", "logs"))
        _make_read_only(target)
        return target, UNCOMMITTED
    target = snapshots / commit
    if not target.is_dir():
        # A tree-ish of the source folder, archived from the top: git refuses `HEAD:path` from
        # inside a subfolder whose cwd it considers untracked.
        prefix = git(config.source, "rev-parse", "--show-prefix") or ""
        top = git(config.source, "rev-parse", "--show-toplevel") or str(config.source)
        archive = subprocess.run(  # noqa: S603
            ["git", "-C", top, "archive", "--format=tar", f"HEAD:{prefix}"],  # noqa: S607
            capture_output=True,
            timeout=120,
            check=False,
        )
        if archive.returncode != 0:
            message = archive.stderr.decode(errors="replace").strip().splitlines()
            raise UsageError(
                f"git archive of {config.source} failed: {message[-1] if message else 'unknown'}; "
                "is the source folder committed?"
            )
        partial = snapshots / f".{commit}.partial"
        if partial.exists():
            _remove(partial)
        partial.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(partial, filter="data")
        _make_read_only(partial)
        os.chmod(partial, 0o755)
        partial.rename(target)
        os.chmod(target, 0o555)
    for old in snapshots.iterdir():
        if old.name != target.name and not old.name.startswith("."):
            _remove(old)
    return target, commit
