"""Where a companion's native data lives: in the project, or where its own user can reach it.

Each companion keeps one data folder per mode and edition, `.hotmode/data/<mode>-<edition>/<name>`.
When hotmode runs as root and the companion runs as its own user (postgres refuses root), a
project in a private folder (`/root/...`, mode 700) is out of that user's reach. The data then
goes to a place it can reach, `/var/lib/hotmode/<project>-<hash>/<mode>-<edition>/<name>`
(`HOTMODE_DATA_HOME` names another base), and the project's own name for it becomes a symbolic
link there: the data still belongs to the project and mode, and `down --volumes`, `status` and
`switch` find it by the same name. A folder that already holds data is never moved.

That link is the one hotmode makes under `.hotmode/`, and it is believed only on proof: it names
this project's folder in a data home where every folder on the way is root's (or the user's) and
no one else can write, as is the file naming the project (`safefs.trust_problem`). Any other link
under `.hotmode/data` is refused in one line (`LinkError`, exit 2): never followed, never deleted
through, and never written through by the embedded default either.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from hotmode import safefs
from hotmode.config import Config
from hotmode.errors import LinkError, StateError
from hotmode.modes import Selection
from hotmode.services import Companion

if TYPE_CHECKING:
    import pwd

SHARED_HOME = Path("/var/lib/hotmode")
HOME_VARIABLE = "HOTMODE_DATA_HOME"
# The file in a project's shared folder that names the project it belongs to.
OWNER_FILE = "project"


def data_root(config: Config) -> Path:
    return config.root / ".hotmode" / "data"


def data_folder(config: Config, selection: Selection, companion: Companion) -> Path:
    """A companion's data folder by its project name (a link when the data lives elsewhere)."""
    return data_root(config) / f"{selection.mode}-{selection.edition}" / companion.name


def data_folders(config: Config) -> list[Path]:
    """The native data folders that exist, linked ones included, for `down --volumes`; a link
    in place of `data` or of a mode's folder is refused (`LinkError`), never listed through."""
    root = data_root(config)
    if root.is_symlink():
        raise safefs.link_error(root)
    if not root.is_dir():
        return []
    found = []
    for mode in root.iterdir():
        if mode.is_symlink():
            raise safefs.link_error(mode)
        if mode.is_dir():
            found += [path for path in mode.iterdir() if path.is_dir() or path.is_symlink()]
    return sorted(found)


def linked_target(config: Config | Path, link: Path) -> Path | None:
    """Where a linked data folder's data is, if the link is provably hotmode's: it points at a
    real folder named for this project, mode x edition and companion, in a project folder whose
    owner file names this project. Else None: `.hotmode/` is untrusted input, and a planted link
    must never make hotmode delete or start a database in someone else's folder."""
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    expected = (_project_name(config), link.parent.name, link.name)
    if not target.is_absolute() or tuple(target.parts[-3:]) != expected:
        return None
    if target.is_symlink() or not target.is_dir() or safefs.trust_problem(target.parent):
        return None
    owner = _owner(target.parents[1])
    return target if owner == str(_root(config)) else None


def _root(config: Config | Path) -> Path:
    # `down` proves links with the project's folder alone when its declaration cannot be read.
    return config if isinstance(config, Path) else config.root


def _owner(project: Path) -> str | None:
    """The project a shared project folder names, if the file naming it is root's or the
    user's own regular file; else None (another user's file proves nothing)."""
    path = project / OWNER_FILE
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_uid not in (0, os.getuid()):
            return None
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def describe(config: Config, folder: Path) -> str:
    """A data folder as `down --volumes` names it: where the data really is, when elsewhere."""
    if not folder.is_symlink():
        return str(folder)
    target = linked_target(config, folder)
    if target is None:
        raise safefs.link_error(folder)  # refused before anything is asked or deleted
    return f"{folder} (at {target})"


def delete(config: Config, folder: Path) -> None:
    """Delete a data folder: a linked one's data where it lives (when the link is proven
    hotmode's), then the link. Nothing is deleted across any other link."""
    if folder.is_symlink():
        target = linked_target(config, folder)
        if target is None:
            raise safefs.link_error(folder)
        safefs.remove_tree(target.parent, target)
        safefs.unlink(config.root, folder)
        _tidy(target.parent)
        return
    safefs.remove_tree(config.root, folder)


def _tidy(mode_folder: Path) -> None:
    """Remove a shared mode folder left empty, and its project's folder once it holds only the
    file naming the project: nothing of a project outlives its data there. Each step is taken
    in the project's folder held open from the data home, never through a link."""
    project = mode_folder.parent
    # Tidying is for looks: a link found there now is left alone (the data is deleted already).
    with contextlib.suppress(OSError, LinkError):
        with safefs.folder(project.parent, project) as fd:
            at = fd if safefs.AT_CALLS else None
            os.rmdir(mode_folder.name if at is not None else mode_folder, dir_fd=at)
            if os.listdir(fd if at is not None else project) != [OWNER_FILE]:
                return
            os.unlink(OWNER_FILE if at is not None else project / OWNER_FILE, dir_fd=at)
        with safefs.folder(project.parent, project.parent) as home:
            at = home if safefs.AT_CALLS else None
            os.rmdir(project.name if at is not None else project, dir_fd=at)


def private_parent(folder: Path, user: pwd.struct_passwd) -> Path | None:
    """The first existing parent of `folder` that `user` cannot pass through, or None."""
    for parent in reversed(folder.parents):
        if not parent.exists():
            break
        mode = parent.stat()
        if mode.st_uid != user.pw_uid and not mode.st_mode & 0o001:
            return parent
    return None


def shared_folder(config: Config, selection: Selection, companion: Companion) -> Path:
    """Where a companion's data goes when its user cannot reach the project: one folder per
    project (its name and a hash of its path), mode and edition."""
    home = Path(os.environ.get(HOME_VARIABLE) or SHARED_HOME)
    return home / _project_name(config) / f"{selection.mode}-{selection.edition}" / companion.name


def _project_name(config: Config | Path) -> str:
    """The project's folder in the shared home: its name and a hash of its path."""
    root = _root(config)
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return f"{root.name}-{digest}"


def place(
    config: Config, selection: Selection, companion: Companion, user: pwd.struct_passwd | None
) -> tuple[Path, str]:
    """The folder the companion's process is given, and a line to say when it is not in the
    project itself; `StateError` if its user can reach neither."""
    link = data_folder(config, selection, companion)
    if link.is_symlink():
        target = _proven(config, link)
        where = f"hotmode: {companion.name}: its data is in {target} (linked from {link})"
        blocked = None if user is None else private_parent(target, user)
        if blocked is None:
            return target, where
        assert user is not None  # noqa: S101 - blocked is None without a user
        raise _unreachable(companion, user, target, blocked)
    safefs.make_folders(config.root, link.parent)
    if user is None:
        return link, ""
    blocked = private_parent(link, user)
    if blocked is None:
        return link, ""
    if link.is_dir() and any(link.iterdir()):
        raise _unreachable(companion, user, link, blocked)  # data is never moved
    target = shared_folder(config, selection, companion)
    project = target.parents[1]
    for folder in reversed([target.parent, *target.parent.parents]):
        if not folder.is_symlink() and not folder.exists():
            folder.mkdir(mode=0o711)  # passable, not listable
            safefs.chmod(folder.parent, folder, 0o711)
    problem = safefs.trust_problem(target.parent)
    if problem:
        raise LinkError(
            f"the data home {target.parents[2]} cannot hold {companion.name}'s data: {problem}; "
            f"make every folder on the way root's and not writable by others, or set "
            f"{HOME_VARIABLE} to such a folder"
        )
    owner = project / OWNER_FILE
    named = _owner(project)
    if (owner.is_symlink() or owner.exists()) and named != str(config.root):
        raise StateError(
            f"{project} belongs to another project or user ({named or 'not proven'}); "
            f"move it away, or set {HOME_VARIABLE} to another folder"
        )
    safefs.write_atomic(project, owner, f"{config.root}\n")
    still = private_parent(target, user)
    if still is not None:
        raise _unreachable(companion, user, target, still)
    # Made in the mode's folder held open from the project's, never through a link put on
    # the way since the checks above (an empty folder in its place goes: nothing is lost).
    safefs.symlink(config.root, link, target)
    return target, (
        f"hotmode: {companion.name} runs as user {user.pw_name}, who cannot pass through "
        f"{blocked}; its data is in {target} (linked from {link})"
    )


def _proven(config: Config, link: Path) -> Path:
    """The data a link under `.hotmode/data` leads to, if it is provably hotmode's; else
    `LinkError`: a link hotmode did not make is never followed, whoever the process runs as."""
    target = linked_target(config, link)
    if target is None:
        raise LinkError(
            f"{link} is a link to {os.readlink(link)}, which is not where hotmode keeps this "
            "project's data (or is not provably hotmode's); remove the link (what it points to "
            "is left alone)"
        )
    return target


def embedded_folder(config: Config, selection: Selection, companion: Companion) -> Path:
    """The folder the embedded default keeps its data in, made without following a link: the
    proven shared folder when the data lives there, else `.hotmode/data/...` itself."""
    link = data_folder(config, selection, companion)
    if link.is_symlink():
        return _proven(config, link)
    safefs.make_folders(config.root, link)
    return link


def _unreachable(
    companion: Companion, user: pwd.struct_passwd, folder: Path, parent: Path
) -> StateError:
    return StateError(
        f"{companion.name} runs as user {user.pw_name}, who cannot reach {folder}: "
        f"{parent} is private; allow passing through it (chmod o+x {parent}), "
        "or run hotmode as a regular user"
    )
