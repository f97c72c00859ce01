"""Moving a team's hand-written files aside before hotmode writes its own in their place.

`hotmode render --adopt` calls `back_up` for every file it is about to write whose current
content hotmode did not write: each is moved (never copied then deleted) under
`.hotmode/backup/<timestamp>/`, keeping its path relative to the project, so nothing is lost
and `git status` shows what replaced what.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from hotmode import safefs
from hotmode.native.state import ensure_state_dir, fs_error


def back_up(root: Path, paths: Iterable[Path]) -> list[tuple[Path, Path]]:
    """Move each existing file of `paths` under `.hotmode/backup/<timestamp>/`; (from, to)."""
    existing = [path for path in paths if path.is_file()]
    if not existing:
        return []
    folder = ensure_state_dir(root) / "backup" / time.strftime("%Y%m%d-%H%M%S")
    suffix = 0
    while folder.exists():
        suffix += 1
        folder = folder.with_name(f"{folder.name.split('.')[0]}.{suffix}")
    moved = []
    for path in existing:
        try:
            relative = path.resolve().relative_to(root.resolve())
        except ValueError:
            relative = Path(path.name)
        target = folder / relative
        try:
            # Walked from the project: a planted `.hotmode/backup` link is refused, never
            # followed to move the team's files out of the project (issue 26).
            safefs.make_folders(root, target.parent)
            os.replace(path, target)
        except OSError as exc:
            raise fs_error(exc, target.parent) from exc
        moved.append((path, target))
    return moved
