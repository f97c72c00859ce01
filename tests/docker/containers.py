"""The gateway copy the container tests run, and what they do to it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import commit
from hotmode.compose import docker
from hotmode.config import Config, load_config


class Gateway:
    """A committed copy of the example gateway, set up for this engine on a port of its own."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.backend = root / "backend"
        self.config: Config = load_config(root / "hotmode.toml")

    def commit(self, message: str) -> str:
        return commit(self.root, message)

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """`docker exec` in the running container; options (e.g. --user 0) may lead `argv`."""
        running = docker.running(self.config)
        assert running is not None, "nothing is running"
        options = list(argv[:2]) if argv[0].startswith("--") else []
        return docker.docker(
            "exec", *options, running.container, *argv[len(options) :], check=False
        )
