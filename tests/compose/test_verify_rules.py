"""The rules of `hotmode verify`, judged on plain inspection documents: one pass, one fail each."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hotmode.compose import docker
from hotmode.compose.verify import Expected, container_problems, file_problems

HEAD = "a" * 40
DIGEST = "git-tree:" + "b" * 40
HASH = "c" * 64
EXPECTED = Expected(revision=HEAD, digest=DIGEST, config_hash=HASH)
IMAGE = {docker.REVISION_LABEL: HEAD, docker.DIGEST_LABEL: DIGEST}
PROD: dict[str, Any] = {
    "Config": {
        "Labels": {docker.HASH_LABEL: HASH},
        "Entrypoint": None,
        "Cmd": ["uvicorn", "main:app", "--host", "127.0.0.1", "--port", "7778"],
        "User": "10001:10001",
    },
    "HostConfig": {"ReadonlyRootfs": True},
    "Mounts": [
        {"Type": "volume", "Name": "gw_logs", "Destination": "/app/logs", "RW": True},
        {"Type": "bind", "Source": "/srv/gw/.env", "Destination": "/app/.env", "RW": False},
    ],
}


def changed(**paths: Any) -> dict[str, Any]:
    """The prod document with `Section__Key=value` replaced."""
    document = copy.deepcopy(PROD)
    for path, value in paths.items():
        section, key = path.split("__")
        document[section][key] = value
    return document


def test_the_rendered_prod_container_passes() -> None:
    assert container_problems(PROD, IMAGE, EXPECTED) == []


@pytest.mark.parametrize(
    ("image", "expected_problem"),
    [
        ({**IMAGE, docker.REVISION_LABEL: "d" * 40}, f"is not HEAD {HEAD}"),
        ({**IMAGE, docker.REVISION_LABEL: HEAD + "-dirty"}, "built from a dirty tree"),
        ({docker.DIGEST_LABEL: DIGEST}, "image revision missing"),
        ({**IMAGE, docker.DIGEST_LABEL: "git-tree:0"}, "source digest git-tree:0 is not"),
    ],
)
def test_image_labels_must_be_the_commit(image: dict[str, str], expected_problem: str) -> None:
    problems = container_problems(PROD, image, EXPECTED)
    assert len(problems) == 1
    assert expected_problem in problems[0]


@pytest.mark.parametrize(
    "mount",
    [
        {"Type": "bind", "Source": "/home/me/backend", "Destination": "/app", "RW": True},
        {"Type": "bind", "Source": "/home/me/app", "Destination": "/app/app", "RW": False},
        {"Type": "volume", "Name": "code", "Destination": "/app", "RW": True},
        {"Type": "bind", "Source": "/srv/gw/.env", "Destination": "/app/.env", "RW": True},
        {"Type": "bind", "Source": "/", "Destination": "/", "RW": False},
    ],
)
def test_nothing_is_mounted_over_the_code(mount: dict[str, Any]) -> None:
    document = copy.deepcopy(PROD)
    document["Mounts"].append(mount)
    problems = container_problems(document, IMAGE, EXPECTED)
    assert len(problems) == 1
    assert f"over the code at {mount['Destination']}" in problems[0]


def test_mounts_elsewhere_are_not_the_code() -> None:
    document = copy.deepcopy(PROD)
    document["Mounts"].append({"Type": "bind", "Source": "/x", "Destination": "/data", "RW": True})
    assert container_problems(document, IMAGE, EXPECTED) == []


@pytest.mark.parametrize(
    ("document", "expected_problem"),
    [
        (changed(HostConfig__ReadonlyRootfs=False), "root filesystem is writable"),
        (changed(Config__Cmd=["uvicorn", "main:app", "--reload"]), "the command reloads"),
        (changed(Config__Cmd=["python", "-m", "hotmode", "run", "--reload"]), "reloads"),
        (changed(Config__Cmd=["watchfiles", "python main.py"]), "the command reloads"),
        (changed(Config__User=""), "runs as root (user unset)"),
        (changed(Config__User="0:0"), "runs as root"),
        (changed(Config__User="root"), "runs as root"),
        (changed(Config__Labels={docker.HASH_LABEL: "e" * 64}), "config hash eeeeeeeeeeee"),
    ],
)
def test_each_rule_fails_alone(document: dict[str, Any], expected_problem: str) -> None:
    problems = container_problems(document, IMAGE, EXPECTED)
    assert len(problems) == 1
    assert expected_problem in problems[0]


def test_outside_git_no_commit_can_be_proven() -> None:
    outside = Expected(revision=None, digest=None, config_hash=HASH)
    assert container_problems(PROD, IMAGE, outside) == [
        "the source is not in a git repository, so no commit can be proven"
    ]


def test_files_served_must_be_the_commits() -> None:
    committed = {"main.py": "1", "app/routes.py": "2", "README.md": "3"}
    assert file_problems({"main.py": "1", "app/routes.py": "2"}, committed) == []
    assert file_problems({"main.py": "1", "app/routes.py": "9", "extra.py": "4"}, committed) == [
        "files in the container differ from HEAD: app/routes.py",
        "files in the container are not in HEAD: extra.py",
    ]
    many = {f"m{i}.py": "x" for i in range(5)}
    assert file_problems(many, {})[0].endswith("m0.py, m1.py, m2.py and 2 more")


def test_verify_without_an_engine_says_so_in_one_line(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "linkedin-gateway"
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    result = subprocess.run(
        [sys.executable, "-m", "hotmode", "verify"],
        cwd=example, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "no Docker engine answers" in result.stderr
    assert "hotmode up --prod" in result.stderr
