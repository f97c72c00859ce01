"""Which uvicorn the handover runs on: the range, and the one line said outside it."""

from __future__ import annotations

from importlib import metadata

from hotmode.reload import compat


def test_the_installed_uvicorn_has_every_internal_the_handover_uses() -> None:
    # Run against the oldest and the newest of the range (noxfile.py), this is the check.
    assert compat.missing_internals() == []
    assert compat.handover_problem(metadata.version("uvicorn")) is None


def test_the_installed_version_is_read_as_its_metadata_says() -> None:
    assert compat.installed_version() == metadata.version("uvicorn")


def test_inside_the_range_nothing_is_said() -> None:
    assert compat.handover_problem(compat.OLDEST) is None
    assert compat.handover_problem(compat.NEWEST_TESTED) is None
    assert compat.handover_problem("0.30.6") is None


def test_an_older_uvicorn_is_named_with_the_version_needed() -> None:
    problem = compat.handover_problem("0.21.1")
    assert problem is not None
    assert problem.startswith("uvicorn 0.21.1 is older than 0.22.0")
    assert "install uvicorn>=0.22.0" in problem
    assert "\n" not in problem


def test_a_newer_uvicorn_keeps_the_handover_when_its_internals_are_there() -> None:
    assert compat.handover_problem("9.0.0") is None  # the installed one has them


def test_versions_compare_as_numbers() -> None:
    assert compat.parse("0.27.0.post1") == (0, 27, 0)
    assert compat.parse("0.9.1") < compat.parse("0.22.0") < compat.parse("0.100.0")
