"""The copy of a stack's files that Compose merges for a check: the same, without `env_file:`.

Compose opens every env file it is shown, so the check hands it copies with the `env_file:`
entries taken out (`inputs` keeps what they named). The `-f` files' relative paths are resolved
against the project directory (`--project-directory`, the original folder), so they need no
change. A file they pull in (`extends: {file: ...}`, `include:`) resolves its paths against its
own folder: its copy is written with those paths made absolute, and the reference points at the
copy, so an env file named there is taken out too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hotmode.audit.sources import SourceFile, entries, find_key, read_source

# Called with each file's node tree before it is written (to find required variables).
Scan = Callable[[yaml.Node, SourceFile], None]


@dataclass(frozen=True)
class Referenced:
    """A file pulled in by another: by `extends` (from `service` of the extending service
    `extended_by`), or by `include` (both None)."""

    source: SourceFile
    extended_by: str | None = None
    service: str | None = None


def walk(
    node: yaml.Node, path: tuple[str, ...] = ()
) -> Iterator[tuple[yaml.Node, tuple[str, ...]]]:
    """Every node with the mapping keys above it; each shared (aliased) node once."""
    seen: set[int] = set()
    pending = [(node, path)]
    while pending:
        current, where = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current, where
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else ""
                pending.append((value, (*where, name)))
        elif isinstance(current, yaml.SequenceNode):
            pending += [(item, where) for item in current.value]


def services(root: yaml.Node | None) -> Iterator[tuple[str, yaml.MappingNode]]:
    """The service mappings of a file's node tree, by name."""
    if not isinstance(root, yaml.MappingNode):
        return
    found = find_key(root, "services")
    if found is None or not isinstance(found[1], yaml.MappingNode):
        return
    for key, value in entries(found[1]):
        if isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.MappingNode):
            yield str(key.value), value


def _strip_env_files(root: yaml.Node) -> None:
    for node, path in list(walk(root)):
        if isinstance(node, yaml.MappingNode) and "include" not in path:
            node.value = [
                (k, v)
                for k, v in node.value
                if not (isinstance(k, yaml.ScalarNode) and k.value == "env_file")
            ]


def _relative(value: str) -> bool:
    return value.startswith(".") and "://" not in value


def _absolute(node: yaml.Node | None, folder: Path) -> None:
    if isinstance(node, yaml.ScalarNode) and _relative(str(node.value)):
        node.value = str((folder / str(node.value)).resolve())


def _mount_source(node: yaml.Node, folder: Path) -> None:
    if isinstance(node, yaml.ScalarNode):
        source, sep, rest = str(node.value).partition(":")
        if sep and _relative(source):
            node.value = f"{(folder / source).resolve()}:{rest}"
    elif isinstance(node, yaml.MappingNode):
        found = find_key(node, "source")
        _absolute(found[1] if found else None, folder)


def _absolute_paths(root: yaml.Node, folder: Path) -> None:
    """Make a pulled-in file's relative paths absolute: build contexts, bind mounts, the files
    of secrets and configs."""
    for _, service in services(root):
        build = find_key(service, "build")
        if build and isinstance(build[1], yaml.MappingNode):
            context = find_key(build[1], "context")
            _absolute(context[1] if context else None, folder)
        elif build:
            _absolute(build[1], folder)
        volumes = find_key(service, "volumes")
        if volumes and isinstance(volumes[1], yaml.SequenceNode):
            for item in volumes[1].value:
                _mount_source(item, folder)
    if isinstance(root, yaml.MappingNode):
        for section in ("secrets", "configs"):
            found = find_key(root, section)
            if found and isinstance(found[1], yaml.MappingNode):
                for _, item in entries(found[1]):
                    if isinstance(item, yaml.MappingNode):
                        named = find_key(item, "file")
                        _absolute(named[1] if named else None, folder)


@dataclass
class Copier:
    """Writes copies into `workdir`, each file once, following `extends` and `include`."""

    workdir: Path
    scan: Scan
    referenced: list[Referenced] = field(default_factory=list)
    _copies: dict[Path, Path] = field(default_factory=dict)

    @property
    def originals(self) -> dict[Path, Path]:
        """Each copy written, and the file it stands in for."""
        return {copy: original for original, copy in self._copies.items()}

    def _target(self, source: SourceFile) -> Path:
        folder = self.workdir / str(len(self._copies))
        folder.mkdir(parents=True, exist_ok=True)
        return folder / source.path.name

    def copy(self, source: SourceFile, pulled_in: bool = False) -> Path:
        """The copy of one file (a `-f` file, or one `pulled_in` by another)."""
        if source.path in self._copies:
            return self._copies[source.path]
        target = self._target(source)
        self._copies[source.path] = target
        root = yaml.compose(source.text, Loader=yaml.SafeLoader) if source.root else None
        if root is None:
            target.write_text(source.text, encoding="utf-8")
            return target
        self.scan(root, source)
        folder = source.path.parent
        for name, service in services(root):
            self._follow_extends(name, service, folder)
        self._follow_includes(root, folder)
        _strip_env_files(root)
        if pulled_in:
            _absolute_paths(root, folder)
        target.write_text(yaml.serialize(root, Dumper=yaml.SafeDumper), encoding="utf-8")
        return target

    def _pull(self, node: yaml.Node | None, folder: Path) -> SourceFile | None:
        """Copy the file a scalar names (relative to `folder`) and point the scalar at it."""
        if not isinstance(node, yaml.ScalarNode) or not node.value or "$" in str(node.value):
            return None
        path = folder / str(node.value)
        source = read_source(path)
        node.value = str(self.copy(source, pulled_in=True))
        return source

    def _follow_extends(self, name: str, service: yaml.MappingNode, folder: Path) -> None:
        extends = find_key(service, "extends")
        if extends is None or not isinstance(extends[1], yaml.MappingNode):
            return
        named = find_key(extends[1], "file")
        base = find_key(extends[1], "service")
        pulled = self._pull(named[1] if named else None, folder)
        if pulled is not None and base and isinstance(base[1], yaml.ScalarNode):
            self.referenced.append(Referenced(pulled, name, str(base[1].value)))

    def _follow_includes(self, root: yaml.Node, folder: Path) -> None:
        found = find_key(root, "include") if isinstance(root, yaml.MappingNode) else None
        if found is None or not isinstance(found[1], yaml.SequenceNode):
            return
        for item in found[1].value:
            paths: list[yaml.Node] = [item]
            if isinstance(item, yaml.MappingNode):
                named = find_key(item, "path")
                value = named[1] if named else None
                paths = (
                    value.value
                    if isinstance(value, yaml.SequenceNode)
                    else [value]
                    if value
                    else []
                )
            for node in paths:
                pulled = self._pull(node, folder)
                if pulled is not None:
                    self.referenced.append(Referenced(pulled))
