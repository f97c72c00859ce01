"""Linting a stack without its secrets: env files and required variables are not needed.

A team's Compose files name env files that are git-ignored (`env_file: .env.dev`) and variables
that only CI or production sets (`${SECRET_KEY:?set it}`). Compose's `config` opens every env
file, even with `--no-env-resolution`, and copies its values into `environment`, and it stops at
the first required variable that is unset. So `prepare` hands Compose a copy of the stack's
files with every `env_file:` taken out (`copies`), merged from the original folder
(`--project-directory`, so every relative path means what it meant), with a placeholder supplied
for each required variable that is not set. What it took out is kept: the env files each
service names, where they are named, and, for those that exist, each value with the file and
line that sets it, so that rules attribute them to the env file and never to the Compose file as
a literal. A Compose file in the v1 format (services at the top level) is refused here, named as
what it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hotmode.audit.copies import Copier, services, walk
from hotmode.audit.model import Location
from hotmode.audit.sources import SourceFile, SourceSet, find_key
from hotmode.compose.engine import compose_environment
from hotmode.errors import ComposeError

# `${NAME:?message}` or `${NAME?message}`, not escaped as `$${...}`.
_REQUIRED = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?)\?[^}]*\}")
# `${NAME}` or `$NAME` with no default: empty when unset.
_PLAIN = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}|(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$")
# Keys whose value Compose parses as a number, a duration or a boolean: a placeholder there
# must parse too.
_NUMBER_KEYS = {
    "ports", "expose", "published", "target", "cpus", "cpu_count", "cpu_percent", "cpu_shares",
    "cpu_quota", "cpu_period", "mem_limit", "mem_reservation", "memswap_limit", "shm_size",
    "pids_limit", "replicas", "scale", "oom_score_adj", "retries", "memory", "size", "uid", "gid",
}  # fmt: skip
# Keys whose value has a shape (`src:dst:mode`, `host:container`) an empty part breaks.
_SHAPED_KEYS = {"volumes", "ports", "expose", "context", "env_file", "secrets", "configs"}
_DURATION_KEYS = {"interval", "timeout", "start_period", "start_interval", "stop_grace_period"}
_BOOLEAN_KEYS = {"read_only", "tty", "stdin_open", "privileged", "init", "disable", "attach"}
PLACEHOLDER = "unset"
_V1_KEYS = {"image", "build", "command", "links", "ports", "volumes", "environment"}


@dataclass(frozen=True)
class EnvFile:
    """An env file a service names: where it is, whether Compose requires it, who names it."""

    path: Path
    required: bool
    named_at: Location | None


@dataclass(frozen=True)
class EnvValue:
    """A variable an env file sets, and the line that sets it."""

    value: str
    location: Location


@dataclass(frozen=True)
class Unset:
    """A required variable (`${NAME:?}`) the check ran without, and the first place needing it."""

    name: str
    location: Location | None


@dataclass(frozen=True)
class Prepared:
    """What Compose merges instead of the stack's own files, and what was held back."""

    files: tuple[Path, ...]
    project_directory: Path
    environment: Mapping[str, str]
    env_files: Mapping[str, tuple[EnvFile, ...]]
    env_values: Mapping[str, Mapping[str, EnvValue]]
    unset: tuple[Unset, ...]
    # Each copy, and the user's file it stands in for.
    originals: Mapping[Path, Path]
    # Unset variables with no default where an empty value can break the file (`${PORT}` in
    # `ports:`, `${DATA_DIR}:/data`): if Compose rejects the files, the check runs again with
    # `retry` (a placeholder for every unset variable) and reports these.
    empty: tuple[Unset, ...] = ()
    retry: Mapping[str, str] = field(default_factory=dict)
    # What Compose interpolated with: the project's `.env`, the environment, the placeholders.
    variables: Mapping[str, str] = field(default_factory=dict)

    def interpolate(self, text: str) -> str:
        """`text` as Compose interpolates it with the same variables (see `interpolate`)."""
        return interpolate(text, self.variables)


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation of one value: `$NAME`, `${NAME}`, `${NAME:-default}`,
    `${NAME-default}`, `${NAME:+alt}`, `${NAME:?message}`, nested in defaults, `$$` for `$`.
    An unset variable with no default is empty, as in Compose."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$" or index + 1 >= len(text):
            out.append(char)
            index += 1
            continue
        after = text[index + 1]
        if after == "$":
            out.append("$")
            index += 2
        elif after == "{":
            end, depth = index + 2, 1
            while end < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            out.append(_expand(text[index + 2 : end - 1], variables))
            index = end
        else:
            match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[index + 1 :])
            if match is None:
                out.append(char)
                index += 1
            else:
                out.append(variables.get(match.group(0), ""))
                index += 1 + match.end()
    return "".join(out)


def _expand(body: str, variables: Mapping[str, str]) -> str:
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:?[-+?])?(.*)", body, re.DOTALL)
    if match is None:
        return ""
    name, operator, rest = match.groups()
    value = variables.get(name)
    if operator in (":-", "-"):
        use_default = value is None or (operator == ":-" and value == "")
        return interpolate(rest, variables) if use_default else str(value)
    if operator in (":+", "+"):
        use_alt = value is not None and (operator == "+" or value != "")
        return interpolate(rest, variables) if use_alt else ""
    return value or ""


def refuse_v1(source: SourceFile) -> None:
    """Raise if a file is in the v1 format, which Compose v2 no longer reads."""
    root = source.root
    if not isinstance(root, yaml.MappingNode) or find_key(root, "services") is not None:
        return
    keys = {str(k.value) for k, _ in root.value if isinstance(k, yaml.ScalarNode)}
    if "version" in keys:
        return
    for _, value in root.value:
        if isinstance(value, yaml.MappingNode):
            inner = {str(k.value) for k, _ in value.value if isinstance(k, yaml.ScalarNode)}
            if inner & _V1_KEYS:
                raise ComposeError(
                    f"{source.path}: a Compose file in the v1 format (services at the top level, "
                    "no `services:` key), which Compose v2 does not read; move the services "
                    "under `services:`"
                )


def _named_env_files(source: SourceFile, node: yaml.Node, folder: Path) -> list[EnvFile]:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    found = []
    for item in items:
        path: str | None = None
        required = True
        if isinstance(item, yaml.ScalarNode):
            path = str(item.value)
        elif isinstance(item, yaml.MappingNode):
            named = find_key(item, "path")
            path = str(named[1].value) if named and isinstance(named[1], yaml.ScalarNode) else None
            flag = find_key(item, "required")
            if flag and isinstance(flag[1], yaml.ScalarNode):
                required = str(flag[1].value).lower() not in {"false", "no", "0"}
        if path:
            line = item.start_mark.line + 1
            where = Path(os.path.normpath(folder / path))
            found.append(EnvFile(where, required, Location(source.path, line)))
    return found


def env_files(sources: SourceSet, folder: Path) -> dict[str, tuple[EnvFile, ...]]:
    """The env files each service names, as Compose merges them: later files add to earlier
    ones, `!reset` and `!override` start again."""
    merged: dict[str, list[EnvFile]] = {}
    for source in sources.files:
        for name, service in services(source.root):
            found = find_key(service, "env_file")
            if found is None:
                continue
            tag = found[1].tag or ""
            listed = [] if tag == "!reset" else _named_env_files(source, found[1], folder)
            current = [] if tag in {"!reset", "!override"} else merged.get(name, [])
            seen = {entry.path for entry in current}
            merged[name] = current + [entry for entry in listed if entry.path not in seen]
    return {name: tuple(files) for name, files in merged.items()}


def read_env_values(path: Path) -> dict[str, EnvValue]:
    """The `NAME=value` lines of an env file, each with its line; other lines are skipped."""
    values: dict[str, EnvValue] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return values
    for number, raw in enumerate(text.splitlines(), start=1):
        match = _ENV_LINE.match(raw)
        if match is None or raw.lstrip().startswith("#"):
            continue
        value = match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[match.group(1)] = EnvValue(value, Location(path, number))
    return values


def _placeholder(path: tuple[str, ...]) -> str:
    keys = set(path)
    if keys & _NUMBER_KEYS:
        return "1"
    if keys & _DURATION_KEYS:
        return "1s"
    if keys & _BOOLEAN_KEYS:
        return "false"
    return PLACEHOLDER


def _visible_environment(folder: Path) -> dict[str, str]:
    """What Compose interpolates with: the process environment over the project's `.env`."""
    dotenv = {name: v.value for name, v in read_env_values(folder / ".env").items()}
    return dotenv | compose_environment()


def _add(named: dict[str, tuple[EnvFile, ...]], service: str, files: tuple[EnvFile, ...]) -> None:
    # A pulled-in file's env files come first: the service's own override them.
    named[service] = files + tuple(f for f in named.get(service, ()) if f not in files)


def prepare(sources: SourceSet, workdir: Path) -> Prepared:
    """Write the stack's files, without env files, into `workdir` for Compose to merge."""
    for source in sources.files:
        refuse_v1(source)
    folder = sources.files[0].path.parent if sources.files else workdir
    visible = _visible_environment(folder)
    supplied: dict[str, str] = {}
    unset: dict[str, Unset] = {}

    empty: dict[str, Unset] = {}
    retry: dict[str, str] = {}

    def scan(root: yaml.Node, source: SourceFile) -> None:
        for node, path in walk(root):
            if not isinstance(node, yaml.ScalarNode):
                continue
            placeholder = _placeholder(path)
            for match in _PLAIN.finditer(str(node.value)):
                name = match.group(1) or match.group(2)
                if name in visible:
                    continue
                keys = set(path)
                # A bind mount's or a build's folder: a relative path, not a volume's name.
                shaped = "./unset" if keys & {"volumes", "context", "env_file"} else placeholder
                retry.setdefault(name, shaped)
                if placeholder != PLACEHOLDER or keys & _SHAPED_KEYS:
                    where = Location(source.path, node.start_mark.line + 1)
                    empty.setdefault(name, Unset(name, where))
            for match in _REQUIRED.finditer(str(node.value)):
                name, colon = match.group(1), match.group(2)
                value = visible.get(name)
                if value is not None and (value or not colon):
                    continue
                where = Location(source.path, node.start_mark.line + 1)
                unset.setdefault(name, Unset(name, where))
                if supplied.get(name) in (None, PLACEHOLDER):
                    supplied[name] = _placeholder(path)

    copier = Copier(workdir, scan)
    copies = tuple(copier.copy(source) for source in sources.files)
    named = env_files(sources, folder)
    for pulled in copier.referenced:
        found = env_files(SourceSet((pulled.source,)), pulled.source.path.parent)
        if pulled.extended_by is None:
            for service, files in found.items():
                _add(named, service, files)
        elif pulled.service in found:
            _add(named, pulled.extended_by, found[pulled.service])
    values: dict[str, dict[str, EnvValue]] = {}
    for service, files in named.items():
        merged: dict[str, EnvValue] = {}
        for env_file in files:
            if env_file.path.is_file():
                merged |= read_env_values(env_file.path)
        values[service] = merged
    return Prepared(
        files=copies,
        project_directory=folder,
        environment=supplied,
        env_files=named,
        env_values=values,
        unset=tuple(unset.values()),
        originals=copier.originals,
        empty=tuple(empty.values()),
        retry={**retry, **supplied},
        variables={**visible, **supplied},
    )


def restore_paths(message: str, prepared: Prepared) -> str:
    """A Compose message about the copies, naming the user's own files instead."""
    for copy, original in prepared.originals.items():
        message = message.replace(str(copy), str(original))
    return message
