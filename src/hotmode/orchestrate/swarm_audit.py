"""`hotmode check --swarm`: the prod rules on the stack file, plus what Swarm would lose.

The stack file is a Compose file, so hotmode's prod rules and compose-lint run on it as they do
on the Compose modes. On top, the Swarm rules name what `docker stack deploy` drops or ignores
(see shared/notes/swarm-on-one-machine.md): the short `tmpfs:` form, keys it ignores, `${...}`
left for a `.env` it never reads, an update that is not health-gated and rolled back, an image
that does not carry the revision, and no-new-privileges, which Swarm has no per-service form
for (said at low severity: only the engine's own setting can give it).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from hotmode.audit.model import Finding, Report, Severity, findings_of
from hotmode.config import Config
from hotmode.errors import UsageError
from hotmode.orchestrate.swarm import NO_NEW_PRIVILEGES, REVISION_LABEL, STACK_FILE, monitor_seconds
from hotmode.orchestrate.units import duration_seconds

_IGNORED = ("build", "container_name", "restart", "network_mode", "security_opt", "depends_on")
_VARIABLE = re.compile(r"\$\{?[A-Za-z_]")

RULES: dict[str, tuple[Severity, str, str]] = {
    "HM-S01": (Severity.LOW, "no-new-privileges has no per-service form on Swarm",
               'Set "no-new-privileges": true in /etc/docker/daemon.json on every node.'),
    "HM-S02": (Severity.HIGH, "tmpfs in the mount form (stack deploy drops `tmpfs:`)",
               "Use volumes: [{type: tmpfs, target: /tmp}]; `hotmode render --swarm` does."),
    "HM-S03": (Severity.HIGH, "No key that Swarm ignores",
               "Remove it; restart is deploy.restart_policy, build is done before deploy."),
    "HM-S04": (Severity.MEDIUM, "Health-gated updates that roll back",
               "Give a healthcheck and update_config failure_action: rollback, monitor >= it."),
    "HM-S05": (Severity.MEDIUM, "The image carries the revision",
               "Tag the image <name>:<commit> and label the service with the revision."),
    "HM-S06": (Severity.HIGH, "No variable left for a .env that stack deploy never reads",
               "Render with `hotmode render --swarm`: it resolves deployment/.env."),
    "HM-S07": (Severity.HIGH, "The stack file on disk is what was checked",
               "Run `hotmode render --swarm` (or move hand edits into the declaration)."),
    "HM-S08": (Severity.HIGH, "No published port bound to one address",
               "Swarm publishes on every interface: drop host_ip or use host networking."),
}  # fmt: skip


def _service_hits(name: str, service: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    yield "HM-S01", f"{name}: {NO_NEW_PRIVILEGES}"
    if "tmpfs" in service:
        yield "HM-S02", f"{name}: tmpfs: {service['tmpfs']} is dropped by stack deploy in silence"
    for key in _IGNORED:
        if key in service:
            yield "HM-S03", f"{name}: {key}: is ignored by stack deploy"
    deploy = service.get("deploy") or {}
    update = deploy.get("update_config") or {}
    if str(deploy.get("mode", "")).endswith("-job"):
        # A job runs to completion before the update and is never updated in place.
        pass
    elif not service.get("healthcheck"):
        yield "HM-S04", f"{name}: no healthcheck, so an update cannot wait for health"
    elif update.get("failure_action") != "rollback":
        yield "HM-S04", f"{name}: a failed update is not rolled back (failure_action)"
    else:
        needed = monitor_seconds(service)
        monitor = duration_seconds(update.get("monitor") or "5s")
        if monitor < needed:
            yield (
                "HM-S04",
                f"{name}: monitor {monitor:g}s ends before the healthcheck can pass ({needed}s)",
            )
    revision = (deploy.get("labels") or {}).get(REVISION_LABEL)
    image = str(service.get("image") or "")
    if revision is not None and not image.endswith(f":{revision}"):
        yield "HM-S05", f"{name}: image {image} is not tagged with its revision {revision}"
    for port in service.get("ports") or []:
        if (isinstance(port, str) and port.count(":") >= 2) or (
            isinstance(port, dict) and port.get("host_ip")
        ):
            yield "HM-S08", f"{name}: port {port} names an address Swarm ignores"


def _variables(text: str) -> Iterator[tuple[str, str]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.lstrip().startswith("#") and _VARIABLE.search(line):
            yield "HM-S06", f"line {number} keeps a variable: {line.strip()[:60]}"


def stack_findings(path: Path, label: str) -> list[Finding]:
    """The Swarm rules on the stack file at `path`."""
    text = path.read_text(encoding="utf-8")
    document = yaml.safe_load(text) or {}
    hits = list(_variables(text))
    for name, service in (document.get("services") or {}).items():
        hits += _service_hits(str(name), service or {})
    return findings_of(RULES, label, [(rule, message, path) for rule, message in hits])


def audit_report(config: Config, stale: list[Path]) -> Report:
    """`check --swarm`: the stack file's prod rules, compose-lint's, and the Swarm rules."""
    from hotmode.audit.checker import check
    from hotmode.audit.model import Stack

    path = config.deployment / STACK_FILE
    if not path.is_file():
        raise UsageError(f"{path} does not exist; run `hotmode render --swarm` first")
    label = f"swarm {STACK_FILE}"
    # The app is the declared service: rules about source and reload are about it alone.
    stack = Stack(label, "prod", (path,), source=config.source, apps=(config.service,))
    compose = check([stack])
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    built = {
        name
        for name, service in (document.get("services") or {}).items()
        if REVISION_LABEL in ((service or {}).get("deploy") or {}).get("labels", {})
    }
    # Through ingress, Swarm publishes on every interface: that is the shape, not a slip.
    ingress = "hostnet" not in (document.get("networks") or {})
    findings = []
    for finding in compose.findings:
        if finding.rule_id == "CL-0005" and ingress:
            finding = dataclasses.replace(
                finding, suppressed="Swarm's ingress publishes on every interface (HM-S08)"
            )
        elif finding.rule_id == "CL-0003":
            finding = dataclasses.replace(finding, suppressed="reported as HM-S01")
        elif finding.rule_id in ("CL-0004", "CL-0019") and finding.service in built:
            finding = dataclasses.replace(finding, suppressed="built by hotmode, tagged <commit>")
        findings.append(dataclasses.replace(finding, stack=label))
    findings += stack_findings(path, label)
    findings += findings_of(
        RULES, label, [("HM-S07", f"{p.name} is stale or edited by hand", p) for p in stale]
    )
    stacks = tuple(dataclasses.replace(s, label=label) for s in compose.stacks)
    return Report(stacks, tuple(findings))
