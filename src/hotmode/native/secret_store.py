"""The secrets of natively run companions: generated once, private to the user, never a link.

A companion run as a local process gets, for each secret it declares (`secrets = [...]`), a value
hotmode generates at its first start and keeps in `.hotmode/secrets/<mode>-<edition>/<name>`
(a file of mode 600 in folders of mode 700, all the user's own). The published dev-only values
(`[services.NAME.dev] secrets`) are never used natively: anyone who reads the repository knows
them, and a database on 127.0.0.1 is reachable by every local user. The file is made with
`O_CREAT | O_EXCL | O_NOFOLLOW` under a temporary name and linked into place, every folder on
the way opened relative to the one before without following a link, so a link planted in
`.hotmode/` is refused in one line, never written through. A secret file that another user
could read or change is refused too: it is no longer a secret.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from hotmode.errors import UsageError

FOLDER = "secrets"
# The copies a container's own user reads (mode 644), in a folder of mode 700: no other local user
# can enter it, and the engine mounts each file at /run/secrets/NAME, where an image reads it
# after it dropped root (so a 600 file of the developer's would be refused to it).
CONTAINERS = "containers"
# What hotmode knows of the data volumes it made natively (their creation time), in one of 700.
VOLUMES = "volumes"
# Windows has none of these flags (nor native companions yet): there they are 0.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW


def folder(root: Path, mode: str, edition: str) -> Path:
    """Where a mode x edition's native secrets are: the app is told this folder."""
    return root / ".hotmode" / FOLDER / f"{mode}-{edition}"


def read(root: Path, mode: str, edition: str, name: str, *, create: bool) -> str:
    """The secret `name` of a mode x edition, generated (with `create`) if it has none yet.

    `UsageError` in one line when a folder or the file on the way is a link, is not the user's
    own, or is open to others; or (without `create`) when there is no secret yet.
    """
    where = folder(root, mode, edition)
    fd = _open_private_folder(root, (".hotmode", FOLDER, where.name), create=create)
    try:
        try:
            return _read_file(fd, name, where / name)
        except FileNotFoundError:
            if not create:
                raise UsageError(
                    f"{where / name} does not exist; start the mode with `hotmode up`"
                ) from None
        _create_file(fd, name, secrets.token_urlsafe(24))
        return _read_file(fd, name, where / name)
    finally:
        os.close(fd)


def container_copy(root: Path, mode: str, edition: str, name: str) -> Path:
    """The secret `name` of a mode x edition (generated if new) as a file a container can read:
    mode 644 in the private folder `containers/` of the mode's secrets, replaced at each call."""
    value = read(root, mode, edition, name, create=True)
    where = folder(root, mode, edition) / CONTAINERS
    fd = _open_private_folder(
        root, (".hotmode", FOLDER, where.parent.name, CONTAINERS), create=True
    )
    try:
        _replace_file(fd, name, value, 0o644)
    finally:
        os.close(fd)
    return where / name


def recall(root: Path, mode: str, edition: str, key: str) -> str | None:
    """What `remember` kept under `key` for a mode x edition, if anything."""
    where = folder(root, mode, edition) / VOLUMES
    try:
        fd = _open_private_folder(
            root, (".hotmode", FOLDER, where.parent.name, VOLUMES), create=False
        )
    except UsageError:
        return None
    try:
        return _read_file(fd, key, where / key)
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)


def remember(root: Path, mode: str, edition: str, key: str, value: str) -> None:
    """Keep `value` under `key` for a mode x edition, private to the user."""
    where = folder(root, mode, edition) / VOLUMES
    fd = _open_private_folder(root, (".hotmode", FOLDER, where.parent.name, VOLUMES), create=True)
    try:
        _replace_file(fd, key, value, 0o600)
    finally:
        os.close(fd)


def _open_private_folder(root: Path, parts: tuple[str, ...], *, create: bool) -> int:
    """A descriptor of `root/parts...`, each step opened without following a link; the folders
    below `.hotmode` made (mode 700) when missing, proven the user's own and closed to others."""
    fd = os.open(root, _DIRECTORY)
    at = root
    try:
        for index, part in enumerate(parts):
            at = at / part
            private = index > 0
            if private and create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
            try:
                step = os.open(part, _DIRECTORY, dir_fd=fd)
            except OSError as exc:
                raise _refused(at, exc) from None
            os.close(fd)
            fd = step
            if private:
                _check_private(os.fstat(fd), at)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _read_file(folder_fd: int, name: str, path: Path) -> str:
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=folder_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _refused(path, exc) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path} is not a regular file; move it away")
        _check_private(info, path)
        value = handle.read(4096).decode("utf-8", errors="replace").strip()
    if not value:
        raise UsageError(f"{path} is empty; delete it, and a new secret is generated")
    return value


def _create_file(folder_fd: int, name: str, value: str) -> None:
    """Write `value` under a temporary name (600, never through a link), then link it into
    place: a file already there (made meanwhile) is kept, never replaced."""
    temp = f".{name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
    fd = os.open(temp, flags, 0o600, dir_fd=folder_fd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    finally:
        os.unlink(temp, dir_fd=folder_fd)


def _replace_file(folder_fd: int, name: str, value: str, mode: int) -> None:
    """Write `value` under a temporary name (never through a link, `mode` whatever the umask),
    then rename it over `name`: a link there is replaced, never written through."""
    temp = f".{name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
    fd = os.open(temp, flags, mode, dir_fd=folder_fd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=folder_fd)
        raise


def _check_private(info: os.stat_result, path: Path) -> None:
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise UsageError(f"{path} belongs to another user (uid {info.st_uid}); move it away")
    if info.st_mode & 0o077:
        raise UsageError(
            f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); "
            "chmod 600 it, and change the password if it may have been read"
        )


def _refused(path: Path, exc: OSError) -> UsageError:
    if exc.errno == errno.ENOENT:
        return UsageError(f"{path} does not exist; start the mode with `hotmode up`")
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return UsageError(f"{path} is a link or not a folder, not hotmode's; move it away")
    return UsageError(f"cannot use {path}: {exc.strerror or exc}")
