"""Prod's mode rules: the code that runs is the code the image was built with, and nothing more.

Prod must run the source baked into its image (no source mount, no reload, no watcher), on a
read-only root filesystem, as a non-root user, with the commit recorded in the image, without
debug output, without `.env` files in the build context and without secrets written into the
Compose files as defaults.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from hotmode.audit.build import ignore_file, is_ignored, unread
from hotmode.audit.dev import PUBLIC_BASES, unseen_reload
from hotmode.audit.model import Kind, Severity
from hotmode.audit.rules import (
    CODE,
    Context,
    Hit,
    command_text,
    is_true,
    mounts,
    reload_in,
    service_rule,
    source_mounts,
    split_image,
    stack_rule,
)

PROD = ("prod",)
# What runs the app's code for a long time: the app and its workers.
RUNS = frozenset({Kind.APP, Kind.WORKER})
REVISION_LABEL = "org.opencontainers.image.revision"
_ENV_FILE = re.compile(r"^\.env(\..+)?$")
_EXAMPLES = {".env.example", ".env.sample", ".env.template", ".env.dist"}
_ROOT = {"root", "0"}
_DEBUG_LEVELS = {"debug", "trace"}
_DEBUG_NAMES = {"DEBUG", "DJANGO_DEBUG", "FLASK_DEBUG"}
_SECRET_NAME = re.compile(
    r"(SECRET|PASSWORD|PASSWD|PASSPHRASE|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|(^|_)KEY$)",
    re.IGNORECASE,
)
# Public: the Kubernetes renderer routes the same names to Secret references.
SECRET_NAME = _SECRET_NAME
_DEFAULT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-)([^}]+)\}")


@service_rule(
    "HM-P01",
    Severity.HIGH,
    PROD,
    "No bind mount of the source folder in prod",
    "Remove the mount: the prod image copies the source at build, so it matches a commit.",
    kinds=CODE,
)
def no_source_mount(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    found, unsure = source_mounts(context, service)
    for mount in found:
        yield Hit(
            f"bind-mounts {mount.source} over {mount.target}: the code that runs is not the "
            "code the image was built with",
            ("services", name, "volumes", mount.index),
        )
    for mount, why in unsure:
        yield Hit(why, ("services", name, "volumes", mount.index), unknown=True)


@service_rule(
    "HM-P02",
    Severity.HIGH,
    PROD,
    "No reload and no file watcher in prod",
    "Drop --reload, runserver's reload, fastapi dev, Flask debug and any watcher from prod.",
    kinds=RUNS,
)
def no_reload(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    ask = "check it does not reload in prod"
    hit = reload_in(context, name, service, ask)
    if hit is None:
        hit = unseen_reload(context, name, service, ask)
    if hit is not None:
        yield hit


@service_rule(
    "HM-P03",
    Severity.HIGH,
    PROD,
    "The env file is mounted read-only",
    "Mount the env file with :ro (or read_only: true), or pass it with env_file: instead.",
    kinds=CODE,
)
def env_file_read_only(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    for mount in mounts(service):
        base = (mount.source or "").rstrip("/").rsplit("/", 1)[-1]
        writable = mount.type == "bind" and not mount.read_only
        if writable and _ENV_FILE.match(base) and base not in _EXAMPLES:
            yield Hit(
                f"{base} is mounted writable at {mount.target}",
                ("services", name, "volumes", mount.index),
            )


def _tmpfs_targets(service: Mapping[str, Any]) -> set[str]:
    tmpfs = service.get("tmpfs") or []
    targets = {
        str(t).split(":")[0].rstrip("/") for t in (tmpfs if isinstance(tmpfs, list) else [tmpfs])
    }
    targets |= {m.target for m in mounts(service) if m.type == "tmpfs"}
    return targets


@service_rule(
    "HM-P04",
    Severity.MEDIUM,
    PROD,
    "A read-only root filesystem, with a tmpfs for /tmp",
    "Set read_only: true and tmpfs: [/tmp]; give data that must persist a named volume.",
    covers=("CL-0007",),
    kinds=RUNS,
)
def read_only_root(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    writable = service.get("read_only") is not True
    no_tmp = "/tmp" not in _tmpfs_targets(service)  # noqa: S108 - asking for one, not using it
    if writable:
        also = ", and there is no tmpfs for /tmp" if no_tmp else ""
        yield Hit(
            f"the root filesystem is writable: code and binaries can be changed at run time{also}",
            ("services", name, "read_only"),
        )
    elif no_tmp:
        yield Hit("no tmpfs for /tmp", ("services", name, "tmpfs"))


@service_rule(
    "HM-P05",
    Severity.HIGH,
    PROD,
    "The process does not run as root",
    "Set user: to a non-root uid:gid (or a non-root USER in the Dockerfile's prod stage).",
    covers=("CL-0018",),
    kinds=CODE,
)
def not_root(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    path = ("services", name, "user")
    user = service.get("user")
    if user is not None:
        if str(user).split(":")[0].strip() in _ROOT:
            yield Hit(f"user: {user} runs the process as root", path)
        return
    build = context.build(service)
    dockerfile = context.dockerfile(name, service)
    if dockerfile is not None and build is not None:
        image_user = dockerfile.user(build.get("target"))
        if image_user and image_user.split(":")[0] not in _ROOT:
            return
        why = (
            f"its Dockerfile's USER is {image_user}"
            if image_user
            else "its Dockerfile sets no USER"
        )
        yield Hit(f"no user: is set and {why}: the process runs as root", path)
        return
    image = service.get("image")
    if build is None and isinstance(image, str) and split_image(image)[0] in PUBLIC_BASES:
        yield Hit(f"no user: is set, and {image} runs as root unless told otherwise", path)
        return
    yield Hit(
        f"no user: is set, so the image decides; {context.missing(name, service)}",
        path,
        unknown=True,
    )


@service_rule(
    "HM-P06",
    Severity.MEDIUM,
    PROD,
    "The build records the commit in the revision label",
    f"Label the image {REVISION_LABEL} at build, from a build arg or build.labels.",
    kinds=CODE,
)
def revision_label(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    build = service.get("build")
    if not isinstance(build, dict):
        return
    labels = build.get("labels") or {}
    keys = set(labels) if isinstance(labels, dict) else {str(item).split("=")[0] for item in labels}
    if REVISION_LABEL in keys:
        return
    dockerfile = context.dockerfile(name, service)
    if dockerfile is None:
        yield Hit(
            f"the revision label would be set in the Dockerfile; {unread(build)}",
            ("services", name, "build"),
            unknown=True,
        )
        return
    if REVISION_LABEL not in dockerfile.labels(build.get("target")):
        yield Hit(
            f"the image built for {name} does not say which commit it is ({REVISION_LABEL})",
            ("services", name, "build", "labels"),
        )


@service_rule(
    "HM-P07",
    Severity.MEDIUM,
    PROD,
    "No debug mode and no debug log level in prod",
    "Remove DEBUG=true and debug/trace log levels from prod; keep them in the dev overlay.",
    kinds=RUNS,
)
def no_debug(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    for variable, setting in context.environment(name, service).items():
        upper, value = variable.upper(), setting.value
        debug = upper in _DEBUG_NAMES and is_true(value)
        if debug or (upper.endswith("LOG_LEVEL") and value.strip().lower() in _DEBUG_LEVELS):
            yield Hit(f"{variable}={value} in prod", setting.path, setting.location)
    for key in ("command", "entrypoint"):
        text = command_text(service, key)
        level = re.search(r"--log-level[= ]+(\w+)", text)
        if (level and level.group(1).lower() in _DEBUG_LEVELS) or re.search(
            r"(^|\s)--debug\b", text
        ):
            yield Hit(f"the {key} asks for debug output", ("services", name, key))


@service_rule(
    "HM-P08",
    Severity.HIGH,
    PROD,
    ".env files are kept out of the build context",
    "Add `.env` and `.env.*` (then `!.env.example`) to the build context's .dockerignore.",
    kinds=CODE,
)
def dockerignore_env(context: Context, name: str, service: dict[str, Any]) -> Iterator[Hit]:
    build = service.get("build")
    if not isinstance(build, dict):
        return
    path = ignore_file(build)
    if path is None or context.dockerfile(name, service) is None:
        # A context without the Dockerfile it names is not the whole context (a checkout of
        # the deployment folder alone): its .dockerignore may be elsewhere too.
        yield Hit(
            f"the .dockerignore would be in the build context; {unread(build)}",
            ("services", name, "build", "context"),
            unknown=True,
        )
        return
    try:
        patterns = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        patterns = []
    missing = [n for n in (".env", ".env.production") if not is_ignored(patterns, n)]
    if missing:
        what = "does not exist" if not patterns else f"does not exclude {missing[0]}"
        yield Hit(
            f"{path} {what}: a .env file in the context is copied into the image",
            ("services", name, "build", "context"),
        )


@stack_rule(
    "HM-P09",
    Severity.HIGH,
    PROD,
    "No secrets with literal default values",
    "Use ${NAME:?set NAME} (required) or an env file; never ship a default secret value.",
)
def no_secret_defaults(context: Context) -> Iterator[Hit]:
    for location, match in context.sources.locate_text(_DEFAULT):
        variable, default = match.group(1), match.group(3).strip()
        if default and _SECRET_NAME.search(variable):
            yield Hit(
                f"${{{variable}}} falls back to a literal value written in the file",
                location=location,
            )
