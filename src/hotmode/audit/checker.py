"""Checking stacks: merge each with Compose, run hotmode's mode rules and compose-lint on it.

`check` is the one entry point: stacks in, a `Report` out, or a one-line `UsageError` (exit 2)
for input that cannot be checked: a missing or malformed file, a v1 file, a file Compose
rejects (a schema violation, a dangling `depends_on`). Env files that are not there and
required variables that are not set are findings (HM-A05), not errors: the rest is checked (see
`inputs`). Stacks come from the declaration (`declared_stacks`) or from any file set
(`file_stack`), so users can audit the files they have before adopting hotmode.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from hotmode.audit.catalog import load_rules
from hotmode.audit.inputs import Prepared, prepare, restore_paths
from hotmode.audit.lint import lint
from hotmode.audit.model import Finding, Report, Rule, Stack, Unknown
from hotmode.audit.rules import Context, Hit
from hotmode.audit.sources import SourceSet, read_sources
from hotmode.compose import layout
from hotmode.compose.engine import Compose, find_compose
from hotmode.config import Config
from hotmode.errors import ComposeError, UsageError
from hotmode.modes import Selection


def declared_stacks(config: Config, selections: Iterable[Selection]) -> list[Stack]:
    """The stacks of the declaration's modes x editions, with their files and projects."""
    return [
        Stack(
            label=selection.label,
            mode=selection.mode,
            files=tuple(layout.compose_files(config, selection)),
            project=layout.project_name(config, selection),
            source=config.source,
            prod_image=layout.image_name(config, "prod"),
            apps=(config.service,),
        )
        for selection in selections
    ]


def file_stack(files: Sequence[Path], mode: str, apps: Sequence[str] = ()) -> Stack:
    """A stack of any Compose files, checked in `mode`; the project comes from the files, the
    app from `apps` (`--app`) or from what the services look like (`roles`)."""
    paths = tuple(Path(path).absolute() for path in files)
    label = f"{mode} {' + '.join(p.name for p in paths)}"
    return Stack(label=label, mode=mode, files=paths, apps=tuple(apps))


def merged_config(
    stack: Stack, sources: SourceSet, compose: Compose
) -> tuple[dict[str, Any], Prepared]:
    """The stack's configuration as Compose merges it, without its env files (see `inputs`)."""
    with tempfile.TemporaryDirectory(prefix="hotmode-check-") as folder:
        prepared = prepare(sources, Path(folder))
        # Every profile: a service behind one is judged and checked too, its profile named.
        args = (
            *("--project-directory", str(prepared.project_directory)),
            *("--profile", "*"),
            *("config", "--format", "json", "--no-env-resolution"),
        )
        try:
            try:
                result = compose.run(
                    prepared.files,
                    stack.project,
                    *args,
                    env=prepared.environment,
                    cwd=prepared.project_directory,
                )
                prepared = replace(prepared, empty=())
            except ComposeError:
                if not prepared.empty:
                    raise
                # An unset `${PORT}` where Compose wants a number: the file is valid once the
                # variable is set, so check it with a placeholder and report the variable.
                result = compose.run(
                    prepared.files,
                    stack.project,
                    *args,
                    env=prepared.retry,
                    cwd=prepared.project_directory,
                )
        except ComposeError as exc:
            # Name the user's files in full, not the copies Compose was given.
            short = ", ".join(path.name for path in prepared.files)
            detail = str(exc).removeprefix(f"Compose rejected {short}: ")
            names = ", ".join(str(path) for path in stack.files)
            detail = restore_paths(detail, prepared)
            raise ComposeError(f"Compose rejected {names}: {detail}") from None
        try:
            document = json.loads(result.stdout)
        except json.JSONDecodeError:
            # A Compose that reports an error but exits 0 (a wrapper that drops the exit code).
            lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
            message = lines[-1] if lines else "no configuration printed"
            names = ", ".join(str(path) for path in stack.files)
            raise ComposeError(
                f"Compose rejected {names}: {restore_paths(message, prepared)}"
            ) from None
    if not isinstance(document, dict):
        raise ComposeError(f"Compose gave no configuration for {stack.label}")
    return document, prepared


def input_findings(context: Context) -> list[Finding]:
    """HM-A05: the env files that are not there and the required variables that are not set."""
    from hotmode.audit.every import MISSING_INPUT

    prepared = context.prepared
    if prepared is None:
        return []
    hits: dict[tuple[Any, ...], tuple[str | None, Hit]] = {}
    for service, files in prepared.env_files.items():
        for env_file in files:
            if env_file.required and not env_file.path.is_file():
                shown = env_file.path.name
                message = f"env file {shown} is not here: its values were not checked"
                hit = Hit(message, ("services", service, "env_file"), env_file.named_at)
                hits.setdefault((env_file.path, env_file.named_at), (service, hit))
    for unset in prepared.empty:
        message = (
            f"variable {unset.name} is not set, and Compose rejects the empty value here: "
            "checked with a placeholder in its place"
        )
        hits.setdefault((unset.name,), (None, Hit(message, location=unset.location)))
    for unset in prepared.unset:
        message = (
            f"required variable {unset.name} is not set: checked with a placeholder in its place"
        )
        hits.setdefault((unset.name,), (None, Hit(message, location=unset.location)))
    return [_finding(context, MISSING_INPUT, service, hit) for service, hit in hits.values()]


def _finding(context: Context, rule: Rule, service: str | None, hit: Hit) -> Finding:
    location = hit.location or context.sources.locate(hit.path, context.merged)
    # A stack rule's hit at a line of one service's block is about that service.
    service = service or context.sources.service_at(location)
    return Finding(
        rule_id=rule.id,
        severity=rule.severity,
        stack=context.stack.label,
        service=service,
        message=hit.message,
        fix=rule.fix,
        location=location,
        title=rule.title,
    )


def _unknown(context: Context, rule: Rule, service: str | None, hit: Hit) -> Unknown:
    location = hit.location or context.sources.locate(hit.path, context.merged)
    service = service or context.sources.service_at(location)
    return Unknown(rule.id, context.stack.label, service, hit.message, location, rule.title)


def mode_findings(context: Context) -> tuple[list[Finding], list[Unknown]]:
    """hotmode's own rules for the stack's mode: what they found, and what they could not tell."""
    findings: list[Finding] = []
    unknowns: list[Unknown] = []

    def add(rule: Rule, service: str | None, hit: Hit) -> None:
        if hit.unknown:
            unknowns.append(_unknown(context, rule, service, hit))
        else:
            findings.append(_finding(context, rule, service, hit))

    for registered in load_rules().values():
        rule = registered.rule
        if context.stack.mode not in rule.modes:
            continue
        if registered.stack_check is not None:
            for hit in registered.stack_check(context):
                add(rule, None, hit)
        if registered.service_check is not None:
            for name, service in context.services(registered.kinds):
                for hit in registered.service_check(context, name, service):
                    add(rule, name, hit)
    return findings, unknowns


def role_unknowns(context: Context) -> list[Unknown]:
    """HM-A06: where the evidence does not say which service is the app."""
    from hotmode.audit.every import UNKNOWN_ROLE, role_hits

    return [_unknown(context, UNKNOWN_ROLE, name, hit) for name, hit in role_hits(context)]


def shared_port_findings(contexts: Sequence[Context]) -> list[Finding]:
    """HM-A02: stacks that publish the same port must not share a Compose project."""
    from hotmode.audit.every import SHARED_PORT, published_ports

    findings = []
    ports = [{p.rsplit(":", 1)[1] for p in published_ports(c)} for c in contexts]
    for later in range(len(contexts)):
        for earlier in range(later):
            shared = ports[earlier] & ports[later]
            name = contexts[later].merged.get("name")
            if shared and name == contexts[earlier].merged.get("name"):
                hit = Hit(
                    f"publishes port {min(shared)} like {contexts[earlier].stack.label} and is "
                    f"the same Compose project {name!r}: one mode's `down` stops the other",
                    ("name",),
                )
                findings.append(_finding(contexts[later], SHARED_PORT, None, hit))
                break
    return findings


def _known_apps(stack: Stack, merged: dict[str, Any]) -> None:
    services = merged.get("services") or {}
    unknown = [app for app in stack.apps if app not in services]
    if unknown and stack.source is None:
        names = ", ".join(sorted(services)) or "none"
        raise UsageError(
            f"--app {unknown[0]}: no such service in {stack.label}; the services are: {names}"
        )


def check(stacks: Sequence[Stack], compose: Compose | None = None) -> Report:
    """Check every stack; raise `UsageError` (exit 2) if one cannot be checked."""
    compose = compose or find_compose()
    sources = []
    for stack in stacks:
        if stack.source is not None:
            # A declared mode's files are rendered: a missing one means render has not run.
            for path in stack.files:
                if not path.exists():
                    raise ComposeError(f"{path} does not exist; run `hotmode render` first")
        sources.append(read_sources(stack.files))
    # Compose is a separate process per stack; merging them side by side halves `--all`.
    with ThreadPoolExecutor(max_workers=min(4, len(stacks) or 1)) as pool:
        pending = [
            pool.submit(merged_config, stack, source, compose)
            for stack, source in zip(stacks, sources, strict=True)
        ]
        merged = [future.result() for future in pending]
    contexts = []
    for stack, (document, prepared), source in zip(stacks, merged, sources, strict=True):
        _known_apps(stack, document)
        contexts.append(Context(stack, document, source, prepared))
    findings: list[Finding] = []
    unknowns: list[Unknown] = []
    for context in contexts:
        found, unsure = mode_findings(context)
        findings += found + lint(context) + input_findings(context)
        unknowns += unsure + role_unknowns(context)
    findings += shared_port_findings(contexts)
    order = {stack.label: index for index, stack in enumerate(stacks)}

    def where(item: Finding | Unknown) -> tuple[str, int]:
        location = item.location
        return (str(location.path), location.line or 0) if location else ("", 0)

    findings.sort(key=lambda f: (order.get(f.stack, 0), -f.severity, *where(f), f.rule_id))
    unknowns.sort(key=lambda u: (order.get(u.stack, 0), *where(u), u.rule_id))
    roles = {context.stack.label: dict(context.roles) for context in contexts}
    return Report(tuple(stacks), tuple(findings), tuple(unknowns), roles)
