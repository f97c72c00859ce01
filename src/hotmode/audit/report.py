"""Turning a `Report` into text for people, JSON for scripts and SARIF 2.1.0 for code scanning.

Pure functions: a report and the `--fail-on` threshold in, a string out; the CLI prints it. The
JSON shape is described by `report.schema.json`, shipped beside this module.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from hotmode import __version__
from hotmode.audit.catalog import load_rules
from hotmode.audit.model import Finding, Kind, Report, Role, Severity, Unknown

JSON_VERSION = 2
SCHEMA = Path(__file__).with_name("report.schema.json")
_SARIF_LEVEL = {
    Severity.LOW: "note",
    Severity.MEDIUM: "warning",
    Severity.HIGH: "error",
    Severity.CRITICAL: "error",
}
# GitHub code scanning ranks alerts by this property (CVSS-like, 0.0-10.0).
_SECURITY_SEVERITY = {
    Severity.LOW: "2.0",
    Severity.MEDIUM: "5.0",
    Severity.HIGH: "7.5",
    Severity.CRITICAL: "9.5",
}


def _shown(path: Path, base: Path) -> str:
    """A path as the user sees it: relative to the working directory when they share more than
    the root (`../.dockerignore`), so output is the same in every checkout."""
    try:
        common = os.path.commonpath([path, base])
    except ValueError:
        return path.as_posix()
    # Sharing only `/` or one folder (`/tmp`, `/home`) is no relation: `/tmp` in a message
    # is a container's path, not the parent of a checkout under /tmp.
    if not path.is_absolute() or len(Path(common).parts) < 3:
        return path.as_posix()
    return Path(os.path.relpath(path, base)).as_posix()


_ABSOLUTE = re.compile(r"(?<![\w.~$-])/[^\s'\"`,;:()]+")


def shown_text(message: str, base: Path) -> str:
    """A message with the host paths in it (a build context, a mount's source) shown as
    `_shown` shows them; container paths (`/app`) share only the root and stay as written."""
    return _ABSOLUTE.sub(lambda match: _shown(Path(match.group(0)), base), message)


def _where(finding: Finding | Unknown, base: Path) -> str:
    if finding.location is None:
        return "(merged configuration)"
    shown = _shown(finding.location.path, base)
    return f"{shown}:{finding.location.line}" if finding.location.line else shown


def distinct_unknowns(report: Report) -> dict[tuple[Any, ...], list[Unknown]]:
    """Unknowns grouped by what could not be checked: each is shown (and counted) once a run,
    with the modes it concerns."""
    groups: dict[tuple[Any, ...], list[Unknown]] = {}
    for unknown in report.unknowns:
        key = (unknown.rule_id, unknown.service, unknown.reason, unknown.location)
        groups.setdefault(key, []).append(unknown)
    return groups


def summary(report: Report, threshold: Severity) -> str:
    counted = Counter(f.severity for f in report.findings if f.suppressed is None)
    suppressed = sum(1 for f in report.findings if f.suppressed is not None)
    parts = [f"{counted[s]} {s.label}" for s in sorted(Severity, reverse=True) if counted[s]]
    if suppressed:
        parts.append(f"{suppressed} waived")
    unknowns = len(distinct_unknowns(report))
    if unknowns:
        parts.append(f"{unknowns} unknown")
    verdict = "FAIL" if report.failing(threshold) else "PASS"
    found = ", ".join(parts) if parts else "no findings"
    return f"{verdict}: {len(report.stacks)} mode(s) checked, {found}; fail-on {threshold.label}"


def _judged(roles: dict[str, Role], base: Path) -> str:
    """`app: web (runs gunicorn); companion: db (postgres:16)`: the roles, by kind."""
    parts = []
    for kind in Kind:
        named = [
            f"{name} ({shown_text(role.reason, base)}"
            f"{f'; profile {role.profile}' if role.profile else ''})"
            for name, role in roles.items()
            if role.kind is kind
        ]
        if named:
            parts.append(f"{kind.value}: {', '.join(named)}")
    return "; ".join(parts) if parts else "no services"


def roles_lines(report: Report, base: Path) -> list[str]:
    """Which services each mode judged as what, modes that agree listed together."""
    groups: dict[str, list[str]] = {}
    for label, roles in report.roles.items():
        groups.setdefault(_judged(dict(roles), base), []).append(label)
    return [f"services [{', '.join(labels)}]: {judged}" for judged, labels in groups.items()]


def text(report: Report, threshold: Severity, base: Path, *, show_waived: bool = False) -> str:
    """Which service is what, one line per problem (modes that share it listed together) with
    its fix, one line per rule that could not decide and why, then a verdict."""
    out = roles_lines(report, base)
    groups: dict[tuple[Any, ...], list[Finding]] = {}
    for finding in report.findings:
        if finding.suppressed is not None and not show_waived:
            continue
        key = (finding.rule_id, finding.location, finding.service, finding.message)
        groups.setdefault(key, []).append(finding)
    for findings in groups.values():
        first = findings[0]
        modes = ", ".join(f.stack for f in findings)
        service = f"{first.service}: " if first.service else "project-wide: "
        waived = f" (waived: {first.suppressed})" if first.suppressed else ""
        out.append(
            f"{_where(first, base)}: {first.severity.label} {first.rule_id} [{modes}] "
            f"{service}{shown_text(first.message, base)}{waived}"
        )
        out.append(f"    fix: {first.fix}")
    for unknowns in distinct_unknowns(report).values():
        first_unknown = unknowns[0]
        modes = ", ".join(u.stack for u in unknowns)
        service = f"{first_unknown.service}: " if first_unknown.service else "project-wide: "
        out.append(
            f"{_where(first_unknown, base)}: unknown {first_unknown.rule_id} [{modes}] {service}"
            f"not checked: {shown_text(first_unknown.reason, base)}"
        )
    out.append(summary(report, threshold))
    return "\n".join(out) + "\n"


def catalogue() -> str:
    """hotmode's own rules, one per line with its fix, and where the generic ones come from."""
    out = []
    for registered in sorted(load_rules().values(), key=lambda r: r.rule.id):
        rule = registered.rule
        modes = "every mode" if len(rule.modes) > 1 else rule.modes[0]
        out.append(f"{rule.id}  {rule.severity.label:<6}  {modes:<10}  {rule.title}")
        out.append(f"    fix: {rule.fix}")
    out += [
        "CL-*    compose-lint's hardening rules (CIS Docker Benchmark, OWASP), on every mode.",
        "        Waived: CL-0004/CL-0019 (tag and digest pins) for services with build:; for",
        "        prod apps CL-0007/CL-0018 are reported as HM-P04/HM-P05. Low: CL-0018 in dev",
        "        when user: comes from a variable (the host's user). CL-0020/CL-0021 are waived",
        "        for values the file takes from the environment (${NAME:?...}).",
        "Roles: weighed from evidence (command, Dockerfile base, image name, mounted Python",
        "        source, dependencies, restart policy, a shared build): the app gets the app",
        "        rules; workers and jobs the source and image rules; companions and others",
        "        compose-lint's only. No clear app is unknown (HM-A06): --app NAME or",
        "        x-hotmode: {role: app} decides. `unknown`: a rule lacked its evidence.",
    ]
    return "\n".join(out) + "\n"


def _finding_json(finding: Finding, base: Path) -> dict[str, Any]:
    return {
        "rule_id": finding.rule_id,
        "tool": finding.tool,
        "severity": finding.severity.label,
        "mode": finding.stack,
        "service": finding.service,
        "scope": "service" if finding.service else "project",
        "message": shown_text(finding.message, base),
        "fix": finding.fix,
        "file": _shown(finding.location.path, base) if finding.location else None,
        "line": finding.location.line if finding.location else None,
        "waived": finding.suppressed,
    }


def _unknown_json(group: list[Unknown], base: Path) -> dict[str, Any]:
    first = group[0]
    return {
        "rule_id": first.rule_id,
        "modes": [u.stack for u in group],
        "service": first.service,
        "scope": "service" if first.service else "project",
        "reason": shown_text(first.reason, base),
        "file": _shown(first.location.path, base) if first.location else None,
        "line": first.location.line if first.location else None,
    }


def to_json(report: Report, threshold: Severity, base: Path) -> str:
    """The report as JSON, in the shape `report.schema.json` describes."""
    counted = Counter(f.severity.label for f in report.findings if f.suppressed is None)
    document = {
        "version": JSON_VERSION,
        "tool": {"name": "hotmode", "version": __version__},
        "fail_on": threshold.label,
        "passed": not report.failing(threshold),
        "modes": [
            {
                "label": stack.label,
                "mode": stack.mode,
                "project": stack.project,
                "files": [_shown(path, base) for path in stack.files],
                "services": {
                    name: {"role": role.kind.value, "reason": shown_text(role.reason, base)}
                    | ({"profile": role.profile} if role.profile else {})
                    for name, role in report.roles.get(stack.label, {}).items()
                },
            }
            for stack in report.stacks
        ],
        "summary": {s.label: counted[s.label] for s in Severity}
        | {
            "waived": sum(1 for f in report.findings if f.suppressed is not None),
            "unknown": len(distinct_unknowns(report)),
        },
        "findings": [_finding_json(f, base) for f in report.findings],
        "unknowns": [_unknown_json(group, base) for group in distinct_unknowns(report).values()],
    }
    return json.dumps(document, indent=2) + "\n"


def _compose_lint_rules() -> dict[str, tuple[str, str]]:
    from compose_lint.rules import get_registered_rules

    catalogue = {}
    for cls in get_registered_rules():
        metadata = cls().metadata
        catalogue[metadata.id] = (metadata.name, " ".join(metadata.description.split()))
    return catalogue


def _descriptors(report: Report) -> list[dict[str, Any]]:
    ours = {reg.rule.id: reg.rule for reg in load_rules().values()}
    theirs = _compose_lint_rules()
    descriptors = []
    used = {f.rule_id for f in report.findings} | {u.rule_id for u in report.unknowns}
    for rule_id in sorted(used):
        example = next((f for f in report.findings if f.rule_id == rule_id), None)
        if rule_id in ours:
            rule = ours[rule_id]
            name, description, fix, severity = rule.title, rule.title, rule.fix, rule.severity
            tool = "hotmode"
        elif example is None:
            continue
        else:
            name, description = theirs.get(rule_id, (rule_id, example.message))
            fix, severity, tool = example.fix, example.severity, example.tool
        descriptors.append(
            {
                "id": rule_id,
                "name": name,
                "shortDescription": {"text": name},
                "fullDescription": {"text": description},
                "help": {"text": fix},
                "defaultConfiguration": {"level": _SARIF_LEVEL[severity]},
                "properties": {
                    "tool": tool,
                    "security-severity": _SECURITY_SEVERITY[severity],
                    "tags": ["security", tool],
                },
            }
        )
    return descriptors


def _physical(location: Any, base: Path) -> dict[str, Any]:
    path = location.path
    uri = _shown(path, base)
    artifact = (
        {"uri": path.as_uri()}
        if path.is_absolute() and uri == path.as_posix()
        else {"uri": uri, "uriBaseId": "SRCROOT"}
    )
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if location.line:
        physical["region"] = {"startLine": location.line}
    return {"physicalLocation": physical}


def _unknown_result(group: list[Unknown], index: dict[str, int], base: Path) -> dict[str, Any]:
    """An unknown as a SARIF note: the rule, and why it could not decide."""
    first = group[0]
    modes = ", ".join(u.stack for u in group)
    result: dict[str, Any] = {
        "ruleId": first.rule_id,
        "ruleIndex": index[first.rule_id],
        "level": "note",
        "message": {
            "text": f"[{modes}] {first.service or 'project-wide'}: not checked: "
            f"{shown_text(first.reason, base)}"
        },
        "properties": {"verdict": "unknown", "mode": modes, "service": first.service or ""},
    }
    if first.location is not None:
        result["locations"] = [_physical(first.location, base)]
    return result


def _result(finding: Finding, index: dict[str, int], base: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": index[finding.rule_id],
        "level": _SARIF_LEVEL[finding.severity],
        "message": {
            "text": f"[{finding.stack}] {finding.service or 'project-wide'}: "
            f"{shown_text(finding.message, base)}"
        },
        "properties": {
            "mode": finding.stack,
            "service": finding.service or "",
            "severity": finding.severity.label,
            "fix": finding.fix,
        },
    }
    if finding.location is not None:
        result["locations"] = [_physical(finding.location, base)]
    if finding.suppressed is not None:
        result["suppressions"] = [{"kind": "external", "justification": finding.suppressed}]
    return result


def to_sarif(report: Report, base: Path) -> str:
    """The report as one SARIF 2.1.0 run; waived findings carry a suppression, unknowns are
    notes, and the run's properties say which service was judged as what."""
    rules = _descriptors(report)
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "hotmode",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"SRCROOT": {"uri": base.as_uri() + "/"}},
                "results": [_result(f, index, base) for f in report.findings]
                + [_unknown_result(g, index, base) for g in distinct_unknowns(report).values()],
                "properties": {
                    "roles": {
                        label: {name: role.kind.value for name, role in roles.items()}
                        for label, roles in report.roles.items()
                    }
                },
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
