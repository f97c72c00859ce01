"""Swarm secrets and configs: content-addressed names, and local files carried as configs.

A Swarm secret or config cannot change in place (`only updates to Labels are allowed`), so each
is named `<stack>_<key>_<digest of its content>`: a changed file is a new object, and rotating it
is an ordinary deploy that moves the services onto it. A bind mount of a local path exists on the
deploying machine only; a read-only one becomes one config per file, which Swarm ships to
whichever node runs the task. The names follow the stack, so two stacks never share one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hotmode.errors import UsageError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# A Swarm object's name is at most 64 characters.
_NAME_LIMIT = 64


def content_digest(path: Path) -> str:
    """The first 12 hex digits of the file's SHA-256: a new name for new content."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def object_name(stack: str, key: str, path: Path | None) -> str:
    """`<stack>_<key>_<digest>`, or `<stack>_<key>` when the file is not there to read."""
    base = f"{stack}_{key}"
    if path is None or not path.is_file():
        return base[:_NAME_LIMIT]
    digest = content_digest(path)
    return f"{base[: _NAME_LIMIT - len(digest) - 1]}_{digest}"


def secret_definitions(
    stack: str, secrets: Mapping[str, Any], notes: list[str]
) -> dict[str, dict[str, Any]]:
    """The stack file's `secrets:`: each file-backed secret under its content-addressed name."""
    out: dict[str, dict[str, Any]] = {}
    for key, secret in secrets.items():
        secret = secret or {}
        if secret.get("external"):
            out[str(key)] = {k: secret[k] for k in ("external", "name") if k in secret}
            continue
        if "file" not in secret:
            raise UsageError(f"secrets.{key}: Swarm secrets come from a file or are external")
        path = Path(str(secret["file"]))
        if not path.is_file():
            notes.append(f"secret {key}: {path} is absent; create it before `deploy --swarm`")
        out[str(key)] = {"file": str(path), "name": object_name(stack, str(key), path)}
    return out


def _config_key(service: str, target: str) -> str:
    """`<service>_<file name>`: the folder is in the target, not the name."""
    return f"{service}_{_UNSAFE.sub('_', target.rstrip('/').rsplit('/', 1)[-1]).lstrip('.')}"


def bind_configs(
    service: str, volume: Mapping[str, Any], where: str
) -> list[tuple[str, Path, str]]:
    """A read-only bind mount as (config key, local file, target) triples, one per file.

    A file gives one config; a folder gives one per regular file in it (the init-script
    folder's shape). A writable bind mount, a missing source or a nested folder is refused:
    none of them can reach another node.
    """
    source = Path(str(volume.get("source") or ""))
    target = str(volume.get("target") or "")
    if not volume.get("read_only"):
        raise UsageError(
            f"{where} binds {source} writable; another node has no such path: use a named "
            "volume, or make it read_only to ship it as a Swarm config"
        )
    if source.is_file():
        return [(_config_key(service, target), source, target)]
    if not source.is_dir():
        raise UsageError(f"{where} binds {source}, which does not exist; create it or drop it")
    files = sorted(source.iterdir())
    nested = [path.name for path in files if not path.is_file()]
    if nested:
        raise UsageError(
            f"{where} binds {source}, which holds the folder {nested[0]}; Swarm configs are "
            "files: flatten it"
        )
    return [
        (_config_key(service, f"{target}/{path.name}"), path, f"{target}/{path.name}")
        for path in files
    ]
