"""Rendering: golden files, the committed example kept fresh, hand edits kept, atomic and stable.

`UPDATE_GOLDEN=1 pytest tests/test_render.py` rewrites tests/golden/ from the current renderer;
review the diff before committing it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import EXAMPLE, REPO, RunCli, Snapshot, copy_gateway, make_pyproject_app
from hotmode.compose.render import (
    is_hand_edited,
    render_files,
    stale_files,
    write_atomic,
    write_files,
)
from hotmode.config import Config, load_config

GOLDEN = REPO / "tests" / "golden"
# Golden copies carry a suffix so that `.gitignore` and `.dockerignore` among them stay inert.
SUFFIX = ".golden"


def relative_render(config: Config) -> dict[str, str]:
    return {
        path.relative_to(config.root).as_posix(): text
        for path, text in render_files(config).items()
    }


def check_golden(name: str, actual: dict[str, str]) -> None:
    folder = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for stale in folder.rglob(f"*{SUFFIX}"):
            stale.unlink()
        for relative, text in actual.items():
            target = folder / f"{relative}{SUFFIX}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", newline="\n")
    expected = {
        path.relative_to(folder).as_posix().removesuffix(SUFFIX): path.read_text(encoding="utf-8")
        for path in folder.rglob(f"*{SUFFIX}")
    }
    assert sorted(actual) == sorted(expected), "rerun with UPDATE_GOLDEN=1 and review the diff"
    for relative, text in actual.items():
        assert text == expected[relative], f"{relative} differs from its golden copy"


def test_the_gateway_renders_as_its_golden_files(gateway: Path) -> None:
    rendered = relative_render(load_config(gateway / "hotmode.toml"))
    assert sorted(rendered) == [
        "backend/.dockerignore",
        "deployment/.env.example",
        "deployment/.gitignore",
        "deployment/Dockerfile",
        "deployment/dev-secrets/db_password",
        "deployment/docker-compose.dev-saas.yml",
        "deployment/docker-compose.dev.yml",
        "deployment/docker-compose.saas.yml",
        "deployment/docker-compose.yml",
    ]
    check_golden("linkedin-gateway", rendered)


def test_a_pyproject_app_with_three_editions_renders_as_its_golden_files(tmp_path: Path) -> None:
    config = load_config(make_pyproject_app(tmp_path))
    rendered = relative_render(config)
    assert "deployment/docker-compose.dev-cloud.yml" in rendered
    assert "deployment/docker-compose.pro.yml" in rendered
    check_golden("pyproject-app", rendered)


def test_the_committed_gateway_deployment_is_fresh() -> None:
    config = load_config(EXAMPLE / "hotmode.toml")
    stale = stale_files(render_files(config))
    assert stale == [], (
        f"stale: {[str(p) for p in stale]}; run `cd examples/linkedin-gateway && hotmode render`"
    )


def test_stale_files_sees_an_edit_and_a_missing_file(gateway: Path) -> None:
    rendered = render_files(load_config(gateway / "hotmode.toml"))
    edited = gateway / "deployment" / "docker-compose.yml"
    missing = gateway / "deployment" / "docker-compose.saas.yml"
    edited.write_text(edited.read_text() + "# tweak\n")
    missing.unlink()
    assert stale_files(rendered) == [edited, missing]


def test_rendering_is_deterministic_and_independent_of_location(tmp_path: Path) -> None:
    first = copy_gateway(tmp_path / "a")
    second = copy_gateway(tmp_path / "elsewhere" / "b")
    a = load_config(first / "hotmode.toml")
    b = load_config(second / "hotmode.toml")
    assert render_files(a) == render_files(a)
    assert relative_render(a) == relative_render(b)


def test_every_rendered_file_carries_a_header_with_its_digest(gateway: Path) -> None:
    for path, text in render_files(load_config(gateway / "hotmode.toml")).items():
        if path.parent.name == "dev-secrets":
            # A dev-only secret's file is its value; the declaration says so.
            assert text == "gateway-dev-only"
            continue
        assert text.startswith("# Rendered by hotmode from hotmode.toml."), path
        assert not is_hand_edited(text), path
        assert is_hand_edited(text.replace("\n", "\n\n", 5)), path
    assert is_hand_edited("FROM scratch\n")


def test_render_writes_a_missing_deployment_and_rerendering_changes_nothing(
    gateway: Path, run_cli: RunCli, snapshot: Callable[[Path], Snapshot]
) -> None:
    shutil.rmtree(gateway / "deployment")
    (gateway / "backend" / ".dockerignore").unlink()

    code, out, err = run_cli("render", "--no-validate", cwd=gateway)
    assert (code, err) == (0, "")
    assert out.count("wrote ") == 9
    expected = render_files(load_config(gateway / "hotmode.toml"))
    assert {path: path.read_text() for path in expected} == expected
    before = snapshot(gateway)

    code, out, _ = run_cli("render", "--no-validate", cwd=gateway)

    assert code == 0
    assert out.count("unchanged ") == 9
    assert snapshot(gateway) == before  # same bytes, not even rewritten
    assert not [p for p in gateway.rglob("*.tmp")]


def test_render_validates_every_mode_with_compose(gateway: Path, run_cli: RunCli) -> None:
    code, out, err = run_cli("render", cwd=gateway)
    assert code == 0, err
    assert "validated 4 modes with Compose" in out


def test_a_hand_edited_file_is_kept_and_reported_and_the_rest_rendered(
    gateway: Path, run_cli: RunCli
) -> None:
    declaration = gateway / "hotmode.toml"
    declaration.write_text(declaration.read_text().replace("port = 7778", "port = 7779"))
    edited = gateway / "deployment" / "docker-compose.dev.yml"
    tweaked = edited.read_text() + "# my local tweak\n"
    edited.write_text(tweaked)

    code, out, err = run_cli("render", "--no-validate", cwd=gateway)

    assert code == 1
    assert err.count("\n") == 1
    assert "kept hand-edited deployment/docker-compose.dev.yml" in err
    assert "--force" in err
    assert edited.read_text() == tweaked
    rendered = render_files(load_config(declaration))
    base = gateway / "deployment" / "docker-compose.yml"
    assert f"wrote     {base.relative_to(gateway)}" in out
    assert base.read_text() == rendered[base]
    assert "7779" in base.read_text()

    code, out, err = run_cli("render", "--no-validate", "--force", cwd=gateway)

    assert (code, err) == (0, "")
    assert edited.read_text() == rendered[edited]


def test_a_users_own_file_without_a_header_is_kept(gateway: Path, run_cli: RunCli) -> None:
    dockerfile = gateway / "deployment" / "Dockerfile"
    dockerfile.write_text('FROM python:3.11-slim\nCMD ["true"]\n')
    dockerignore = gateway / "backend" / ".dockerignore"
    dockerignore.write_text(".venv\n")

    code, _, err = run_cli("render", "--no-validate", cwd=gateway)

    assert code == 1
    assert "deployment/Dockerfile" in err
    assert "backend/.dockerignore" in err
    assert dockerfile.read_text() == 'FROM python:3.11-slim\nCMD ["true"]\n'
    assert dockerignore.read_text() == ".venv\n"


def test_render_check_exits_0_when_fresh_and_1_when_stale_writing_nothing(
    gateway: Path, run_cli: RunCli, snapshot: Callable[[Path], Snapshot]
) -> None:
    code, out, err = run_cli("render", "--check", cwd=gateway)
    assert (code, out, err) == (0, "9 rendered files are up to date\n", "")

    declaration = gateway / "hotmode.toml"
    declaration.write_text(declaration.read_text().replace("port = 7778", "port = 7779"))
    before = snapshot(gateway)

    code, out, err = run_cli("render", "--check", cwd=gateway)

    assert code == 1
    assert err.startswith("hotmode: error: rendered files are stale: ")
    assert "deployment/docker-compose.yml" in err
    assert err.rstrip().endswith("run `hotmode render`")
    assert err.count("\n") == 1
    assert snapshot(gateway) == before


def test_files_of_a_removed_edition_are_removed_unless_edited_by_hand(
    gateway: Path, run_cli: RunCli
) -> None:
    declaration = gateway / "hotmode.toml"
    text = declaration.read_text()
    declaration.write_text(text.replace("[editions.saas]", "[editions.team]"))
    deployment = gateway / "deployment"
    edited = deployment / "docker-compose.dev-saas.yml"
    edited.write_text(edited.read_text() + "# mine\n")

    code, _, err = run_cli("render", "--check", cwd=gateway)
    assert code == 1
    assert "docker-compose.saas.yml" in err

    code, out, err = run_cli("render", "--no-validate", cwd=gateway)

    assert code == 1
    assert "removed   deployment/docker-compose.saas.yml (no longer declared)" in out
    assert not (deployment / "docker-compose.saas.yml").exists()
    assert (deployment / "docker-compose.team.yml").is_file()
    assert "kept hand-edited deployment/docker-compose.dev-saas.yml" in err
    assert edited.read_text().endswith("# mine\n")


def test_render_check_sees_a_hand_edit(gateway: Path, run_cli: RunCli) -> None:
    dockerfile = gateway / "deployment" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN true\n")
    code, _, err = run_cli("render", "--check", cwd=gateway)
    assert code == 1
    assert "deployment/Dockerfile" in err


def test_write_files_reports_what_it_did(gateway: Path) -> None:
    rendered = render_files(load_config(gateway / "hotmode.toml"))
    paths = list(rendered)
    paths[0].unlink()
    paths[1].write_text(paths[1].read_text() + "# edit\n")

    report = write_files(rendered)
    assert (report.written, report.kept) == ([paths[0]], [paths[1]])
    assert sorted(report.unchanged) == sorted(paths[2:])

    report = write_files(rendered, force=True)
    assert (report.written, report.kept) == ([paths[1]], [])


def test_write_atomic_replaces_whole_files_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "file.yml"
    write_atomic(target, "one\n")
    write_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["file.yml"]


def test_a_failed_atomic_write_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    # os.replace cannot put a file over a folder: the write fails after the temp file exists.
    (tmp_path / "taken").mkdir()
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(OSError):
        write_atomic(tmp_path / "taken", "content\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "taken"]
    assert list((tmp_path / "taken").iterdir()) == []


def test_the_dockerfile_has_the_three_stages_and_no_syntax_line(gateway: Path) -> None:
    config = load_config(gateway / "hotmode.toml")
    dockerfile = render_files(config)[config.deployment / "Dockerfile"]
    body = dockerfile.split("\n", 3)[3]
    assert not any(line.startswith("# syntax=") for line in dockerfile.splitlines())
    assert body.startswith("ARG BASE_IMAGE=python:3.11-slim\n")
    for stage in ("AS deps", "FROM deps AS dev", "FROM deps AS prod"):
        assert stage in body
    prod = body.split("AS prod", 1)[1]
    assert "LABEL org.opencontainers.image.revision=$REVISION" in prod
    assert "USER 10001:10001" in prod
    assert "--reload" not in prod
    dev = body.split("AS dev", 1)[1].split("AS prod", 1)[0]
    assert "pip install" in dev  # dependencies baked into the image, not installed at start


def test_the_dockerignore_keeps_secrets_history_and_caches_out(gateway: Path) -> None:
    config = load_config(gateway / "hotmode.toml")
    lines = render_files(config)[config.source / ".dockerignore"].splitlines()
    for pattern in (".env", ".env.*", ".git", "logs", "__pycache__", ".venv"):
        assert pattern in lines
    assert "!.env.example" in lines
