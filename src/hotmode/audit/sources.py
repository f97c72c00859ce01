"""Where each part of a merged configuration was written: the file and line that introduced it.

Compose merges a stack's files into one configuration and forgets where each value came from.
This module parses every file of the stack again, keeping line marks (`yaml.compose` nodes), and
answers "which file, which line" for a path in the merged configuration: the last file that
wrote the value, or, for a value nobody wrote, the first file that defines its parent (the base
file that introduced the service). List items are matched by what identifies them (a mount's
target, a port's container port), because Compose reorders and normalises lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hotmode.audit.model import Location
from hotmode.errors import ComposeError

Segment = str | int
_INTERPOLATION = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
# Walking stops after this many nodes: aliases can make a small file a huge tree.
_MAX_NODES = 200_000


@dataclass(frozen=True)
class SourceFile:
    """One Compose file of a stack: its text and its node tree with line marks."""

    path: Path
    text: str
    root: yaml.Node | None

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def scalar(self, segments: Sequence[str]) -> str | None:
        """The text of a scalar this file writes at a mapping path, if it writes one."""
        node = self.root
        for segment in segments:
            found = find_key(node, segment) if isinstance(node, yaml.MappingNode) else None
            if found is None:
                return None
            node = found[1]
        return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def read_source(path: Path) -> SourceFile:
    """Read and parse one Compose file; any problem is a one-line `ComposeError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ComposeError(f"{path}: no such Compose file; create it or fix the -f list") from None
    except IsADirectoryError:
        raise ComposeError(f"{path}: is a folder, not a Compose file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ComposeError(f"{path}: cannot read ({exc})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid"
        raise ComposeError(f"{where}: malformed YAML: {problem}; fix the file") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise ComposeError(f"{path}: malformed YAML: {first}; fix the file") from None
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise ComposeError(f"{path}: not a Compose file: the top level must be a mapping")
    return SourceFile(path, text, root)


def _entries(node: yaml.MappingNode, budget: list[int]) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    """A mapping's entries, with `<<` merge keys expanded before the explicit keys."""
    explicit = []
    for key, value in node.value:
        budget[0] -= 1
        if budget[0] < 0:
            return
        if isinstance(key, yaml.ScalarNode) and key.value == "<<":
            merged = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for item in merged:
                if isinstance(item, yaml.MappingNode):
                    yield from _entries(item, budget)
        else:
            explicit.append((key, value))
    yield from explicit


def entries(node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    """A mapping's entries as Compose reads them: `<<` merge keys expanded, then its own."""
    return _entries(node, [_MAX_NODES])


def find_key(node: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The last entry of a mapping named `name` (merge keys included), or None."""
    found = None
    for key, value in _entries(node, [_MAX_NODES]):
        if isinstance(key, yaml.ScalarNode) and key.value == name:
            found = (key, value)
    return found


def _plain(text: str) -> str:
    return _INTERPOLATION.sub("$", text)


def _short_target(text: str, port: bool) -> str:
    """The container side of a short `src:dst[:mode]` mount, or of a `[ip:]pub:target` port."""
    parts = _plain(text).split(":")
    if len(parts) >= 3 and parts[-1] in {"ro", "rw", "z", "Z", "cached", "delegated", "consistent"}:
        parts = parts[:-1]
    if len(parts) >= 2 and "," in parts[-1] and "=" in parts[-1]:
        parts = parts[:-1]  # `:ro,z` style options
    target = parts[-1] if parts else text
    return target.split("/")[0] if port else target


def merged_signature(parent: Segment, value: Any) -> str | None:
    """What identifies a merged list item, comparable to `node_signature`."""
    if parent in ("volumes", "ports") and isinstance(value, dict):
        target = value.get("target")
        return None if target is None else str(target).rstrip("/")
    if parent == "tmpfs" and isinstance(value, str):
        return value.split(":")[0].rstrip("/")
    if isinstance(value, str | int | float | bool):
        return str(value)
    return None


def node_signature(parent: Segment, node: yaml.Node) -> str | None:
    """What identifies a list item as written in one file."""
    if parent in ("volumes", "ports"):
        if isinstance(node, yaml.ScalarNode):
            return _short_target(node.value, parent == "ports").rstrip("/")
        if isinstance(node, yaml.MappingNode):
            found = find_key(node, "target")
            if found and isinstance(found[1], yaml.ScalarNode):
                return str(found[1].value).rstrip("/")
        return None
    if isinstance(node, yaml.ScalarNode):
        if parent == "tmpfs":
            return str(node.value).split(":")[0].rstrip("/")
        return str(node.value)
    return None


def value_at(document: Any, segments: Sequence[Segment]) -> Any:
    """The value at a path of the merged configuration, or None."""
    current = document
    for segment in segments:
        if isinstance(segment, int) and isinstance(current, list) and segment < len(current):
            current = current[segment]
        elif isinstance(segment, str) and isinstance(current, dict):
            current = current.get(segment)
        else:
            return None
    return current


def _descend(
    node: yaml.Node, segments: Sequence[Segment], merged: Any
) -> tuple[int, int | None, bool]:
    """How deep `segments` goes in one file: (depth, deepest line, stopped at a list item)."""
    line: int | None = None
    current = node
    for index, segment in enumerate(segments):
        parent = segments[index - 1] if index else ""
        nxt: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode) and isinstance(segment, str):
            found = find_key(current, segment)
            if found:
                line, nxt = found[0].start_mark.line + 1, found[1]
        elif isinstance(current, yaml.SequenceNode):
            if isinstance(segment, int):
                wanted = merged_signature(parent, value_at(merged, segments[: index + 1]))
                matches = [i for i in current.value if node_signature(parent, i) == wanted]
            else:  # `KEY=value` list form of a mapping such as `environment`
                matches = [
                    i
                    for i in current.value
                    if isinstance(i, yaml.ScalarNode)
                    and (i.value == segment or i.value.startswith(f"{segment}="))
                ]
            if not matches:
                return index, line, isinstance(segment, int)
            line, nxt = matches[-1].start_mark.line + 1, matches[-1]
        if nxt is None:
            return index, line, False
        current = nxt
    return len(segments), line, False


@dataclass(frozen=True)
class SourceSet:
    """The files of one stack, in `-f` order, able to locate paths of its merged configuration."""

    files: tuple[SourceFile, ...]

    def locate(self, segments: Sequence[Segment], merged: Any) -> Location | None:
        """The file and line that introduced the value at `segments` of `merged`."""
        if not self.files:
            return None
        results: list[tuple[int, int | None, bool]] = []
        for source in self.files:
            if source.root is None:
                results.append((0, None, False))
            else:
                results.append(_descend(source.root, segments, merged))
        deepest = max(depth for depth, _, _ in results)
        candidates = [i for i, (depth, _, _) in enumerate(results) if depth == deepest]
        # A value written outright, or a list item nobody's text matched, was set by the last
        # file that writes there; a key nobody wrote is missing from the file that introduced
        # its parent, the first one.
        complete = deepest == len(segments) or any(results[i][2] for i in candidates)
        chosen = candidates[-1] if complete else candidates[0]
        return Location(self.files[chosen].path, results[chosen][1])

    def service_at(self, location: Location | None) -> str | None:
        """The service whose block in its file holds a location's line, if one does."""
        if location is None or location.line is None:
            return None
        for source in self.files:
            if source.path != location.path or not isinstance(source.root, yaml.MappingNode):
                continue
            found = find_key(source.root, "services")
            if found is None or not isinstance(found[1], yaml.MappingNode):
                continue
            for key, value in found[1].value:
                first, last = key.start_mark.line + 1, value.end_mark.line + 1
                if first <= location.line <= last and isinstance(key, yaml.ScalarNode):
                    return str(key.value)
        return None

    def locate_text(self, pattern: re.Pattern[str]) -> Iterator[tuple[Location, re.Match[str]]]:
        """Every match of `pattern` in the files' own text, line by line, with its location."""
        for source in self.files:
            for number, line in enumerate(source.lines, start=1):
                if line.lstrip().startswith("#"):
                    continue
                for match in pattern.finditer(line):
                    yield Location(source.path, number), match


def read_sources(files: Sequence[Path]) -> SourceSet:
    """Parse every file of a stack, in order."""
    return SourceSet(tuple(read_source(path) for path in files))


def written_value(sources: SourceSet, service: str, variable: str) -> str | None:
    """The text the last file to set a service's `environment` variable wrote for it, in the
    mapping form (`NAME: value`) or the list form (`- NAME=value`)."""
    for source in reversed(sources.files):
        mapped = source.scalar(("services", service, "environment", variable))
        if mapped is not None:
            return mapped
        node = source.root
        for segment in ("services", service, "environment"):
            found = find_key(node, segment) if isinstance(node, yaml.MappingNode) else None
            node = found[1] if found else None
        if isinstance(node, yaml.SequenceNode):
            for item in reversed(node.value):
                text = str(item.value) if isinstance(item, yaml.ScalarNode) else ""
                if text.startswith(f"{variable}="):
                    return text.split("=", 1)[1]
    return None
