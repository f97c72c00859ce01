"""Fixtures of the audit tests: a fresh project folder, and checking file sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.audit_support import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)
