"""Checking stacks: merge each with Compose, run hotmode's mode rules and compose-lint on it.

`check` is the one entry point: stacks in, a `Report` out, or a one-line `UsageError` (exit 2)
for input that cannot be checked: a missing or malformed file, a file Compose rejects, a
required variable that is not set. Stacks come from the declaration (`declared_stacks`) or from
any file set (`file_stack`), so users can audit the files they have before adopting hotmode.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hotmode.audit.lint import lint
from hotmode.audit.model import Finding, Report, Rule, Stack
from hotmode.audit.rules import Context, Hit, load_rules
from hotmode.audit.sources import SourceSet, read_sources
from hotmode.compose import layout
from hotmode.compose.engine import Compose, find_compose
from hotmode.config import Config
from hotmode.errors import ComposeError
from hotmode.modes import Selection

_REQUIRED = re.compile(r"required variable (\w+) is missing a value(?::\s*(.*))?")


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


def file_stack(files: Sequence[Path], mode: str) -> Stack:
    """A stack of any Compose files, checked in `mode`; the project comes from the files."""
    paths = tuple(Path(path).absolute() for path in files)
    return Stack(label=f"{mode} {' + '.join(p.name for p in paths)}", mode=mode, files=paths)


def merged_config(stack: Stack, sources: SourceSet, compose: Compose) -> dict[str, Any]:
    """The stack's configuration as Compose merges it, env files left as references."""
    # `--no-env-resolution` keeps `env_file:` values (secrets) out of the document: they are
    # not the Compose files' text, and compose-lint would grade them as if they were.
    args = ("config", "--format", "json", "--no-env-resolution")
    try:
        result = compose.run(stack.files, stack.project, *args)
    except ComposeError as exc:
        raise _required_variable(sources, str(exc)) or exc from None
    try:
        document = json.loads(result.stdout)
    except json.JSONDecodeError:
        # A Compose that reports an error but exits 0 (a wrapper that drops the exit code).
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        message = lines[-1] if lines else "no configuration printed"
        names = ", ".join(str(path) for path in stack.files)
        raise _required_variable(sources, message) or ComposeError(
            f"Compose rejected {names}: {message}"
        ) from None
    if not isinstance(document, dict):
        raise ComposeError(f"Compose gave no configuration for {stack.label}")
    return document


def _required_variable(sources: SourceSet, message: str) -> ComposeError | None:
    """A missing `${NAME:?}` variable, named with the file and line that requires it."""
    required = _REQUIRED.search(message)
    if required is None:
        return None
    name = required.group(1)
    where = next(iter(sources.locate_text(re.compile(rf"\$\{{{name}:?\?"))), None)
    place = (
        f"{where[0].path}:{where[0].line}"
        if where
        else ", ".join(str(source.path) for source in sources.files)
    )
    return ComposeError(
        f"{place}: required variable {name} is not set ({required.group(2) or 'no hint'}); "
        f"export {name} or put it in the .env beside the files"
    )


def _finding(context: Context, rule: Rule, service: str | None, hit: Hit) -> Finding:
    location = hit.location or context.sources.locate(hit.path, context.merged)
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


def mode_findings(context: Context) -> list[Finding]:
    """hotmode's own rules for the stack's mode."""
    findings = []
    for registered in load_rules().values():
        rule = registered.rule
        if context.stack.mode not in rule.modes:
            continue
        if registered.stack_check is not None:
            findings += [_finding(context, rule, None, h) for h in registered.stack_check(context)]
        if registered.service_check is not None:
            for name, service in context.services(apps_only=not registered.every_service):
                for hit in registered.service_check(context, name, service):
                    findings.append(_finding(context, rule, name, hit))
    return findings


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
    contexts = [Context(s, m, src) for s, m, src in zip(stacks, merged, sources, strict=True)]
    findings: list[Finding] = []
    for context in contexts:
        findings += mode_findings(context) + lint(context)
    findings += shared_port_findings(contexts)
    order = {stack.label: index for index, stack in enumerate(stacks)}
    findings.sort(
        key=lambda f: (
            order.get(f.stack, 0),
            -f.severity,
            str(f.location.path) if f.location else "",
            (f.location.line or 0) if f.location else 0,
            f.rule_id,
        )
    )
    return Report(tuple(stacks), tuple(findings))
