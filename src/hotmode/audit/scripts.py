"""What a command's scripts run: a script the Dockerfile copies into the image, read from the
repository.

`command: /start-celeryworker` says little by itself; the Dockerfile that builds the image says
where it comes from (`COPY ./compose/production/django/celery/worker/start
/start-celeryworker`), and the repository holds that file: it runs `celery ... worker`. This
module follows a command's words through the build's `COPY`/`ADD` instructions (and `WORKDIR`,
for a relative `./start.sh`) to files of the build context, and reads what they end by running,
a few levels deep, as more words of the command; an entrypoint that ends in `exec "$@"` runs its
arguments, and one that dispatches on them (`case "$1" in`) says nothing by itself. A file is
read only when it is a regular file inside the context, never through a symbolic link, and only
its first 64 KiB.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from hotmode.audit import commands
from hotmode.audit.build import Dockerfile, read_dockerfile

_LIMIT = 64 * 1024
_DEPTH = 2
# Words that are a script a command runs: an absolute or relative path, or a `.sh`/`.py` file.
_SCRIPT_SUFFIXES = (".sh", ".bash")
_KEYWORDS = {"fi", "done", "esac", "then", "else", "elif", "do", "}", ";;", "wait", "exit"}
_DISPATCH = re.compile(r"^\s*case\b.*\bin\s*$", re.MULTILINE)
_EXEC_ARGUMENTS = re.compile(r"^\s*(exec\s+)?(gosu\s+\S+\s+)?\"?\$(@|\{@\})\"?\s*$", re.MULTILINE)


def _looks_like_script(word: str) -> bool:
    if word.startswith("-") or "=" in word or "$" in word:
        return False
    return word.startswith(("/", "./")) or word.endswith(_SCRIPT_SUFFIXES)


def _read(context: Path, relative: str) -> str | None:
    """A regular file of the build context, read without following any symbolic link."""
    parts = PurePosixPath(relative).parts
    if not parts or ".." in parts or PurePosixPath(relative).is_absolute():
        return None
    path = context
    for part in parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return None
    if not stat.S_ISREG(mode):
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(_LIMIT)
    except OSError:
        return None
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def script_words(text: str) -> list[str]:
    """What a shell script ends by running, as words: the commands it `exec`s (in each branch),
    else its last command. What it runs before (migrations, collectstatic, waiting for the
    database) is set-up, not what the service is."""
    lines = []
    for line in text.replace("\\\n", " ").splitlines():
        try:
            parts = shlex.split(line, comments=True)
        except ValueError:
            parts = [] if line.strip().startswith("#") else line.split()
        if parts:
            lines.append(parts)
    execs = [parts for parts in lines if parts[0] == "exec"]
    if not execs:
        execs = [parts for parts in lines if parts[0] not in _KEYWORDS][-1:]
    return commands.words(" ; ".join(shlex.join(parts) for parts in execs))


def copied_script(dockerfile: Dockerfile, target: str | None, word: str) -> str | None:
    """The context path of the file the image has at `word` (a path the command runs)."""
    copies = dockerfile.copies(target)
    path = word
    if not word.startswith("/"):
        # A relative script runs from the working directory the copies were made in.
        folders = {str(PurePosixPath(c.destination)) for c in copies}
        candidates = [str(PurePosixPath(f, word)) for f in sorted(folders)]
    else:
        candidates = [path]
    for candidate in candidates:
        for copy in reversed(copies):
            found = copy.source_of(candidate)
            if found is not None:
                return found
    return None


def resolve(argv: list[str], build: Mapping[str, Any] | None) -> tuple[list[str], list[str]]:
    """The command's words with the scripts it runs, copied in by the build, read and added
    after them; and the scripts read, as `image path <- context path`."""
    if build is None or not argv:
        return argv, []
    dockerfile = read_dockerfile(build)
    context = build.get("context")
    if dockerfile is None or not isinstance(context, str) or not Path(context).is_absolute():
        return argv, []
    target = build.get("target")
    words = list(argv)
    read: list[str] = []
    pending = list(argv)
    for _ in range(_DEPTH):
        found: list[str] = []
        for word in pending:
            if not _looks_like_script(word) or any(r.startswith(f"{word} ") for r in read):
                continue
            source = copied_script(dockerfile, target, word)
            text = _read(Path(context), source) if source else None
            if text is None:
                continue
            if _DISPATCH.search(text):
                # `case "$1" in web) gunicorn ...;; worker) celery ...`: what it runs depends on
                # its arguments, so its words say nothing of this service.
                continue
            if _EXEC_ARGUMENTS.search(text):
                # An entrypoint that sets up (migrations, waiting for the database) and then
                # `exec "$@"`: the service runs its arguments; its set-up is not its role.
                read.append(f"{word} <- {source} (runs its arguments)")
                words = [w for w in words if w != word]
                continue
            read.append(f"{word} <- {source}")
            more = script_words(text)
            found += more
        if not found:
            break
        words += [";", *found]
        pending = found
    return words, read
