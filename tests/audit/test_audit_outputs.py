"""What a check says and where: variables resolved, paths relative, every finding placed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from audit.audit_support import counted
from hotmode.audit import checker, report
from hotmode.audit.inputs import interpolate
from hotmode.audit.model import Location, Severity


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${IMAGE:-org/app:${TAG:-latest}}", "org/app:1.2"),
        ("${MISSING:-org/app}:${TAG}", "org/app:1.2"),
        ("${EMPTY:-x}${EMPTY-y}${UNSET-z}", "xz"),
        ("$$HOME/$TAG", "$HOME/1.2"),
        ("${TAG:?required}${TAG:++alt}${UNSET:+no}", "1.2+alt"),
    ],
)
def test_interpolation_reads_as_compose_reads_it(text: str, expected: str) -> None:
    assert interpolate(text, {"TAG": "1.2", "EMPTY": ""}) == expected


def test_a_dev_build_into_prod_s_interpolated_tag_is_found(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    base = _write(
        tmp_path,
        "compose.yml",
        "services:\n  api:\n    image: ${IMAGE:-org/api:${TAG:-latest}}\n"
        "    command: gunicorn app:app\n",
    )
    dev = _write(
        tmp_path,
        "compose.dev.yml",
        "services:\n  api:\n    build: ./app\n    command: uvicorn app:app --reload\n",
    )
    result = checker.check([checker.file_stack([base, dev], "dev")])
    (found,) = [f for f in counted(result) if f.rule_id == "HM-D02"]
    assert "prod's tag org/api:latest" in found.message and found.service == "api"


def test_a_project_with_no_prod_has_no_prod_tag_to_overwrite(tmp_path: Path) -> None:
    """A base file that mounts the source and reloads is dev's own: its tag is not prod's."""
    (tmp_path / "app").mkdir()
    base = _write(
        tmp_path,
        "compose.yml",
        "services:\n  api:\n    image: org/api:latest\n    build: ./app\n"
        "    command: uvicorn main:app --reload\n    volumes:\n      - ./app:/app\n",
    )
    override = _write(tmp_path, "compose.override.yml", "services:\n  api:\n    ports: ['8000']\n")
    result = checker.check([checker.file_stack([base, override], "dev")])
    assert not [f for f in counted(result) if f.rule_id == "HM-D02"]


@pytest.mark.parametrize(
    ("entry", "variable"),
    [("ports:\n      - '${HOST_PORT}'", "HOST_PORT"), ("volumes:\n      - ${MEDIA}:/m:z", "MEDIA")],
)
def test_an_unset_variable_compose_rejects_is_a_finding_at_its_line_not_an_error(
    tmp_path: Path, entry: str, variable: str
) -> None:
    path = _write(
        tmp_path,
        "compose.yml",
        f"services:\n  web:\n    image: python:3.12\n    command: gunicorn app:app\n"
        f"    {entry}\n    environment:\n      OTHER: ${{NOT_SET_EITHER}}\n",
    )
    result = checker.check([checker.file_stack([path], "prod")])
    (found,) = [f for f in result.findings if f.rule_id == "HM-A05"]
    assert found.location == Location(path, 6) and found.service == "web"
    assert f"{variable} is not set" in found.message


def test_messages_show_paths_relative_to_the_working_directory(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("app = None\n")
    (app / "Dockerfile").write_text("FROM python:3.12-slim\nUSER 1000\nCMD uvicorn main:app\n")
    path = _write(
        tmp_path,
        "compose.yml",
        "services:\n  web:\n    build: ./app\n    volumes: ['./app:/srv/code']\n",
    )
    result = checker.check([checker.file_stack([path], "prod")])
    shown = report.text(result, Severity.LOW, tmp_path) + report.to_json(
        result, Severity.LOW, tmp_path
    )
    assert str(tmp_path) not in shown
    assert "no tmpfs for /tmp" in shown  # a container's path stays as written
    assert "bind-mounts app over /srv/code" in shown
    assert "app/.dockerignore does not exist" in shown


def test_a_finding_on_a_line_of_a_service_names_it_and_the_rest_are_project_wide(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path,
        "compose.yml",
        "x-env: &env\n  TOKEN: ${TOKEN:-abc}\nservices:\n  web:\n    image: python:3.12\n"
        "    command: gunicorn app:app\n    environment:\n      SECRET_KEY: ${SECRET_KEY:-dev}\n",
    )
    result = checker.check([checker.file_stack([path], "prod")])
    found = {f.location.line: f.service for f in result.findings if f.rule_id == "HM-P09"}
    assert found == {2: None, 8: "web"}
    shown = report.text(result, Severity.LOW, tmp_path)
    assert "HM-P09 [prod compose.yml] project-wide: ${TOKEN}" in shown


def test_a_finding_about_an_overridden_command_points_at_the_override(tmp_path: Path) -> None:
    base = _write(
        tmp_path,
        "compose.yml",
        "services:\n  web:\n    image: python:3.12\n    command: uvicorn app:app --reload\n",
    )
    dev = _write(tmp_path, "dev.yml", "services:\n  web:\n    command: uvicorn app:app\n")
    result = checker.check([checker.file_stack([base, dev], "dev")])
    (found,) = [f for f in result.findings if f.rule_id == "HM-D01" and "reload" in f.message]
    assert found.location == Location(dev, 3)


def test_a_committed_env_file_with_a_placeholder_secret_is_found(tmp_path: Path) -> None:
    _write(tmp_path, ".env", "SECRET_KEY=change-me\nDEBUG=false\nAPI_TOKEN=your-token-here\n")
    _write(tmp_path, "web.env", "DB_PASSWORD=Zq8-rT1x\n")
    path = _write(
        tmp_path,
        "compose.yml",
        "services:\n  web:\n    image: python:3.12\n    command: gunicorn app:app\n"
        "    env_file: web.env\n",
    )
    result = checker.check([checker.file_stack([path], "prod")])
    found = sorted(
        (f.location.line, f.message.split(" ")[0]) for f in result.findings if f.rule_id == "HM-A07"
    )
    assert found == [(1, "SECRET_KEY=change-me"), (3, "API_TOKEN=your-token-here")]


def test_a_placeholder_secret_says_what_git_says_of_its_file(tmp_path: Path) -> None:
    _write(tmp_path, ".env", "SECRET_KEY=change-me\n")
    path = _write(tmp_path, "compose.yml", "services:\n  web:\n    image: python:3.12\n")

    def messages() -> list[str]:
        result = checker.check([checker.file_stack([path], "prod")])
        return [f.message for f in result.findings if f.rule_id == "HM-A07"]

    # No repository: nothing says whether the file is committed, and the message claims nothing.
    (alone,) = messages()
    assert "beside no git repository" in alone
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tracked,) = messages()
    assert "which is not git-ignored" in tracked
    _write(tmp_path, ".gitignore", ".env\n")
    assert messages() == []
