"""Dev's mode rules: the source is mounted and reloads, and nothing is rebuilt or reinstalled.

Dev must mount the source and reload on change, must not overwrite the prod image's tag (or a
public base image's tag) with its own build, must not install dependencies every time it starts,
and must keep the source mount free of nested mounts and of `__pycache__` volume lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import yaml

from hotmode.audit.commands import reloading, server, words, worker
from hotmode.audit.model import Severity
from hotmode.audit.rules import (
    CODE,
    CODE_TARGETS,
    Context,
    Hit,
    command_text,
    inside,
    mounts,
    reload_in,
    service_rule,
    source_mounts,
    split_image,
    table,
)
from hotmode.audit.scripts import resolve
from hotmode.audit.sources import SourceFile, find_key

DEV = ("dev",)
# Official images people name directly; a local build tagged with one of these shadows it.
PUBLIC_BASES = {
    "python",
    "debian",
    "ubuntu",
    "alpine",
    "node",
    "busybox",
    "nginx",
    "golang",
    "rust",
    "postgres",
    "redis",
    "mysql",
    "mariadb",
    "httpd",
    "ruby",
    "php",
    "openjdk",
    "eclipse-temurin",
    "pypy",
    "amazonlinux",
    "fedora",
    "centos",
    "rockylinux",
    "almalinux",
}
_INSTALL = re.compile(
    r"\b(apt-get|apt|apk|yum|dnf|microdnf|zypper)\s+(-\S+\s+)*(install|add)\b"
    r"|\bpip3?\s+install\b|\bpython3?\s+-m\s+pip\s+install\b|\bpoetry\s+install\b"
    r"|\buv\s+(pip\s+install|sync)\b|\bpipenv\s+install\b|\bnpm\s+(ci|install)\b"
)


def _is_pycache(target: str) -> bool:
    return PurePosixPath(target).name == "__pycache__"


@service_rule(
    "HM-D01",
    Severity.MEDIUM,
    DEV,
    "Dev mounts the source and reloads on change",
    "Bind-mount the source folder and run the server with --reload (hotmode run APP --reload).",
)
def mounted_and_reloading(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    found, unsure = source_mounts(context, service)
    if unsure and not found:
        mount, why = unsure[0]
        yield Hit(why, ("services", name, "volumes", mount.index), unknown=True)
    elif not found:
        yield Hit("the source is not mounted: edits need a rebuild", ("services", name, "volumes"))
    ask = "check it reloads on change"
    hit = reload_in(context, name, service, ask)
    if hit is not None:
        if hit.unknown:
            yield hit
        return
    hidden = unseen_reload(context, name, service, ask)
    if hidden is not None:
        yield hidden
        return
    seen = context.command(name, service)
    where = seen[1] if seen else "command"
    read = [s.shown for s in context.scripts(name, service) if s.ends]
    by = f" ({', '.join(read)} starts it)" if read else ""
    yield Hit(f"the server does not reload on change{by}", ("services", name, where))


def unseen_reload(context: Context, name: str, service: dict[str, Any], ask: str) -> Hit | None:
    """Why whether a service reloads cannot be seen, as an unknown, or None when its command
    shows a Python server (or worker) and everything that could turn reloading on is here.

    The reload rules know a reloader only when they see it: a command from an image that is not
    here, a script (`./bin/start.sh`, an entrypoint's `dev_server`), or, for `flask run`, an env
    file that is not here (FLASK_DEBUG) hide it."""
    seen = context.command(name, service)
    if seen is None:
        why = f"the command comes from the image; {context.missing(name, service)}"
        return Hit(f"{why}: {ask}", ("services", name), unknown=True)
    argv, where = seen
    path: tuple[str, ...] = ("services", name, where if where != "Dockerfile" else "build")
    if not argv:
        return Hit(f"no command is set, so the image decides: {ask}", path, unknown=True)
    # A script the build copies in (`/start`) is read: the server it starts is seen.
    argv = resolve(argv, context.build(service), service)[0]
    if server(argv) is None and worker(argv) is None:
        shown = " ".join(argv)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return Hit(
            f"cannot see the command: the {where} runs {shown!r}, which may start a server "
            f"that reloads: {ask}",
            path,
            unknown=True,
        )
    # Flask reloads when FLASK_DEBUG says so, which teams keep in a git-ignored env file.
    missing = missing_env_files(context, name) if server(argv) == "flask run" else []
    if missing:
        return Hit(
            f"its env file {missing[0]} is not here, and it may turn reloading on: {ask}",
            ("services", name, "env_file"),
            unknown=True,
        )
    return None


def missing_env_files(context: Context, name: str) -> list[str]:
    """The env files a service names that are not here."""
    if context.prepared is None:
        return []
    files = context.prepared.env_files.get(name, ())
    return [f.path.name for f in files if f.required and not f.path.is_file()]


@service_rule(
    "HM-D02",
    Severity.HIGH,
    DEV,
    "The dev image has its own tag",
    "Give the dev build its own image: tag (e.g. app:dev), never prod's or a base image's.",
    kinds=CODE,
)
def own_image_tag(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    image = service.get("image")
    if not isinstance(image, str) or "build" not in service:
        return
    prod = {context.stack.prod_image} if context.stack.prod_image else set()
    files = context.sources.files
    if len(files) > 1 and not _dev_already(files[0], name):
        # The base file is prod's: the image tag it writes is prod's tag, once its variables
        # are resolved as Compose resolved the merged one (`${IMAGE:-org/app}:${TAG:-latest}`).
        # A base file that already mounts the source or reloads is dev's own: no prod here.
        written = files[0].scalar(("services", name, "image"))
        if written and context.prepared is not None:
            written = context.prepared.interpolate(written)
        if written:
            prod.add(written)
    repository, _ = split_image(image)
    dockerfile = context.dockerfile(name, service)
    build = table(service, "build")
    base_image = (
        dockerfile.base_image(build.get("target"), build.get("args") or {}) if dockerfile else None
    )
    path = ("services", name, "image")
    if image in prod:
        yield Hit(f"dev builds into prod's tag {image}: a dev build replaces the prod image", path)
    elif repository in PUBLIC_BASES or (
        base_image and split_image(base_image) == split_image(image)
    ):
        yield Hit(f"the dev build is tagged {image}: it overwrites that public image locally", path)


def _dev_already(base: SourceFile, name: str) -> bool:
    """Whether a base file's service is a dev one already: it runs a reloader, or bind-mounts
    a relative folder writable over where code lives (`.:/app`)."""
    command = base.scalar(("services", name, "command")) or ""
    if reloading(words(command)):
        return True
    node = base.root
    for segment in ("services", name, "volumes"):
        found = find_key(node, segment) if isinstance(node, yaml.MappingNode) else None
        node = found[1] if found else None
    if not isinstance(node, yaml.SequenceNode):
        return False
    for item in node.value:
        text = str(item.value) if isinstance(item, yaml.ScalarNode) else ""
        source, _, rest = text.partition(":")
        target, _, mode = rest.partition(":")
        if source.startswith(".") and target.rstrip("/") in CODE_TARGETS and "ro" not in mode:
            return True
    return False


def _at_start(service: dict[str, Any], key: str) -> str:
    """The command as it runs at start: `hotmode run --install CMD` runs CMD only when a
    dependency file changes, so that argument is not part of the start."""
    value = service.get(key)
    parts = (
        [str(p) for p in value] if isinstance(value, list) else words(command_text(service, key))
    )
    if "hotmode" not in parts:
        return " ".join(parts)
    kept: list[str] = []
    skip = False
    for part in parts:
        if skip or part.startswith("--install="):
            skip = False
            continue
        skip = part == "--install"
        if not skip:
            kept.append(part)
    return " ".join(kept)


@service_rule(
    "HM-D03",
    Severity.MEDIUM,
    DEV,
    "Dependencies are not installed at every start",
    "Install dependencies in the image (a dev build stage); the command only starts the server.",
    kinds=CODE,
)
def no_install_at_start(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    for key in ("command", "entrypoint"):
        match = _INSTALL.search(_at_start(service, key))
        if match:
            yield Hit(
                f"the {key} runs `{match.group(0)}` every time the container starts",
                ("services", name, key),
            )


@service_rule(
    "HM-D04",
    Severity.LOW,
    DEV,
    "No per-package __pycache__ volume lists",
    "Remove the __pycache__ volumes; set PYTHONPYCACHEPREFIX=/tmp/pycache instead.",
    kinds=CODE,
)
def no_pycache_volumes(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    caches = [m for m in mounts(service) if m.type == "volume" and _is_pycache(m.target)]
    if caches:
        yield Hit(
            f"{len(caches)} anonymous __pycache__ volume(s), one per package, each a stale cache",
            ("services", name, "volumes", caches[0].index),
        )


@service_rule(
    "HM-D05",
    Severity.MEDIUM,
    DEV,
    "No mount points nested inside the source mount",
    "Mount logs and data outside the source folder's target (e.g. /var/log/app), not under it.",
    kinds=CODE,
)
def no_nested_mounts(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    sources, _ = source_mounts(context, service)
    for mount in mounts(service):
        if mount in sources or (mount.type == "volume" and _is_pycache(mount.target)):
            continue
        outer = next(
            (s for s in sources if s.target != mount.target and inside(mount.target, s.target)),
            None,
        )
        if outer is not None:
            yield Hit(
                f"{mount.target} is mounted inside the source mount {outer.target}: Docker "
                "creates its mount point in your source tree",
                ("services", name, "volumes", mount.index),
            )
