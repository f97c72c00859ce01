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
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeAlias

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


@dataclass
class _Block:
    """An `if`, `case` or loop of a script: its branches, each a list of commands and blocks."""

    kind: str
    branches: list[list[_Node]] = field(default_factory=lambda: [[]])
    has_else: bool = False


_Node: TypeAlias = "list[str] | _Block"
_SEPARATORS = {";", "&&", "||", "|", "&", ";;", "(", ")"}


def _segments(text: str) -> list[list[str]]:
    """A script's simple commands, in order: words split at `;`, `&&`, `|` and line ends, with
    `;;` and a `case` pattern's `)` kept as words of their own."""
    found: list[list[str]] = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError:
            continue
        current: list[str] = []
        for token in tokens:
            if token in _SEPARATORS:
                if current:
                    found.append(current)
                current = [token] if token in {";;", ")"} else []
                if current:
                    found.append(current)
                    current = []
            else:
                current.append(token)
        if current:
            found.append(current)
    return found


def _tree(text: str) -> list[_Node]:
    """A script as a tree of commands and blocks (`if`/`elif`/`else`, `case`, loops)."""
    top: list[_Node] = []
    stack: list[_Block] = []
    condition = False

    def here() -> list[_Node]:
        return stack[-1].branches[-1] if stack else top

    for segment in _segments(text):
        head, rest = segment[0], segment[1:]
        if head in {"if", "while", "until", "for", "case"}:
            stack.append(_Block(head))
            condition = head != "case"
            continue
        if head == "elif" and stack:
            stack[-1].branches.append([])
            condition = True
            continue
        if head == "else" and stack:
            stack[-1].branches.append([])
            stack[-1].has_else = True
        elif head in {"fi", "done", "esac"} and stack:
            block = stack.pop()
            here().append(block)
            continue
        elif head == ";;" and stack:
            stack[-1].branches.append([])
            continue
        elif head == ")":
            if stack and stack[-1].kind == "case":
                here().clear()  # what came before was the pattern
            continue
        elif head not in {"then", "do", "{", "}"}:
            rest = segment
        if head in {"then", "do"}:
            condition = False
        if rest and not condition:
            here().append(rest)
    while stack:
        block = stack.pop()
        here().append(block)
    return top


def _execs(nodes: list[_Node]) -> list[list[str]]:
    found: list[list[str]] = []
    for node in nodes:
        if isinstance(node, _Block):
            found += [e for branch in node.branches for e in _execs(branch)]
        elif node[0] == "exec":
            found.append(node)
    return found


def _falls(nodes: list[_Node]) -> list[list[str]]:
    """What a sequence ends by running when it runs to its end: its last command, or the last
    command of each branch of its last block."""
    kept = [n for n in nodes if isinstance(n, _Block) or n[0] not in _KEYWORDS]
    if not kept:
        return []
    last = kept[-1]
    if not isinstance(last, _Block):
        return [] if last[0] == "exec" else [last]
    return [end for branch in last.branches for end in _falls(branch)]


def endings(text: str) -> list[list[str]]:
    """What a shell script may end by running, each branch's command apart: the commands it
    `exec`s (in each branch) and what its last statement runs (each branch of a last `if`).
    What runs before (migrations, collectstatic, waiting for the database) is set-up, not what
    the service is."""
    tree = _tree(text)
    return _execs(tree) + _falls(tree)


def script_words(text: str) -> list[str]:
    """Everything a script may end by running, as the words of one command line."""
    ends = endings(text)
    return commands.words(" ; ".join(shlex.join(parts) for parts in ends))


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


@dataclass(frozen=True)
class Script:
    """A script a command runs, copied into the image from the repository: where the image has
    it, where the repository does, and what it may end by running, each branch apart (none when
    it runs its arguments)."""

    word: str
    source: str
    ends: tuple[tuple[str, ...], ...] = ()
    passes: bool = False

    @property
    def shown(self) -> str:
        return f"{self.word} ({self.source})"


def mounted_script(service: Mapping[str, Any], context: Path, word: str) -> str | None:
    """The context path of a script the service runs from a folder of the build context it
    bind-mounts (`command: /bin/sh /app/compose/local/django/start` with `.:/app`): the mount
    hides what the image copied there."""
    if not word.startswith("/"):
        return None
    for mount in reversed(service.get("volumes") or []):
        if not isinstance(mount, Mapping) or mount.get("type") != "bind":
            continue
        source, target = mount.get("source"), mount.get("target")
        if not isinstance(source, str) or not isinstance(target, str):
            continue
        try:
            folder = PurePosixPath(Path(source).relative_to(context).as_posix())
            rest = PurePosixPath(word).relative_to(target)
        except ValueError:
            continue
        return str(folder / rest) if str(rest) != "." else None
    return None


def read_scripts(
    argv: list[str], build: Mapping[str, Any] | None, service: Mapping[str, Any] | None = None
) -> list[Script]:
    """The scripts a command runs that its build copies into the image (or that the service
    mounts from the build context), read from the build context, and the scripts those run, a
    few levels deep; a script that dispatches on its arguments is left out (what it runs
    depends on them)."""
    if build is None or not argv:
        return []
    dockerfile = read_dockerfile(build)
    context = build.get("context")
    if dockerfile is None or not isinstance(context, str) or not Path(context).is_absolute():
        return []
    target = build.get("target")
    read: list[Script] = []
    pending = list(argv)
    for _ in range(_DEPTH):
        found: list[str] = []
        for word in pending:
            if not _looks_like_script(word) or any(r.word == word for r in read):
                continue
            source = mounted_script(service or {}, Path(context), word) or copied_script(
                dockerfile, target, word
            )
            text = _read(Path(context), source) if source else None
            if source is None or text is None:
                continue
            if _DISPATCH.search(text):
                # `case "$1" in web) gunicorn ...;; worker) celery ...`: what it runs depends on
                # its arguments, so its words say nothing of this service.
                continue
            if _EXEC_ARGUMENTS.search(text):
                # An entrypoint that sets up (migrations, waiting for the database) and then
                # `exec "$@"`: the service runs its arguments; its set-up is not its role.
                read.append(Script(word, source, passes=True))
                continue
            read.append(Script(word, source, tuple(map(tuple, endings(text)))))
            found += script_words(text)
        if not found:
            break
        pending = found
    return read


def resolve(
    argv: list[str], build: Mapping[str, Any] | None, service: Mapping[str, Any] | None = None
) -> tuple[list[str], list[str]]:
    """The command's words with the scripts it runs, copied in by the build (or mounted from
    its context), read and added after them; and the scripts read, as `image path <- context
    path`."""
    read = read_scripts(argv, build, service)
    passed = {script.word for script in read if script.passes}
    words = [w for w in argv if w not in passed]
    for script in read:
        if script.ends:
            words += [";", *commands.words(" ; ".join(shlex.join(end) for end in script.ends))]
    shown = [f"{s.word} <- {s.source}{' (runs its arguments)' if s.passes else ''}" for s in read]
    return words, shown
