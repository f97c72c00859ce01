"""The gateway's backend + postgres: app rules never fire on the database, its waivers are shown."""

from __future__ import annotations

from pathlib import Path

from hotmode.audit import checker
from hotmode.config import load_config
from hotmode.modes import all_selections


def test_no_app_rule_fires_on_the_database_and_its_exception_is_a_waiver(gateway: Path) -> None:
    config = load_config(gateway / "hotmode.toml")
    report = checker.check(checker.declared_stacks(config, all_selections(config)))
    about_db = [f for f in report.findings if f.service == "postgres"]

    # Reload, source mount, install at start, revision label: the app's rules, not the database's.
    assert not [f for f in about_db if f.rule_id.startswith(("HM-P", "HM-D"))]
    assert not [f for f in about_db if f.suppressed is None]
    waived = {f.rule_id: f.suppressed for f in about_db}
    assert waived == {
        "CL-0019": "the official postgres image by tag; pin its digest where it is pulled"
    }


def test_a_waiver_never_applies_to_the_app(gateway: Path) -> None:
    compose = gateway / "deployment" / "docker-compose.yml"
    text = compose.read_text()
    # A privileged app, with the companions' waiver syntax written on it: still a finding.
    marker = "    restart: unless-stopped\n"
    extra = "    privileged: true\n    x-hotmode-waivers:\n      CL-0002: not for the app\n"
    compose.write_text(text.replace(marker, marker + extra, 1))
    config = load_config(gateway / "hotmode.toml")
    prod = [s for s in all_selections(config) if s.label == "prod core"]
    report = checker.check(checker.declared_stacks(config, prod))

    privileged = [f for f in report.findings if f.rule_id == "CL-0002"]
    assert [(f.service, f.suppressed) for f in privileged] == [("backend", None)]
