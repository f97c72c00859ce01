"""Which paths matter: the default ignores, and how a changed file is classified.

Pure functions over paths, shared by the watcher (what to watch, what a change means) and the
worker (which loaded modules are the app's own code and which the zygote may preload).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePath

# Folders never watched and never treated as app code. A folder holding `pyvenv.cfg` is a
# virtualenv whatever its name, and is pruned too (see `is_pruned_dir`).
IGNORED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".tox", ".nox", "node_modules",
        ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".idea", ".vscode",
        ".eggs", "htmlcov", "logs", "log", "site-packages", "dist-packages",
    }
)  # fmt: skip
IGNORED_DIR_GLOBS = ("*.egg-info",)

# Editor temp and swap files, bytecode, logs, SQLite side files.
IGNORED_FILES = (
    "*.pyc", "*.pyo", "*.log", "*.log.*", "*.swp", "*.swo", "*.swx", "*.swpx", "*~", ".#*",
    "#*#", "*.tmp", "*.temp", "4913", ".DS_Store", "*-wal", "*-shm", "*-journal",
    "*___jb_tmp___", "*___jb_old___", "*.crswap",
)  # fmt: skip

DEFAULT_INCLUDE = ("*.py",)

CODE, ENV, DEPS = "code", "env", "deps"


@dataclass(frozen=True)
class Rules:
    """What the watcher looks at and how it classifies a change."""

    roots: tuple[Path, ...]
    env_file: Path | None = None
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = ()

    def relative(self, path: Path) -> PurePath | None:
        """The path relative to the watched root holding it, or None when outside them all."""
        for root in self.roots:
            try:
                return path.relative_to(root)
            except ValueError:
                continue
        return None

    def ignored(self, relative: PurePath, *, is_dir: bool = False) -> bool:
        """True for paths under an ignored folder, or matching an ignored or excluded glob."""
        parts = relative.parts if is_dir else relative.parts[:-1]
        if any(_ignored_dir_name(part) for part in parts):
            return True
        text = relative.as_posix()
        if any(fnmatch(relative.name, g) or fnmatch(text, g) for g in self.exclude):
            return True
        return not is_dir and any(fnmatch(relative.name, g) for g in IGNORED_FILES)

    def classify(self, path: Path) -> str | None:
        """`code`, `env` or `deps` for a change that matters; None for one to ignore."""
        if self.env_file is not None and path == self.env_file:
            return ENV
        relative = self.relative(path)
        if relative is None or self.ignored(relative):
            return None
        if is_dependency_file(relative):
            return DEPS
        if any(fnmatch(relative.name, g) or fnmatch(relative.as_posix(), g) for g in self.include):
            return CODE
        return None

    def describe(self, path: Path) -> str:
        """A short name for a path in log lines: relative to its root when inside one."""
        relative = self.relative(path)
        return relative.as_posix() if relative is not None else str(path)


def _ignored_dir_name(name: str) -> bool:
    return name in IGNORED_DIRS or any(fnmatch(name, g) for g in IGNORED_DIR_GLOBS)


def is_dependency_file(relative: PurePath) -> bool:
    """requirements*.txt anywhere, requirements/*.txt, pyproject.toml and its lock."""
    name = relative.name
    if name in ("pyproject.toml", "poetry.lock", "uv.lock"):
        return True
    if name.endswith(".txt"):
        return name.startswith("requirements") or (
            len(relative.parts) > 1 and relative.parts[-2] == "requirements"
        )
    return False


def is_pruned_dir(path: Path, relative: PurePath, rules: Rules) -> bool:
    """True for a folder the watcher must not descend into."""
    if rules.ignored(relative, is_dir=True):
        return True
    return (path / "pyvenv.cfg").exists()


def watched_dirs(rules: Rules) -> list[Path]:
    """Every folder to watch (non-recursively): the roots and their subfolders, ignored ones pruned.

    Watching each folder on its own, rather than a root recursively, is what keeps `.git`,
    virtualenvs and `node_modules` out of the kernel's watch list and out of the poller's scans.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for root in rules.roots:
        for current, dirs, _files in os.walk(root):
            here = Path(current)
            if here in seen:
                dirs[:] = []
                continue
            seen.add(here)
            found.append(here)
            keep = []
            for name in sorted(dirs):
                child = here / name
                if not is_pruned_dir(child, child.relative_to(root), rules):
                    keep.append(name)
            dirs[:] = keep
    if rules.env_file is not None:
        parent = rules.env_file.parent
        if parent not in seen and parent.is_dir():
            found.append(parent)
    return found


def is_app_file(filename: str, roots: tuple[str, ...]) -> bool:
    """True for a module file that is the app's own code: under a root, not in an ignored folder."""
    for root in roots:
        if filename.startswith(root.rstrip(os.sep) + os.sep):
            relative = PurePath(filename[len(root.rstrip(os.sep)) + 1 :])
            return not any(_ignored_dir_name(part) for part in relative.parts[:-1])
    return False
