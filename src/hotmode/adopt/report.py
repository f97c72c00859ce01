"""The report of `hotmode init --from`: each old mode against what hotmode renders for it.

For the app and every companion: the environment variable names, data volume names and ports
that are kept, what hotmode changes (its own variables, and the audit's findings on the old
files, with their rule ids) and what it cannot carry. Nothing the old files had is dropped
without a line here.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotmode.adopt.infer import Adoption
from hotmode.adopt.old import named_volumes
from hotmode.compose.engine import Compose
from hotmode.config import Config
from hotmode.errors import ConfigError, HotmodeError


def published_ports(service: Mapping[str, Any]) -> list[str]:
    ports = []
    for port in service.get("ports") or []:
        host = f"{port['host_ip']}:" if port.get("host_ip") else ""
        ports.append(f"{host}{port.get('published')}:{port.get('target')}")
    return sorted(ports)


def env_names(service: Mapping[str, Any]) -> set[str]:
    return set((service.get("environment") or {}).keys())


@dataclass
class ModeReport:
    """What adoption does to one mode x edition."""

    label: str
    kept: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    not_carried: list[str] = field(default_factory=list)
    # The audit's findings on the old files: what hotmode's rendering answers, by rule.
    findings: list[str] = field(default_factory=list)


def compare(
    label: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    old_service: str,
    new_service: str,
    fixed: Iterable[tuple[str, str]],
    from_files: Mapping[str, Mapping[str, str]] | None = None,
) -> ModeReport:
    """Old merged configuration against hotmode's, for the app and every companion.

    `from_files` holds what the old services' env files on disk set (service -> variable ->
    file name): Compose's merge of the old files leaves env files out, but those variables
    are the old mode's too, and are kept or named as not carried like the others.
    """
    report = ModeReport(label)
    old_services = old.get("services") or {}
    new_services = new.get("services") or {}
    pairs = [(old_service, new_service)] + [
        (name, name) for name in old_services if name != old_service
    ]
    for before_name, after_name in pairs:
        before = old_services.get(before_name) or {}
        after = new_services.get(after_name)
        if after is None:
            report.not_carried.append(f"service {before_name}: not in the declaration")
            continue
        who = f"{after_name}: "
        files = (from_files or {}).get(before_name) or {}
        old_env = env_names(before) | set(files)
        lost = sorted(old_env - env_names(after))
        kept_env = sorted(old_env & env_names(after))
        added = sorted(env_names(after) - old_env)
        if kept_env:
            report.kept.append(f"{who}environment {', '.join(kept_env)}")
        if added:
            report.changed.append(f"{who}environment adds {', '.join(added)} (hotmode's own)")
        for name in lost:
            if f"{name}_FILE" in env_names(after):
                report.changed.append(f"{who}environment {name} -> {name}_FILE (a secret file)")
            elif name in files and name not in env_names(before):
                fix = (
                    "name that file as the edition's env_file"
                    if before_name == old_service
                    else f"add it to [services.{after_name}] environment"
                )
                report.not_carried.append(f"{who}environment {name} (set in {files[name]}: {fix})")
            else:
                report.not_carried.append(f"{who}environment {name}")
        old_volumes = named_volumes(old, before)
        new_volumes = named_volumes(new, after)
        instead = ", ".join(sorted(set(new_volumes.values()) - set(old_volumes.values())))
        for real in sorted(old_volumes.values()):
            if real in new_volumes.values():
                report.kept.append(f"{who}volume {real}")
            elif before_name == old_service:
                # The app's own data (uploads, media): never swapped for another volume.
                report.not_carried.append(
                    f"{who}data volume {real} (the app declares no data volumes; its data "
                    "stays in it)"
                )
            else:
                report.changed.append(
                    f"{who}volume {real} -> {instead or 'none'} (the old volume keeps its data)"
                )
        old_ports, new_ports = published_ports(before), published_ports(after)
        if old_ports and old_ports == new_ports:
            report.kept.append(f"{who}ports {', '.join(old_ports)}")
        elif old_ports:
            report.changed.append(
                f"{who}ports {', '.join(old_ports)} -> {', '.join(new_ports) or 'none'}"
            )
    for rule, why in fixed:
        report.findings.append(f"{rule}: {why}")
    return report


def reports(adoption: Adoption, config: Config, compose: Compose) -> list[ModeReport]:
    """Each old mode against what hotmode renders for it, in a scratch deployment folder.

    `fixed` items are the audit's findings on the old files: what hotmode changes, and why.
    """
    from hotmode.audit import checker
    from hotmode.compose import layout
    from hotmode.compose.render import render_files
    from hotmode.modes import Selection

    done = []
    with tempfile.TemporaryDirectory(prefix=".hotmode-adopt-", dir=config.root) as scratch:
        scratch_config = dataclasses.replace(config, deployment=Path(scratch))
        for path, text in render_files(scratch_config).items():
            if path.is_relative_to(scratch):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        for old in adoption.modes:
            if old.merged is None:
                continue
            selection = Selection(old.mode, old.edition, "init", "init")
            try:
                scratch_config.edition(old.edition)
            except ConfigError:
                continue
            files = layout.compose_files(scratch_config, selection)
            new = json.loads(
                compose.run(
                    files, layout.project_name(config, selection), "config", "--format", "json"
                ).stdout
            )
            try:
                found = checker.check([checker.file_stack(old.files, old.mode)], compose)
                fixed = sorted(
                    {
                        (f.rule_id, _sentence(f.message))
                        for f in found.findings
                        if f.suppressed is None
                    }
                )
            except HotmodeError:
                fixed = []
            done.append(compare(old.label, old.merged, new, adoption.service, config.service,
                                fixed, old.env_file_variables))  # fmt: skip
    return done


def _sentence(text: str) -> str:
    return text.split(". ", 1)[0].rstrip(".")
