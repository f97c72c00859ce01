"""Findings point at the file and line that introduced them, overlays included."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.audit_support import Project, only
from hotmode.audit.model import Location
from hotmode.audit.sources import SourceSet, read_source
from hotmode.errors import ComposeError


def _line(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_value_an_overlay_sets_points_at_the_overlay(project: Project) -> None:
    base = project.prod()
    overlay = project.write(
        "saas.yml", "services:\n  web:\n    environment:\n      DEBUG: 'true'\n"
    )
    (finding,) = only(project.check("prod", base, overlay), "HM-P07")
    assert finding.location == Location(overlay, 4)


def test_a_list_form_environment_entry_points_at_its_item(project: Project) -> None:
    base = project.prod(environment=["LOG_LEVEL=info", "DEBUG=yes"])
    (finding,) = only(project.check("prod", base), "HM-P07")
    assert finding.location == Location(base, _line(base, "DEBUG=yes"))


def test_a_missing_key_points_at_the_file_that_introduced_the_service(project: Project) -> None:
    base = project.prod(restart=None)
    overlay = project.write("saas.yml", "services:\n  web:\n    container_name: app-saas\n")
    (finding,) = only(project.check("prod", base, overlay), "HM-A03")
    assert finding.location == Location(base, _line(base, "web:"))


def test_a_key_an_overlay_turns_off_points_at_the_overlay(project: Project) -> None:
    overlay = project.write("dev.yml", "services:\n  web:\n    read_only: false\n")
    (finding,) = only(project.check("prod", project.prod(), overlay), "HM-P04")
    assert finding.location == Location(overlay, 3)


def test_list_items_point_at_the_file_that_wrote_them(project: Project) -> None:
    base = project.prod(volumes=["./.env:/app/.env", "./data:/data"])
    overlay = project.write(
        "dev.yml", "services:\n  web:\n    volumes:\n      - ./cache:/cache\n      - ../app:/app\n"
    )
    report = project.check("prod", base, overlay)
    (writable,) = only(report, "HM-P03")
    assert writable.location == Location(base, _line(base, "./.env:/app/.env"))
    (mounted,) = only(report, "HM-P01")
    assert mounted.location == Location(overlay, 5)


def test_compose_lint_findings_from_an_overlay_point_at_the_overlay(project: Project) -> None:
    overlay = project.write("ports.yml", "services:\n  web:\n    ports:\n      - '9000:9000'\n")
    (finding,) = only(project.check("prod", project.prod(), overlay), "CL-0005")
    assert finding.tool == "compose-lint"
    assert finding.location == Location(overlay, 4)


def test_text_rules_point_at_the_line_in_its_file(project: Project) -> None:
    overlay = project.write(
        "saas.yml", "services:\n  web:\n    environment:\n      API_TOKEN: ${API_TOKEN:-abc}\n"
    )
    (finding,) = only(project.check("prod", project.prod(), overlay), "HM-P09")
    assert finding.location == Location(overlay, 4)
    assert "abc" not in finding.message


def test_locate_without_a_writer_falls_back_to_the_deepest_parent(tmp_path: Path) -> None:
    first = tmp_path / "a.yml"
    first.write_text("services:\n  web:\n    image: x\n")
    second = tmp_path / "b.yml"
    second.write_text("services:\n  web:\n    ports: ['${P}:80']\n")
    sources = SourceSet((read_source(first), read_source(second)))
    merged = {"services": {"web": {"image": "x", "ports": [{"target": 80, "published": "1"}]}}}
    assert sources.locate(("services", "web", "image"), merged) == Location(first, 3)
    assert sources.locate(("services", "web", "user"), merged) == Location(first, 2)
    assert sources.locate(("services", "web", "ports", 0), merged) == Location(second, 3)
    assert sources.locate(("name",), merged) == Location(first, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("services:\n  web: [\n", "malformed YAML"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("services:\n  web:\n    image: &a x\n    user: *b\n", "malformed YAML"),
    ],
)
def test_unreadable_files_are_one_line_errors_naming_the_file(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text(text)
    with pytest.raises(ComposeError) as caught:
        read_source(path)
    message = str(caught.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="no such Compose file"):
        read_source(tmp_path / "nope.yml")


def test_a_source_mount_points_at_its_entry_not_at_volumes(project: Project) -> None:
    base = project.prod(volumes=["./.env:/app/.env:ro", "../app/configuration:/etc/app/config"])
    (finding,) = only(project.check("prod", base), "HM-P01")
    assert finding.location == Location(base, _line(base, "/etc/app/config"))
