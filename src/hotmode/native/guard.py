"""The check, before a command changes what runs, that nothing hotmode keeps is a planted link.

`.hotmode/` holds hotmode's own files and folders (the lock, the records, run logs, snapshots,
byte-code, data), and anything the user's processes or a commit put there. A link in the place
of any of them is refused in one line naming it (`LinkError`, exit 2) before anything starts or
stops, so that no later step can write, truncate, chmod, delete or run through it. The one link
hotmode makes itself (a data folder in the shared data home, `data_home`) passes on proof. Each
later step is still walked without following links (`hotmode.safefs`): this check is what makes
the refusal come first, with nothing half done.
"""

from __future__ import annotations

from pathlib import Path

from hotmode import safefs
from hotmode.native import data_home

# The folders under `.hotmode/` whose entries are hotmode's own too (a snapshot's content is a
# commit's, and may hold the links the commit holds: not checked here).
_OWN_FOLDERS = ("runs", "snapshots", "logs", "pycache", "data", "backup")


def check_links(root: Path) -> None:
    """Refuse (`LinkError`) a link where hotmode keeps its own file or folder in the project
    at `root`."""
    top = root / ".hotmode"
    for path in _own_paths(top):
        if path.is_symlink() and not _proven_data(root, path):
            raise safefs.link_error(path)


def _own_paths(top: Path) -> list[Path]:
    paths = [top]
    if top.is_symlink() or not top.is_dir():
        return paths
    paths += _entries(top)
    for name in _OWN_FOLDERS:
        paths += _entries(top / name)
    for mode in _entries(top / "data"):
        paths += _entries(mode)
    return paths


def _entries(folder: Path) -> list[Path]:
    if folder.is_symlink() or not folder.is_dir():
        return []
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _proven_data(root: Path, path: Path) -> bool:
    """True for a data folder's link that is provably hotmode's (`.hotmode/data/<mode>/<name>`)."""
    data = root / ".hotmode" / "data"
    return path.parent.parent == data and data_home.linked_target(root, path) is not None
