"""What hotmode does to a data folder after proving it goes by held folders, not paths (issue 26).

`data_home.place` proves where a companion's data is; the steps after it (making the folder,
giving it to the database's user, mode 700; moving a half-initialised one aside; the link into
the data home; tidying the data home after `down --volumes`) are taken in folders held open from
the proven base. Each test plants a link in a folder's place *after* the proof, as a process
racing hotmode would, and asserts that the victim outside is untouched."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from hotmode import safefs
from hotmode.config import Config, load_config
from hotmode.errors import LinkError
from hotmode.native import companions, data_home

DECLARATION = """name = "racing"
source = "app"

[services.db]
image = "db:1"
port = 5432

[services.db.native]
command = ["no-such-database", "{data}"]
"""


def _project(folder: Path) -> Config:
    (folder / "app").mkdir(parents=True)
    (folder / "hotmode.toml").write_text(DECLARATION)
    return load_config(folder / "hotmode.toml")


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    victim.chmod(0o755)
    return victim


def _linked_modes(tmp_path: Path) -> tuple[Config, Path, Path]:
    """A project whose `.hotmode/data/dev-core` is a link to a victim folder: its config, the
    victim, and `.hotmode/data`."""
    config = _project(tmp_path / "project")
    victim = _victim(tmp_path)
    modes = config.root / ".hotmode" / "data"
    modes.mkdir(parents=True)
    (modes / "dev-core").symlink_to(victim)
    return config, victim, modes


def _prepare(config: Config, folder: Path) -> Path | None:
    log = config.root / ".hotmode" / "db.log"
    return companions._prepare_folder(
        config.services[0], config.root, folder, {}, {}, None, log, io.StringIO().write
    )


def test_a_link_put_in_the_data_folders_place_is_not_chmodded_through(tmp_path: Path) -> None:
    config = _project(tmp_path / "project")
    victim = _victim(tmp_path)
    folder = config.root / ".hotmode" / "data" / "dev-core" / "db"
    folder.parent.mkdir(parents=True)
    folder.symlink_to(victim)  # after `place` proved the folder: a race won
    with pytest.raises(LinkError, match="db"):
        _prepare(config, folder)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755
    assert list(victim.iterdir()) == []


def test_a_link_put_in_the_mode_folders_place_gets_nothing_made_through_it(
    tmp_path: Path,
) -> None:
    config, victim, modes = _linked_modes(tmp_path)
    with pytest.raises(LinkError, match="dev-core"):
        _prepare(config, modes / "dev-core" / "db")
    assert list(victim.iterdir()) == []


def test_a_new_data_folder_is_made_private(tmp_path: Path) -> None:
    config = _project(tmp_path / "project")
    folder = config.root / ".hotmode" / "data" / "dev-core" / "db"
    marker = _prepare(config, folder)
    assert marker == folder.with_name("db.initialising") and marker.is_file()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_the_data_home_link_is_never_made_through_a_link_on_the_way(tmp_path: Path) -> None:
    config, victim, modes = _linked_modes(tmp_path)
    with pytest.raises(LinkError, match="dev-core"):
        safefs.symlink(config.root, modes / "dev-core" / "db", tmp_path / "elsewhere")
    assert list(victim.iterdir()) == []
    (modes / "dev-core").unlink()
    safefs.symlink(config.root, modes / "dev-core" / "db", tmp_path / "elsewhere")
    assert os.readlink(modes / "dev-core" / "db") == str(tmp_path / "elsewhere")


def test_tidying_the_data_home_never_crosses_a_link(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    victim = _victim(tmp_path)
    (victim / "prod-default").mkdir()
    (victim / data_home.OWNER_FILE).write_text("someone else's\n")
    # The project's folder in the data home, swapped for a link after `delete` proved it.
    (home / "racing-0123").symlink_to(victim)
    data_home._tidy(home / "racing-0123" / "prod-default")
    assert sorted(p.name for p in victim.iterdir()) == sorted(
        [data_home.OWNER_FILE, "prod-default"]
    )
    # A real one is tidied away once only the file naming the project is left.
    real = home / "mine-4567"
    (real / "prod-default").mkdir(parents=True)
    (real / data_home.OWNER_FILE).write_text("/somewhere\n")
    data_home._tidy(real / "prod-default")
    assert not real.exists()
