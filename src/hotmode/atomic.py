"""Writing files atomically: a temp file in the same folder, fsync, then `os.replace`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, *, within: Path | None = None) -> None:
    """Replace `path` with `text` in one step: a reader sees the old file or the new, never half.

    `within`: a folder hotmode trusts (the project) that `path` is under; the folders between are
    then walked without following a link (`hotmode.safefs`), so a planted link is refused.
    """
    if within is not None:
        from hotmode import safefs

        safefs.write_atomic(within, path, text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
