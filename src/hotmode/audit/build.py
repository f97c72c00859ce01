"""What a service's build makes: the Dockerfile stages it runs through and its `.dockerignore`.

Some mode rules are about the image rather than the Compose file: who the process runs as, which
labels the build sets, what the base image ships, whether `.env` files reach the build context.
The Dockerfile is parsed by BuildKit's own parser (the `dockerfile` package), so continuations,
heredocs and the exec form read as Docker reads them; this module keeps only the questions on
top (stages, `ARG`, `USER`, `LABEL`, `VOLUME`, `RUN`, the command) and reads `.dockerignore`. It
never builds anything.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import dockerfile

_ARG_REF = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-+]([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)


@dataclass
class Stage:
    """One `FROM ... [AS name]` stage and the instructions under it."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: the global `ARG` defaults and the stages, in order."""

    path: Path
    args: Mapping[str, str]
    stages: tuple[Stage, ...]

    def chain(self, target: str | None) -> list[Stage]:
        """The stages an image of `target` (default: the last) is built through, target first."""
        if not self.stages:
            return []
        by_name = {stage.name: stage for stage in self.stages if stage.name}
        stage = by_name.get(target) if target else self.stages[-1]
        chain: list[Stage] = []
        while stage is not None and stage not in chain:
            chain.append(stage)
            stage = by_name.get(stage.base)
        return chain

    def user(self, target: str | None) -> str | None:
        """The user the image's process runs as, if any stage of its chain says."""
        for stage in self.chain(target):
            users = [args for instruction, args in stage.instructions if instruction == "USER"]
            if users:
                return users[-1].strip()
        return None

    def labels(self, target: str | None) -> set[str]:
        """The label keys a build of `target` sets."""
        keys: set[str] = set()
        for stage in self.chain(target):
            for instruction, args in stage.instructions:
                if instruction == "LABEL":
                    keys.update(match.group(1) for match in _LABEL_KEY.finditer(args))
        return keys

    def base_image(self, target: str | None, build_args: Mapping[str, Any]) -> str | None:
        """The image the chain starts from, with `ARG` defaults and build args substituted."""
        chain = self.chain(target)
        if not chain:
            return None
        values = {**self.args, **{k: str(v) for k, v in build_args.items() if v is not None}}
        return _substitute(chain[-1].base, values)

    def command(self, target: str | None) -> str:
        """What the image runs: its last ENTRYPOINT and CMD, as one command line."""
        found: dict[str, str] = {}
        for stage in reversed(self.chain(target)):
            for instruction, args in stage.instructions:
                if instruction in {"ENTRYPOINT", "CMD"}:
                    found[instruction] = _exec_form(args)
        return " ".join(found[key] for key in ("ENTRYPOINT", "CMD") if key in found)

    def volumes(self, target: str | None) -> list[str]:
        """The folders the image declares as `VOLUME`s."""
        found: list[str] = []
        for stage in self.chain(target):
            for instruction, args in stage.instructions:
                if instruction == "VOLUME":
                    try:
                        parsed = json.loads(args)
                    except ValueError:
                        parsed = args.split()
                    found += [str(item) for item in parsed] if isinstance(parsed, list) else []
        return found

    def copies(self, target: str | None) -> list[Copy]:
        """What the chain copies from the build context (`COPY`/`ADD` without `--from`), in
        build order, each with the working directory it was copied in and its values of `ARG`
        and `ENV` substituted."""
        found: list[Copy] = []
        values = dict(self.args)
        for stage in reversed(self.chain(target)):
            workdir = "/"
            for instruction, args in stage.instructions:
                if instruction in {"ARG", "ENV"}:
                    values.update(_assignments(args))
                elif instruction == "WORKDIR":
                    workdir = str(PurePosixPath(workdir, _substitute(args.strip(), values)))
                elif instruction in {"COPY", "ADD"}:
                    copy = _copy(_substitute(args, values), workdir)
                    if copy is not None:
                        found.append(copy)
        return found

    def runs(self, target: str | None) -> str:
        """The text of every `RUN` of the chain, for looking up what the build installs."""
        return "\n".join(
            args
            for stage in self.chain(target)
            for instruction, args in stage.instructions
            if instruction == "RUN"
        )


@dataclass(frozen=True)
class Copy:
    """One `COPY`/`ADD` from the build context: its sources (relative to the context) and
    where they land in the image (absolute; a folder when it ends in `/` or copies several)."""

    sources: tuple[str, ...]
    destination: str

    def source_of(self, path: str) -> str | None:
        """The context path that lands at `path` in the image through this copy, if one does."""
        target = PurePosixPath(path)
        # POSIX keeps a leading `//` apart from `/` (`COPY a b /` is written `//` here).
        destination = PurePosixPath(re.sub(r"^/+", "/", self.destination))
        folder = self.destination.endswith("/") or len(self.sources) > 1
        sources = [s for s in self.sources if "*" not in s and "?" not in s]
        if not folder and target == destination and sources:
            return sources[0]
        # A file copied into a folder (by its name, first: `COPY a.sh b.sh /` puts b.sh at
        # /b.sh, not a's content), or a folder's content copied over one.
        for source in sources:
            if target.parent == destination and PurePosixPath(source).name == target.name:
                return source
        for source in sources:
            if destination in target.parents:
                return str(PurePosixPath(source, target.relative_to(destination)))
        return None


def _assignments(args: str) -> dict[str, str]:
    """`ARG A=1 B`, `ENV A=1 B=2` or `ENV A 1` as values (an `ARG` without one sets none)."""
    try:
        parts = shlex.split(args)
    except ValueError:
        parts = args.split()
    if len(parts) >= 2 and "=" not in parts[0]:
        return {parts[0]: " ".join(parts[1:])}
    return dict(part.split("=", 1) for part in parts if "=" in part)


def _copy(args: str, workdir: str) -> Copy | None:
    flags = re.findall(r"(?:^|\s)(--\S+)", args.split("[", 1)[0])
    operands = re.sub(r"(?:^|\s)--\S+", " ", args, count=len(flags)).strip()
    try:
        parsed = json.loads(operands)
        parts = [str(p) for p in parsed] if isinstance(parsed, list) else shlex.split(operands)
    except ValueError:
        try:
            parts = shlex.split(operands)
        except ValueError:
            return None
    if any(f.startswith("--from") for f in flags) or len(parts) < 2:
        return None
    *sources, destination = parts
    if "://" in " ".join(sources):
        return None
    slash = destination.endswith("/") or destination in {".", "./"}
    absolute = str(PurePosixPath(workdir, destination)) + ("/" if slash else "")
    return Copy(tuple(str(PurePosixPath(source)) for source in sources), absolute)


_LABEL_KEY = re.compile(r"""(?:^|\s)["']?([A-Za-z0-9_.\-/]+)["']?\s*=""")


def _exec_form(args: str) -> str:
    """`["a", "b c"]` (exec form) as a shell-quoted line; the shell form as written."""
    try:
        parsed = json.loads(args)
    except ValueError:
        return args
    if isinstance(parsed, list):
        return shlex.join(str(part) for part in parsed)
    return args


def _substitute(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        return values.get(name) or match.group(2) or ""

    return _ARG_REF.sub(replace, text)


def _instruction_text(command: dockerfile.Command) -> str:
    """An instruction's arguments as written: the exec form as JSON, the rest joined."""
    if command.cmd.upper() in {"COPY", "ADD"} and command.flags:
        # `--from=stage` decides where a copy comes from: keep the flags before the operands.
        operands = json.dumps(list(command.value)) if command.json else " ".join(command.value)
        return f"{' '.join(command.flags)} {operands}"
    if command.json:
        return json.dumps(list(command.value))
    if command.cmd.upper() == "LABEL":
        # The parser gives a label's keys and values in turn: `a`, `1`, `b`, `2`.
        pairs = zip(command.value[::2], command.value[1::2], strict=False)
        return " ".join(f"{key}={value}" for key, value in pairs)
    return " ".join(command.value)


def parse_dockerfile(path: Path, text: str) -> Dockerfile:
    """Parse a Dockerfile with BuildKit's own parser (the `dockerfile` package): stages, global
    `ARG` defaults, and each instruction's arguments, continuations and heredocs resolved."""
    try:
        parsed = dockerfile.parse_string(text)
    except dockerfile.GoParseError:
        return Dockerfile(path, {}, ())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for command in parsed:
        instruction = command.cmd.upper()
        if instruction == "FROM":
            words = list(command.value)
            if not words:
                continue
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            if instruction == "ARG":
                for item in command.value:
                    name, _, default = item.partition("=")
                    args[name.strip()] = default.strip().strip("\"'")
        else:
            stages[-1].instructions.append((instruction, _instruction_text(command)))
    return Dockerfile(path, args, tuple(stages))


def _local_context(build: Mapping[str, Any]) -> Path | None:
    context = build.get("context")
    if not isinstance(context, str) or "://" in context or context.startswith("git@"):
        return None
    path = Path(context)
    return path if path.is_absolute() and path.is_dir() else None


def read_dockerfile(build: Mapping[str, Any]) -> Dockerfile | None:
    """The Dockerfile a merged `build:` section uses, if it is a local, readable file."""
    inline = build.get("dockerfile_inline")
    if isinstance(inline, str):
        return parse_dockerfile(Path("<dockerfile_inline>"), inline)
    context = _local_context(build)
    if context is None:
        return None
    path = context / str(build.get("dockerfile") or "Dockerfile")
    try:
        return parse_dockerfile(path, path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def unread(build: Mapping[str, Any]) -> str:
    """Why `read_dockerfile` found no Dockerfile for a `build:` section, as a reason to show."""
    context = build.get("context")
    if not isinstance(context, str) or "://" in context or context.startswith("git@"):
        return f"the build context {context} is remote, not on this machine"
    folder = Path(context)
    if not folder.is_dir():
        return f"the build context {context} is not here"
    path = folder / str(build.get("dockerfile") or "Dockerfile")
    return f"{path} is not here" if not path.is_file() else f"{path} cannot be read"


def ignore_file(build: Mapping[str, Any]) -> Path | None:
    """The ignore file a build honours: `<Dockerfile>.dockerignore`, else the context's."""
    context = _local_context(build)
    if context is None:
        return None
    dockerfile = context / str(build.get("dockerfile") or "Dockerfile")
    beside = dockerfile.with_name(dockerfile.name + ".dockerignore")
    return beside if beside.is_file() else context / ".dockerignore"


def is_ignored(patterns: list[str], name: str) -> bool:
    """Whether `.dockerignore` patterns keep `name` (a path in the context) out; last match wins."""
    ignored = False
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip().lstrip("/")
        candidates = {pattern, pattern.removeprefix("**/")}
        if any(
            fnmatch.fnmatchcase(name, p) or name.startswith(p.rstrip("/") + "/") for p in candidates
        ):
            ignored = not negate
    return ignored
