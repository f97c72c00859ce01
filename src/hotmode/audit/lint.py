"""The compose-lint bridge: its hardening rules (CIS Docker Benchmark, OWASP) on a merged stack.

compose-lint grades a parsed Compose document and reports each finding at a line of it. Here the
document is Compose's own merged configuration, which has no lines, so the bridge hands the
engine a line map whose "lines" are tokens, one per path of the merged document; a finding's
token names the path it is about, and `sources` turns that into the file and line of the stack
that wrote it. hotmode keeps compose-lint's rules, ids and severities, with three documented
exceptions (see `_adjust`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from hotmode.audit.catalog import load_rules
from hotmode.audit.model import Finding, Severity
from hotmode.audit.rules import Context
from hotmode.audit.sources import Segment, value_at, written_value
from hotmode.errors import UsageError

TOOL = "compose-lint"
# Rules that point at the service line although they are about one key: name the key, so the
# finding lands on the file that set it (an overlay's `read_only: false`) rather than the base.
_SUBJECT = {
    "CL-0003": "security_opt",
    "CL-0006": "cap_drop",
    "CL-0007": "read_only",
    "CL-0026": "deploy",
}
# CL-0004/CL-0019 ask for a pinned tag and a registry digest. A service with `build:` makes its
# image locally; the tag names that local build and there is no digest to pin. The base image it
# starts from is the Dockerfile's business, not the Compose file's.
BUILT_LOCALLY = (
    "built locally from build:; the tag names the local build, there is no digest to pin"
)
_PIN_RULES = {"CL-0004", "CL-0019"}
WAIVERS = "x-hotmode-waivers"
# CL-0020/CL-0021 grade `environment` values as literals written in the file. A value the file
# takes from the environment when Compose runs (`${SECRET_KEY:?set it}`) is not one, whatever
# the check's own environment (or its placeholder) put there.
_CREDENTIAL_RULES = {"CL-0020", "CL-0021"}
_FROM_ENVIRONMENT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}|\$[A-Za-z_][A-Za-z0-9_]*")
FROM_ENVIRONMENT = "the file takes this value from the environment; it writes no literal"
_INTERPOLATED = re.compile(r"\$\{?[A-Za-z_]")


def _walk(document: Any) -> Iterator[tuple[str, tuple[Segment, ...]]]:
    stack: list[tuple[Any, str, tuple[Segment, ...]]] = [(document, "", ())]
    while stack:
        node, dotted, segments = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                child = f"{dotted}.{key}" if dotted else str(key)
                yield child, (*segments, str(key))
                stack.append((value, child, (*segments, str(key))))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                child = f"{dotted}[{index}]"
                yield child, (*segments, index)
                stack.append((value, child, (*segments, index)))


def token_lines(document: Mapping[str, Any]) -> tuple[dict[str, int], list[tuple[Segment, ...]]]:
    """A line map for compose-lint whose values index the paths they stand for (from 1)."""
    paths: list[tuple[Segment, ...]] = [()]
    lines: dict[str, int] = {}
    for dotted, segments in _walk(document):
        lines[dotted] = len(paths)
        paths.append(segments)
    return lines, paths


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _fix(rule_id: str, text: str | None) -> str:
    """compose-lint's fix on one line: its first line, with the snippet under it if short."""
    raw = [line for line in (text or "").splitlines() if line.strip()]
    if not raw:
        return f"See `compose-lint --explain {rule_id}`."
    first = raw[0].strip()
    snippet = []
    for line in raw[1:]:
        if not line.startswith((" ", "\t")):
            break
        snippet.append(line.strip())
    joined = " ".join(snippet)
    if first.endswith(":") and snippet and len(first) + len(joined) <= 100:
        first = f"{first} {joined}"
    first = first.rstrip(":")
    return first if len(raw) == 1 else f"{first} (`compose-lint --explain {rule_id}`)"


def lint(context: Context) -> list[Finding]:
    """compose-lint's findings on one stack's merged configuration, located and mapped."""
    try:
        from compose_lint.engine import FindingLimitError, run_rules
    except ImportError:
        raise UsageError(
            "compose-lint is not installed; install hotmode's audit extra: "
            "pip install 'hotmode[audit]'"
        ) from None

    document = dict(context.merged)
    lines, paths = token_lines(document)
    crashes: list[Finding] = []

    def on_error(rule_id: str, service: str, exc: Exception) -> None:
        crashes.append(
            Finding(
                rule_id,
                Severity.LOW,
                context.stack.label,
                service,
                f"compose-lint could not check this service: {exc.__class__.__name__}",
                "Report it to compose-lint.",
                None,
                tool=TOOL,
            )
        )

    try:
        raw = run_rules(document, lines, on_error=on_error)
    except FindingLimitError as exc:
        raw = exc.findings
    return [_adjust(context, finding, paths) for finding in raw] + crashes


def _adjust(context: Context, raw: Any, paths: list[tuple[Segment, ...]]) -> Finding:
    service = str(raw.service)
    path: tuple[Segment, ...] = ("services", service)
    if isinstance(raw.line, int) and 0 < raw.line < len(paths):
        path = paths[raw.line]
    subject = _SUBJECT.get(raw.rule_id)
    if subject and path == ("services", service):
        path = (*path, subject)
    severity = Severity.parse(raw.severity.value)
    message = _one_line(raw.message)
    suppressed = f"{raw.suppression_reason or 'suppressed'}" if raw.suppressed else None
    config = value_at(context.merged, ("services", service)) or {}
    if raw.rule_id in _PIN_RULES and isinstance(config, dict) and context.build(config):
        suppressed = BUILT_LOCALLY
    # A declared companion's documented exceptions (hotmode.compose.companions), never the app's.
    # Compose drops `x-` keys from a service when it merges, so they are read from the files.
    if not context.is_app(service):
        for source in context.sources.files:
            reason = source.scalar(("services", service, WAIVERS, raw.rule_id))
            if reason:
                suppressed = reason
    role = context.roles.get(service)
    for registered in load_rules().values():
        covered = raw.rule_id in registered.covers and context.stack.mode in registered.rule.modes
        if covered and role is not None and role.kind in registered.kinds:
            suppressed = f"reported as {registered.rule.id}"
    if raw.rule_id in _CREDENTIAL_RULES and len(path) == 4 and path[2] == "environment":
        text = written_value(context.sources, service, str(path[3]))
        if text is not None and _FROM_ENVIRONMENT.fullmatch(text.strip()):
            suppressed = FROM_ENVIRONMENT
    if raw.rule_id == "CL-0018" and context.stack.mode == "dev":
        written = [f.scalar(("services", service, "user")) for f in context.sources.files]
        if any(w and _INTERPOLATED.search(w) for w in written):
            # Dev runs as the host's user by design (HOST_UID), so files it writes into the
            # mounted tree stay the user's; root here means the check itself ran as root.
            severity = Severity.LOW
            message += " (dev runs as the host's user, set by a variable; here it resolved to root)"
    return Finding(
        rule_id=raw.rule_id,
        severity=severity,
        stack=context.stack.label,
        service=service,
        message=message,
        fix=_fix(raw.rule_id, raw.fix),
        location=context.sources.locate(path, context.merged),
        tool=TOOL,
        suppressed=suppressed,
        references=tuple(raw.references or ()),
    )
