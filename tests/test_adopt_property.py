"""A property of `init --from`, over every real project there is (`../shared/corpus*` and the
zoo's apps, read in place and copied into tmp_path): the declaration init writes passes the
declaration's own validation. init may refuse a project (naming what is missing), but it never
refuses, or writes, a declaration that `load_config` then rejects."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import REPO
from helpers import run_hotmode
from hotmode.config import load_config

SHARED = [REPO.parent / "shared", Path("/work/shared")]
BASE = next((p for p in SHARED if p.is_dir()), None)
PROJECTS = sorted(
    p
    for folder in ([*sorted(BASE.glob("corpus*")), BASE / "apps"] if BASE else [])
    for p in folder.glob("[0-9]*")
    if p.is_dir()
)

pytestmark = pytest.mark.skipif(not PROJECTS, reason="no ../shared/corpus* or ../shared/apps here")


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_init_writes_only_what_its_own_validation_accepts(project: Path, tmp_path: Path) -> None:
    root = tmp_path / project.name
    shutil.copytree(project, root, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    adopted = run_hotmode(root, "init", "--from", ".", timeout=180)
    declaration = root / "hotmode.toml"
    # The declaration's own refusals name it with a line (hotmode.toml:27: services.db...).
    assert f"{declaration}:" not in adopted.stderr, adopted.stderr
    if declaration.is_file():
        load_config(declaration)
    else:
        assert adopted.returncode != 0, adopted.stdout + adopted.stderr
