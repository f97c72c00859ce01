"""The options of `hotmode run`, as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hotmode.reload.rules import DEFAULT_INCLUDE, Rules


@dataclass(frozen=True)
class RunOptions:
    """What to serve, where, and how to reload it. Paths are absolute."""

    target: str
    app_dir: Path
    factory: bool = False  # call the target for the app (`--factory`)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    reload: bool = False
    env_file: Path | None = None
    watch: tuple[Path, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    log_level: str = "info"
    install: str | None = None
    drain_timeout: float = 3.0
    ready_timeout: float = 60.0
    partial: bool = True  # a save re-imports only what it made stale (graph.py)
    # ...when the whole app takes at least this long to import (an app zygote costs a process).
    partial_from_ms: float = 50.0

    @property
    def roots(self) -> tuple[Path, ...]:
        """The watched folders: those given with --watch, else the app folder."""
        return self.watch or (self.app_dir,)

    @property
    def rules(self) -> Rules:
        return Rules(
            roots=self.roots,
            env_file=self.env_file,
            include=DEFAULT_INCLUDE + self.include,
            exclude=self.exclude,
        )
