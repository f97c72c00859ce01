"""hotmode's pre-commit hooks under the real pre-commit: installed from this repository by
`pre-commit try-repo`, run in a project's git repository, passing and failing as they should."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, copy_gateway
from helpers import commit, git

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PRIVILEGED = "services:\n  backend:\n    privileged: true\n"


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One hook environment for the module: installed once, by the first run."""
    return tmp_path_factory.mktemp("pre-commit-home")


def try_repo(project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HOTMODE_", "HOT_RELOAD"))},
        "PRE_COMMIT_HOME": str(home),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "--all-files"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )


def hook_result(output: str, name: str) -> str:
    line = next(line for line in output.splitlines() if line.startswith(name))
    return line.rsplit(".", 1)[-1].strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository with the gateway at its top, where pre-commit runs its hooks."""
    root = copy_gateway(tmp_path / "gateway")
    git(root, "init", "-q")
    commit(root, "the gateway")
    return root


def test_hooks_pass_on_a_rendered_and_clean_project(project: Path, pre_commit_home: Path) -> None:
    result = try_repo(project, pre_commit_home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert hook_result(result.stdout, "hotmode render --check") == "Passed"
    assert hook_result(result.stdout, "hotmode check --all") == "Passed"


def test_hooks_fail_on_a_stale_render_and_on_findings(project: Path, pre_commit_home: Path) -> None:
    gateway = project
    declaration = gateway / "hotmode.toml"
    declaration.write_text(declaration.read_text().replace("port = 7778", "port = 7779"))
    (gateway / "deployment" / "docker-compose.local.yml").write_text(PRIVILEGED)
    git(project, "add", "-A")
    result = try_repo(project, pre_commit_home)
    assert result.returncode == 1, result.stdout + result.stderr
    assert hook_result(result.stdout, "hotmode render --check") == "Failed"
    assert "rendered files are stale" in result.stdout
    assert hook_result(result.stdout, "hotmode check --all") == "Failed"
    assert "privileged" in result.stdout.lower()
