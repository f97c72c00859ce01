"""The rules about every service: a healthcheck that can run, distinct projects, restart, logs,
and the inputs a check could not read (env files, required variables).

Published ports bound to an address are compose-lint's CL-0005, reported through the bridge; it
is not repeated here.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hotmode.audit.dev import PUBLIC_BASES
from hotmode.audit.inputs import read_env_values
from hotmode.audit.model import Kind, Severity
from hotmode.audit.prod import SECRET_NAME
from hotmode.audit.roles import FIX, app_candidates
from hotmode.audit.rules import (
    ALL_KINDS,
    Context,
    Hit,
    cross_rule,
    service_rule,
    split_image,
    stack_rule,
    table,
)

EVERY = ("prod", "dev")
# Restart policies and log rotation keep long-running prod services up and their disks free; a
# one-shot job ends by design, and a dev container is restarted and read by a person.
LONG_RUNNING = ALL_KINDS - {Kind.JOB}
_TOOLS = re.compile(r"\b(curl|wget)\b")
# What official slim, alpine and distroless images lack; alpine's busybox has a wget.
_LACKING = {"slim": {"curl", "wget"}, "alpine": {"curl"}, "distroless": {"curl", "wget"}}


def _variant(image: str) -> str | None:
    repository, tag = split_image(image)
    if "distroless" in repository:
        return "distroless"
    for variant in ("slim", "alpine"):
        if variant in tag or repository.endswith(variant):
            return variant
    return None


@service_rule(
    "HM-A01",
    Severity.HIGH,
    EVERY,
    "The healthcheck uses a tool the image has",
    "Probe with the image's own Python (python -c 'import urllib.request; ...'), not curl.",
    kinds=ALL_KINDS,
)
def healthcheck_tool(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    healthcheck = service.get("healthcheck")
    if not isinstance(healthcheck, dict) or healthcheck.get("disable"):
        return
    test = healthcheck.get("test")
    text = " ".join(str(p) for p in test) if isinstance(test, list) else str(test or "")
    tools = set(_TOOLS.findall(text))
    if not tools:
        return
    build = context.build(service)
    dockerfile = context.dockerfile(name, service)
    image = service.get("image")
    installed = ""
    base: str | None = None
    if isinstance(image, str) and split_image(image)[0] in PUBLIC_BASES:
        # `image:` names a public image: `up` pulls and runs it rather than building.
        base = image
    elif isinstance(build, dict) and dockerfile is not None:
        base = dockerfile.base_image(build.get("target"), build.get("args") or {})
        installed = dockerfile.runs(build.get("target"))
    elif isinstance(build, dict):
        yield Hit(
            f"whether the image has {' and '.join(sorted(tools))} depends on the Dockerfile; "
            f"{context.missing(name, service)}",
            ("services", name, "healthcheck", "test"),
            unknown=True,
        )
        return
    elif isinstance(image, str):
        base = image
    variant = _variant(base) if base else None
    if variant is None:
        return
    for tool in sorted(tools & _LACKING[variant]):
        if not re.search(rf"\b{tool}\b", installed):
            yield Hit(
                f"the healthcheck runs {tool}, which {base} does not have: the container never "
                "becomes healthy",
                ("services", name, "healthcheck", "test"),
            )


@service_rule(
    "HM-A03",
    Severity.MEDIUM,
    ("prod",),
    "A restart policy is set",
    "Set restart: unless-stopped (or deploy.restart_policy) so a crash or reboot recovers.",
    kinds=LONG_RUNNING,
)
def restart_policy(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    deploy = table(service, "deploy")
    if service.get("restart") in (None, "no") and not deploy.get("restart_policy"):
        yield Hit(
            "no restart policy: a crash or a reboot leaves it down", ("services", name, "restart")
        )


@service_rule(
    "HM-A04",
    Severity.MEDIUM,
    ("prod",),
    "Logs are rotated",
    "Set logging: {driver: json-file, options: {max-size: 10m, max-file: '3'}} (or driver: local).",
    kinds=LONG_RUNNING,
)
def log_rotation(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    logging = table(service, "logging")
    driver = logging.get("driver") or "json-file"
    options = table(logging, "options")
    if driver == "json-file" and not options.get("max-size"):
        yield Hit(
            "json-file logs without max-size grow until the disk is full",
            ("services", name, "logging"),
        )


SHARED_PORT = cross_rule(
    "HM-A02",
    Severity.MEDIUM,
    "Modes that share a port have distinct project names",
    "Give each mode x edition its own top-level name: so one mode's `down` never stops another.",
)


def published_ports(context: Context) -> set[str]:
    """Every host port the stack publishes, as `address:port`."""
    ports = set()
    for _, service in context.services(ALL_KINDS):
        for port in service.get("ports") or []:
            if isinstance(port, dict) and port.get("published"):
                ports.add(f"{port.get('host_ip') or '0.0.0.0'}:{port['published']}")  # noqa: S104
    return ports


MISSING_INPUT = cross_rule(
    "HM-A05",
    Severity.LOW,
    "The env files and required variables the files name are there",
    "Check where the env file or variable exists to lint its values too (in CI it may not).",
)


UNKNOWN_ROLE = cross_rule(
    "HM-A06",
    Severity.MEDIUM,
    "The evidence says which service is the app",
    "Name the app: --app NAME, or x-hotmode: {role: app} (or worker, job, companion, other).",
)


def role_hits(context: Context) -> Iterator[tuple[str | None, Hit]]:
    """HM-A06: the services that may be the app when the evidence does not decide, or the
    project when no service shows any sign of being the app; the app rules did not run there."""
    roles = context.roles
    candidates = app_candidates(roles)
    for name in candidates:
        others = ", ".join(c for c in candidates if c != name)
        yield (
            name,
            Hit(
                f"may be the app, as may {others}: {roles[name].reason.split(';')[0]}; "
                f"the app rules did not run on it; {FIX}",
                ("services", name),
                unknown=True,
            ),
        )
    if not candidates and not any(role.is_app for role in roles.values()):
        yield (
            None,
            Hit(
                "no service shows evidence of being the app (a Python server, a Python build "
                "or source, a shared build with workers): the app rules did not run; "
                f"if one is, {FIX}",
                unknown=True,
            ),
        )


# Values people leave in an env file until someone sets a real one.
_PLACEHOLDER = re.compile(
    r"^(change[-_ .]?(me|this|it)\w*|replace[-_ ]?me|secret|s3cr3t|password|passw(or)?d|pass|"
    r"admin|root|example|sample|dummy|test(ing)?|default|todo|fixme|x{3,}|\*+|placeholder|"
    r"your[-_ ].*|<[^>]*>|\{\{.*\}\}|(django-)?insecure.*|super[-_]?secret\w*|my[-_]?secret\w*|"
    r"12345\d*|qwerty|letmein)$",
    re.IGNORECASE,
)


@stack_rule(
    "HM-A07",
    Severity.HIGH,
    ("prod",),
    "Committed env files hold no placeholder secrets",
    "Keep real secrets out of git (a git-ignored env file or a secret); commit only .env.example.",
)
def env_file_placeholders(context: Context) -> Iterator[Hit]:
    prepared = context.prepared
    if prepared is None:
        return
    named: dict[Path, str | None] = {prepared.project_directory / ".env": None}
    for service, files in sorted(prepared.env_files.items()):
        for env_file in files:
            named.setdefault(env_file.path, service)
    for path in named:
        if not path.is_file():
            continue
        found = [
            (variable, value)
            for variable, value in read_env_values(path).items()
            if SECRET_NAME.search(variable) and _placeholder_like(variable, value.value)
        ]
        ignored = git_ignored(path)
        if not found or ignored:
            continue
        # Outside a repository nothing says whether the file is committed: the finding stands
        # (whoever deploys these files runs with it), without claiming what git does.
        why = "which is not git-ignored" if ignored is False else "beside no git repository"
        for variable, value in found:
            yield Hit(
                f"{variable}={value.value} is a placeholder secret in {path.name}, {why}: "
                "whoever deploys these files runs with it",
                location=value.location,
            )


def _placeholder_like(variable: str, value: str) -> bool:
    text = value.strip().strip("'\"")
    return bool(text) and (_PLACEHOLDER.match(text) is not None or text.lower() == variable.lower())


def git_ignored(path: Path) -> bool | None:
    """Whether git ignores a file; None outside a repository, or without git."""
    try:
        result = subprocess.run(  # noqa: S603 - a fixed command on a path of the project
            ["git", "check-ignore", "-q", path.name],  # noqa: S607 - git from PATH
            cwd=path.parent,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    # check-ignore: 0 ignored, 1 not ignored, 128 not a repository.
    return {0: True, 1: False}.get(result.returncode)
