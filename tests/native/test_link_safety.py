"""Links planted where hotmode keeps its own files, and declarations it cannot read (issue 26).

Each attack runs `link_attacks.py` as PID 1 of its own PID and network namespaces, with
bystanders and victims outside the project; see that script for what is asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).with_name("link_attacks.py")
NAMESPACES = ["unshare", "--pid", "--net", "--fork", "--mount-proc"]
CASES = [
    "lock_link_to_a_file",
    "lock_link_dangling",
    "data_link_to_a_folder",
    "data_mode_link_to_a_folder",
    "runs_link_to_a_folder",
    "snapshots_link_to_a_folder",
    "snapshot_entry_link_to_a_folder",
    "pycache_link_to_a_folder",
    "embedded_default_through_a_data_link",
    "renamed_project_is_still_stopped",
    "unreadable_declaration",
]


def _namespaces() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("PID and network namespaces (unshare) are Linux's")
    probe = subprocess.run([*NAMESPACES, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and unshare cannot make namespaces: {probe.stderr}")
        pytest.skip(f"no namespaces here: {probe.stderr.strip()}")


def _run(tmp_path: Path, *args: str) -> str:
    _namespaces()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTMODE_", "HOT_RELOAD"))}
    result = subprocess.run(
        [*NAMESPACES, sys.executable, str(SCRIPT), str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout


@pytest.mark.parametrize("case", CASES)
def test_an_attack_on_the_project_tree_is_held(tmp_path: Path, case: str) -> None:
    assert f"{case} held" in _run(tmp_path, case)


def test_no_command_changes_anything_through_planted_links(tmp_path: Path) -> None:
    """For random trees of links under `.hotmode/` (to files, folders, dangling, loops), every
    command changes nothing outside the project, and leaves the links as they were."""
    out = _run(tmp_path, "fuzz", "50")
    assert out.strip().endswith("50 examples held"), out
