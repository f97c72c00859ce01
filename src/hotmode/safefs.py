"""Writing, deleting and changing files under a folder hotmode trusts, never through a link.

The project tree is input: a repository can commit symbolic links, and any process of the user
can fill `.hotmode/`. So every path hotmode writes, truncates, deletes or chmods under a trusted
folder (the project, the data home) is opened one component at a time from a descriptor of that
folder, with `O_NOFOLLOW` at each step: a link on the way raises `LinkError` naming it, and is
neither followed nor deleted through. Each step holds the folder it came from, so a link swapped
in meanwhile is found at the next step, not followed (the guarantee `openat2`'s
`RESOLVE_NO_SYMLINKS` gives in one call). Trees are deleted the same way, descriptor by
descriptor. Where the system has no descriptor-relative calls (Windows), each step is checked
with `lstat` instead.

`trust_problem` is the other half: a folder that is not the user's own (or root's), or that
others can write, proves nothing about what is in it (the rule `ssh` applies to `~/.ssh`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from hotmode.errors import LinkError, UsageError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
# Descriptor-relative calls, as Linux and macOS have them.
_AT = {os.open, os.mkdir, os.unlink, os.rmdir, os.lstat, os.rename, os.symlink}
AT_CALLS = bool(_NOFOLLOW and _DIRECTORY) and _AT.issubset(os.supports_dir_fd)


def link_error(path: Path) -> LinkError:
    try:
        to = f" (to {os.readlink(path)})"
    except OSError:
        to = ""
    return LinkError(
        f"{path} is a symbolic link{to} where hotmode keeps its own files; remove the link "
        "(what it points to is left alone), then run the command again"
    )


def _parts(root: Path, path: Path) -> tuple[str, ...]:
    parts = path.relative_to(root).parts
    if any(part in ("..", ".") for part in parts):
        raise ValueError(f"{path} is not a plain path under {root}")
    return parts


def _refuse_link(parent: int | None, name: str, path: Path) -> None:
    """Raise `LinkError` if `name` (in the folder `parent` holds) is a link."""
    try:
        info = os.lstat(name, dir_fd=parent) if parent is not None else os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise link_error(path)


def _open_dir(parent: int, name: str, path: Path) -> int:
    try:
        return os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            _refuse_link(parent, name, path)
        raise


@contextlib.contextmanager
def folder(root: Path, path: Path, *, create: bool = False, mode: int = 0o755) -> Iterator[int]:
    """A descriptor of the folder `path` under `root`, walked from `root` without following a
    link; each missing folder made (with `mode`) when `create`. `LinkError` names a link on the
    way; `FileNotFoundError` a missing folder when not `create`. `root` itself is the caller's
    to trust. Without descriptor-relative calls, yields -1 once each step is checked."""
    parts = _parts(root, path)
    if not AT_CALLS:
        here = root
        for name in parts:
            here = here / name
            _refuse_link(None, name, here)
            if create and not here.exists():
                with contextlib.suppress(FileExistsError):
                    here.mkdir(mode)
                _refuse_link(None, name, here)
        if not here.is_dir():
            raise FileNotFoundError(errno.ENOENT, "no such folder", str(here))
        yield -1
        return
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        here = root
        for name in parts:
            here = here / name
            try:
                child = _open_dir(fd, name, here)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, mode, dir_fd=fd)
                child = _open_dir(fd, name, here)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def make_folders(root: Path, path: Path, mode: int = 0o755) -> None:
    """`mkdir -p` of `path` under `root`, refusing a link on the way."""
    with folder(root, path, create=True, mode=mode):
        pass


def open_file(root: Path, path: Path, flags: int, mode: int = 0o644) -> int:
    """`os.open` of the regular file `path` under `root`, its folders made, never through a
    link (a dangling one included: it is refused, its target never created)."""
    flags |= _NOFOLLOW | _CLOEXEC | _NONBLOCK
    with folder(root, path.parent, create=bool(flags & os.O_CREAT)) as parent:
        try:
            fd = os.open(path.name if AT_CALLS else path, flags, mode,
                         dir_fd=parent if AT_CALLS else None)  # fmt: skip
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR):
                _refuse_link(parent if AT_CALLS else None, path.name, path)
            raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{path} is not a regular file, where hotmode keeps one; move it away")
    os.set_blocking(fd, True)
    return fd


def entry(root: Path, path: Path) -> os.stat_result | None:
    """`path` under `root` as `lstat` sees it (a link is a link), walked without following one on
    the way; None if it is missing."""
    try:
        with folder(root, path.parent) as parent:
            at = parent if AT_CALLS else None
            return os.lstat(path.name if AT_CALLS else path, dir_fd=at)
    except FileNotFoundError:
        return None


def holds_anything(root: Path, path: Path) -> bool:
    """Whether the folder `path` under `root` has anything in it (False if missing); a link at
    `path` or on the way is refused, never listed through."""
    try:
        with folder(root, path) as fd:
            return bool(os.listdir(fd if AT_CALLS else path))
    except FileNotFoundError:
        return False


def rename(root: Path, path: Path, new_name: str) -> None:
    """Rename `path` under `root` to `new_name` in the same folder (a link is renamed as one)."""
    with folder(root, path.parent) as parent:
        at = parent if AT_CALLS else None
        old, new = (path.name, new_name) if AT_CALLS else (path, path.with_name(new_name))
        os.rename(old, new, src_dir_fd=at, dst_dir_fd=at)


def private_folder(root: Path, path: Path, owner: tuple[int, int] | None = None) -> None:
    """Make the folder `path` under `root` (its parents with the usual mode), then give it to
    `owner` (uid, gid) and mode 700 through its own descriptor: a link put in its place
    meanwhile is refused, never chowned or chmodded through."""
    with folder(root, path.parent, create=True) as parent:
        at = parent if AT_CALLS else None
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.name if AT_CALLS else path, 0o700, dir_fd=at)
    with folder(root, path) as fd:
        if not AT_CALLS:
            if owner is not None:
                os.chown(path, *owner)
            path.chmod(0o700)
            return
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, 0o700)


def symlink(root: Path, path: Path, target: Path) -> None:
    """Make `path` under `root` a link to `target` in one step (a temporary link renamed over
    it); an empty folder there goes first. The folder it is made in is held throughout."""
    with folder(root, path.parent, create=True) as parent:
        at = parent if AT_CALLS else None
        name = path.name if AT_CALLS else str(path)
        pending = f".{path.name}.link" if AT_CALLS else str(path.with_name(f".{path.name}.link"))
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            info = os.lstat(name, dir_fd=at)
            if stat.S_ISDIR(info.st_mode):
                os.rmdir(name, dir_fd=at)  # empty, or refused: nothing is lost
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pending, dir_fd=at)
        os.symlink(target, pending, target_is_directory=True, dir_fd=at)
        os.replace(pending, name, src_dir_fd=at, dst_dir_fd=at)


def open_append(root: Path, path: Path) -> BinaryIO:
    """The log file `path` under `root`, opened to append (made if missing), never through a
    link."""
    fd = open_file(root, path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    return os.fdopen(fd, "ab")


def write_atomic(root: Path, path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Replace `path` under `root` with `data` in one step (a temp file beside it, fsync,
    rename): a reader sees the old file or the new, and a link at `path` is replaced, not
    written through."""
    raw = data.encode() if isinstance(data, str) else data
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with folder(root, path.parent, create=True) as parent:
        at = parent if AT_CALLS else None
        name = temp.name if AT_CALLS else str(temp)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600,
                     dir_fd=at)  # fmt: skip
        try:
            try:
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, mode)
            finally:
                os.close(fd)
            target = path.name if AT_CALLS else str(path)
            os.replace(name, target, src_dir_fd=at, dst_dir_fd=at)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=at)
            raise


def unlink(root: Path, path: Path) -> None:
    """Remove the file (or link: the link itself) `path` under `root`; gone already is fine."""
    with contextlib.suppress(FileNotFoundError), folder(root, path.parent) as parent:
        if AT_CALLS:
            os.unlink(path.name, dir_fd=parent)
        else:
            path.unlink()


def remove_tree(root: Path, path: Path) -> None:
    """Delete the folder `path` under `root` and all it holds, descriptor by descriptor: a link
    inside is removed as a link, never crossed; a link at `path` or on the way is refused.
    Read-only folders (a snapshot's) are made writable first. Gone already is fine."""
    try:
        with folder(root, path.parent) as parent:
            _refuse_link(parent if AT_CALLS else None, path.name, path)
            if not AT_CALLS:
                _remove_by_path(path)
                return
            try:
                fd = _open_dir(parent, path.name, path)
            except FileNotFoundError:
                return
            try:
                _empty(fd, path)
            finally:
                os.close(fd)
            os.rmdir(path.name, dir_fd=parent)
    except FileNotFoundError:
        return


def _empty(fd: int, path: Path) -> None:
    info = os.fstat(fd)
    if info.st_mode & 0o700 != 0o700:
        os.fchmod(fd, 0o700)
    for entry in list(os.scandir(fd)):
        if entry.is_dir(follow_symlinks=False):
            child = _open_dir(fd, entry.name, path / entry.name)
            try:
                _empty(child, path / entry.name)
            finally:
                os.close(child)
            os.rmdir(entry.name, dir_fd=fd)
        else:
            os.unlink(entry.name, dir_fd=fd)


def _remove_by_path(path: Path) -> None:
    import shutil

    def writable(_func: object, name: str, _exc: object) -> None:
        os.chmod(os.path.dirname(name), 0o700)
        if not os.path.islink(name):
            os.chmod(name, 0o700)
        os.rmdir(name) if os.path.isdir(name) and not os.path.islink(name) else os.unlink(name)

    shutil.rmtree(path, onerror=writable)


def chmod_tree(root: Path, path: Path, files: int, folders: int) -> None:
    """Set the modes of the folder `path` under `root` and everything in it (regular files to
    `files`, folders to `folders`); links are left as they are, never followed."""
    with folder(root, path) as fd:
        if not AT_CALLS:
            for here, _dirs, names in os.walk(path):
                for name in names:
                    if not os.path.islink(os.path.join(here, name)):
                        os.chmod(os.path.join(here, name), files)
                os.chmod(here, folders)
            return
        _chmod_at(fd, path, files, folders)


def _chmod_at(fd: int, path: Path, files: int, folders: int) -> None:
    os.fchmod(fd, 0o700)  # to read and enter it while its entries change
    for entry in list(os.scandir(fd)):
        if entry.is_dir(follow_symlinks=False):
            child = _open_dir(fd, entry.name, path / entry.name)
            try:
                _chmod_at(child, path / entry.name, files, folders)
            finally:
                os.close(child)
        elif entry.is_file(follow_symlinks=False):
            handle = os.open(entry.name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC,
                             dir_fd=fd)  # fmt: skip
            try:
                if stat.S_ISREG(os.fstat(handle).st_mode):
                    os.fchmod(handle, files)
            finally:
                os.close(handle)
    os.fchmod(fd, folders)


def chmod(root: Path, path: Path, mode: int) -> None:
    """Set the mode of the folder `path` under `root`, never through a link."""
    with folder(root, path) as fd:
        if AT_CALLS:
            os.fchmod(fd, mode)
        else:
            os.chmod(path, mode)


def trust_problem(path: Path, uids: tuple[int, ...] | None = None) -> str:
    """'' if `path` and every folder above it is a real folder owned by root or the user
    (`uids`) that no one else can write (a sticky folder such as /tmp passes: others cannot
    rename what is ours in it); else what is wrong, naming the folder."""
    if not hasattr(os, "getuid"):
        return ""  # Windows: no owners and modes to prove anything with
    allowed = uids if uids is not None else (0, os.getuid())
    path = Path(os.path.abspath(path))
    for here in (*reversed(path.parents), path):
        try:
            info = os.lstat(here)
        except OSError as exc:
            return f"{here} cannot be checked ({exc.strerror})"
        if stat.S_ISLNK(info.st_mode):
            # A link the system put above the folder (/var -> /private/var) is the system's;
            # one we are asked to trust is not.
            if here == path or info.st_uid not in allowed:
                return f"{here} is a symbolic link"
            problem = trust_problem(here.resolve(), allowed)
            if problem:
                return problem
            continue
        if not stat.S_ISDIR(info.st_mode):
            return f"{here} is not a folder"
        if info.st_uid not in allowed:
            return f"{here} belongs to another user (uid {info.st_uid})"
        if info.st_mode & 0o022 and not (info.st_mode & stat.S_ISVTX and here != path):
            return f"{here} can be written by other users"
    return ""
