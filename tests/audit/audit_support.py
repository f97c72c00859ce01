"""Reading reports in tests: the counted findings, their rule ids, those of one rule."""

from __future__ import annotations

from hotmode.audit.model import Finding, Report


def counted(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.suppressed is None]


def rule_ids(report: Report) -> set[str]:
    return {f.rule_id for f in counted(report)}


def only(report: Report, rule_id: str) -> list[Finding]:
    return [f for f in counted(report) if f.rule_id == rule_id]
