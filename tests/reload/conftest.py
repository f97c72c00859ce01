"""Fixtures for the reload engine's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.reload_support import MAIN, Server, write_version


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "main.py").write_text(MAIN)
    write_version(folder, "v1")
    return folder


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers started by a test; stopped (and their trees killed) whatever happens."""
    started: list[Server] = []
    yield started
    for server in started:
        server.close()
