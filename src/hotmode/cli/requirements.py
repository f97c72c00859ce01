"""`hotmode requirements FILE`: the pinned dependencies a pyproject.toml (and its lock) declares,
printed as requirement lines, or installed into the running interpreter's environment (the app's
venv) with `--install`. The declaration's install command, when its requirements file is a
pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from hotmode.errors import UsageError


@click.command()
@click.argument("pyproject", type=click.Path(path_type=Path), default="pyproject.toml")
@click.option("--install", is_flag=True, help="pip install them into this Python's environment.")
def requirements(pyproject: Path, install: bool) -> int:
    """Print (or --install) the dependencies PYPROJECT declares, pinned by its lock."""
    from hotmode.pyproject import requirement_lines

    if not pyproject.is_file():
        raise UsageError(f"{pyproject}: no such file; name the project's pyproject.toml")
    lines = requirement_lines(pyproject)
    if not install:
        click.echo("\n".join(lines))
        return 0
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listed:
        listed.write("\n".join(lines) + "\n")
    try:
        argv = [sys.executable, "-m", "pip", "install", "-r", listed.name]
        return subprocess.run(argv, check=False).returncode  # noqa: S603 -- pip, by path
    finally:
        os.unlink(listed.name)
