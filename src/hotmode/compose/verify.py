"""Proving that the running prod container is the commit: `hotmode verify`.

`verify` gathers what the engine and git say; `container_problems` and `file_problems` judge
them and are pure, so each rule is tested with plain documents. A problem is one line that says
what differs and what it should be; no problems means the container serves exactly HEAD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotmode import source
from hotmode.compose import docker, layout
from hotmode.compose.render import APP_DIR
from hotmode.config import Config
from hotmode.errors import StateError
from hotmode.modes import Selection

# Mounts the rendered prod service makes under the code folder, and nothing else may.
ALLOWED_MOUNTS = {f"{APP_DIR}/logs": "volume", f"{APP_DIR}/.env": "bind"}
_RELOADERS = ("--reload", "watchfiles", "hupper", "watchgod")
_ROOT_USERS = ("", "0", "root")

# Run inside the container by its own Python: the git blob id of every file under the code
# folder, so the host can compare them with the commit without copying anything out.
_HASH_FILES = f"""
import hashlib, os
root = {APP_DIR!r}
skip = {{os.path.join(root, "logs"), os.path.join(root, ".env")}}
for folder, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs if os.path.join(folder, d) not in skip)
    for name in sorted(files):
        path = os.path.join(folder, name)
        if path in skip or os.path.islink(path):
            continue
        with open(path, "rb") as handle:
            data = handle.read()
        blob = hashlib.sha1(b"blob %d\\0" % len(data) + data).hexdigest()
        print(blob, os.path.relpath(path, root))
"""


@dataclass(frozen=True)
class Expected:
    """What the repository says prod must be now."""

    revision: str | None
    digest: str | None
    config_hash: str


@dataclass(frozen=True)
class Verdict:
    """The running prod container (if any) and what is wrong with it."""

    running: docker.Running | None
    problems: list[str]


def container_problems(
    container: Mapping[str, Any], image_labels: Mapping[str, str], expected: Expected
) -> list[str]:
    """What in an inspection of the container (and its image labels) breaks prod's promise."""
    problems = []
    labels = container["Config"].get("Labels") or {}
    revision = image_labels.get(docker.REVISION_LABEL, "")
    if revision.endswith(source.DIRTY_SUFFIX):
        problems.append(f"the image was built from a dirty tree (revision {revision})")
    elif expected.revision is None:
        problems.append("the source is not in a git repository, so no commit can be proven")
    elif revision != expected.revision:
        problems.append(f"image revision {revision or 'missing'} is not HEAD {expected.revision}")
    digest = image_labels.get(docker.DIGEST_LABEL, "")
    if expected.digest is not None and digest != expected.digest:
        problems.append(
            f"image source digest {digest or 'missing'} is not the committed source's "
            f"{expected.digest}"
        )
    for mount in container.get("Mounts") or []:
        target = str(mount.get("Destination", ""))
        kind = str(mount.get("Type", ""))
        overlaps = (
            target == APP_DIR
            or target.startswith(f"{APP_DIR}/")
            or APP_DIR.startswith(f"{target.rstrip('/')}/")
        )
        allowed = ALLOWED_MOUNTS.get(target) == kind and (kind != "bind" or not mount.get("RW"))
        if overlaps and not allowed:
            where = mount.get("Source") or mount.get("Name") or "?"
            problems.append(f"a {kind} mount ({where}) is over the code at {target}")
    if not container["HostConfig"].get("ReadonlyRootfs"):
        problems.append("the root filesystem is writable (read_only is not set)")
    argv = [*(container["Config"].get("Entrypoint") or []), *(container["Config"].get("Cmd") or [])]
    reloading = [arg for arg in argv if any(word in arg for word in _RELOADERS)]
    if reloading:
        problems.append(f"the command reloads ({' '.join(argv)})")
    user = str(container["Config"].get("User") or "")
    if user.split(":")[0] in _ROOT_USERS:
        problems.append(f"the container runs as root (user {user or 'unset'})")
    running_hash = labels.get(docker.HASH_LABEL, "")
    if running_hash != expected.config_hash:
        problems.append(
            f"config hash {running_hash[:12] or 'missing'} is not what the files give now "
            f"({expected.config_hash[:12]}): the configuration changed since it started"
        )
    return problems


def file_problems(in_container: Mapping[str, str], committed: Mapping[str, str]) -> list[str]:
    """Files served that are not the commit's: extra, or with other content."""
    changed = sorted(p for p, blob in in_container.items() if committed.get(p, blob) != blob)
    extra = sorted(p for p in in_container if p not in committed)
    problems = []
    for kind, paths in (("differ from HEAD", changed), ("are not in HEAD", extra)):
        if paths:
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            problems.append(f"files in the container {kind}: {shown}")
    return problems


def _served_files(container: str) -> dict[str, str] | None:
    result = docker.docker("exec", container, "python", "-c", _HASH_FILES, check=False)
    if result.returncode != 0:
        return None
    pairs = (line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    return {path: blob for blob, path in pairs}


def verify(config: Config, overlays: Sequence[Path] = ()) -> Verdict:
    """Check the running prod container of the app against the repository, as it is now."""
    if not docker.engine_reachable():
        raise StateError(
            "no Docker engine answers (DOCKER_HOST, or the default socket); verify checks a "
            "running prod container: start the engine, then `hotmode up --prod`"
        )
    current = docker.running(config)
    if current is None:
        return Verdict(None, [f"no container of {config.name} is running; start prod with `up`"])
    if current.mode != "prod":
        return Verdict(current, [f"{current.describe()} is running; verify proves prod only"])
    selection = Selection("prod", current.edition, "running", "running")
    files = layout.compose_files(config, selection, tuple(overlays))
    expected = Expected(
        revision=source.revision(config.source),
        digest=source.source_digest(config.source),
        config_hash=docker.config_hash(config, selection, tuple(overlays)),
    )
    container = docker.inspect_one(current.container)
    image = docker.inspect_one(container["Image"])
    problems = container_problems(container, image["Config"].get("Labels") or {}, expected)
    if tuple(files) != current.config_files:
        names = ", ".join(path.name for path in current.config_files)
        problems.append(f"started with {names}; the files for this mode now differ")
    served = _served_files(current.container)
    committed = source.committed_blobs(config.source)
    if served is None:
        problems.append("could not read the code inside the container to compare it")
    elif committed is not None:
        problems.extend(file_problems(served, committed))
    return Verdict(current, problems)
