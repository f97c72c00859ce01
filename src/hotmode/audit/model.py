"""The values an audit deals in: roles, severities, rules, stacks, locations and findings.

A *stack* is one mode's `-f` file set and project; a *finding* is one problem in one stack,
located at the file and line that introduced it; an *unknown* is a rule that could not decide.
Everything here is frozen and plain, so that rules, the compose-lint bridge and the reports can
pass them around without owning them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class Kind(enum.Enum):
    """What a service is to the audit."""

    APP = "app"
    WORKER = "worker"
    JOB = "job"
    COMPANION = "companion"
    OTHER = "other"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Role:
    """A service's kind, the evidence that decided it (one short phrase), and, when the
    evidence does not decide, the services that could be the app."""

    kind: Kind
    reason: str
    candidates: tuple[str, ...] = ()
    # The rule of evidence that decided (`image`, `command`, `shared build`...), for reports
    # that weigh each rule's precision; the profile that gates the service, if one does.
    evidence: str = ""
    profile: str | None = None

    @property
    def is_app(self) -> bool:
        return self.kind is Kind.APP


class Severity(enum.IntEnum):
    """How bad a finding is; ordered, so `--fail-on` is a comparison."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]


@dataclass(frozen=True)
class Rule:
    """One of hotmode's own mode rules: an id, a severity, what it asks, and the fix."""

    id: str
    severity: Severity
    modes: tuple[str, ...]
    title: str
    fix: str


@dataclass(frozen=True)
class Stack:
    """One mode's Compose files and project, as a user or the declaration names them."""

    label: str
    mode: str
    files: tuple[Path, ...]
    project: str | None = None
    # The declared source folder; without a declaration the build contexts stand in for it.
    source: Path | None = None
    # The image tag prod uses, when a declaration says it; a dev build must not reuse it.
    prod_image: str | None = None
    # The app's services as declared (or named with `--app`); without them, `roles` judges.
    apps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Location:
    """Where a finding's cause was written: a file, and its line when one can be named."""

    path: Path
    line: int | None = None


@dataclass(frozen=True)
class Finding:
    """One problem in one stack, with the one-line fix and where it was introduced."""

    rule_id: str
    severity: Severity
    stack: str
    service: str | None
    message: str
    fix: str
    location: Location | None
    tool: str = "hotmode"
    title: str = ""
    # Why a finding is not counted against `--fail-on`, if it is not; it is still reported.
    suppressed: str | None = None
    references: tuple[str, ...] = field(default_factory=tuple)

    def counts_at(self, threshold: Severity) -> bool:
        return self.suppressed is None and self.severity >= threshold


@dataclass(frozen=True)
class Unknown:
    """A rule that could not decide for lack of evidence (a Dockerfile, a folder): it says why,
    and states nothing about the service."""

    rule_id: str
    stack: str
    service: str | None
    reason: str
    location: Location | None
    title: str = ""


@dataclass(frozen=True)
class Report:
    """Every stack checked, every finding and every unknown, in a stable order."""

    stacks: tuple[Stack, ...]
    findings: tuple[Finding, ...]
    unknowns: tuple[Unknown, ...] = ()
    # What each stack's services were judged to be: stack label -> service -> role.
    roles: Mapping[str, Mapping[str, Role]] = field(default_factory=dict)

    def failing(self, threshold: Severity) -> list[Finding]:
        return [finding for finding in self.findings if finding.counts_at(threshold)]


def findings_of(
    rules: Mapping[str, tuple[Severity, str, str]],
    label: str,
    hits: Sequence[tuple[str, str, Path]],
) -> list[Finding]:
    """Findings from (rule id, message, file) hits, with each rule's severity, title and fix."""
    findings = []
    for rule, message, path in hits:
        severity, title, fix = rules[rule]
        findings.append(
            Finding(rule, severity, label, None, message, fix, Location(path), title=title)
        )
    return findings
