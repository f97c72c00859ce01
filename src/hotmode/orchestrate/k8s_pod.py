"""The container of a Kubernetes pod from one Compose service: user, probes, resources, mounts.

Pure translations, each refusing by key what a manifest cannot carry. An HTTP healthcheck on the
loopback becomes `httpGet` probes on its path, with a startup probe for the start period, so
liveness never kills a slow start. Requests sit below limits (a quarter of the CPU, half of the
memory, unless reservations say otherwise). Secrets are projected into their folder, never with
`subPath`, which would freeze them at the pod's start and hide a rotation. A read-only bind
mount becomes a ConfigMap of its files. A claim is mounted whole, never with `subPath` (the
kubelet makes a subPath folder owned by root, where a database running as its own uid cannot
create its files); where the image names its data folder by a variable (PostgreSQL's `PGDATA`),
the data folder is a subfolder of the mount that the database creates itself, so it never holds
the volume's own `lost+found` and has the modes the database asks for, not the volume's
group-writable ones.
"""

from __future__ import annotations

import copy
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

from hotmode.errors import UsageError
from hotmode.orchestrate.units import cpu_quantity, duration_seconds, memory_quantity

SECRETS_DIR = "/run/secrets"
# The seconds a stopping pod keeps serving while endpoints drop it, before SIGTERM.
PRE_STOP_SECONDS = 5
# The claim's size when none is given.
CLAIM_SIZE = "1Gi"
# The variable that an official image reads its data folder from, and that folder by default
# (the image's own Dockerfile): its evidence, like `_OFFICIAL_USERS`.
_DATA_VARIABLES = {"postgres": ("PGDATA", "/var/lib/postgresql/data")}
# The subfolder of the mount the database keeps its data in.
DATA_FOLDER = "pgdata"
_HTTP = re.compile(
    r"https?://(?:127\.0\.0\.1|localhost)(?::(?P<port>\d+))?[^/'\"\s]*(?P<path>/[^'\"\s%]*)"
)


def name_of(*parts: str) -> str:
    """A DNS-1123 label from `parts`."""
    text = "-".join(p for p in parts if p)
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-")


def where(service: str, *keys: str | int) -> str:
    return ".".join(["services", service, *(str(k) for k in keys)])


def seconds(value: Any, default: int) -> int:
    return max(1, math.ceil(duration_seconds(value))) if value is not None else default


# The fixed uid:gid that an official image's Dockerfile gives its named user (Docker Hub's
# library images, Debian-based tags; Alpine tags use other numbers and are not listed): the
# image's own evidence, so `user: postgres` needs no hand-written number.
_OFFICIAL_USERS = {
    ("postgres", "postgres"): "999:999",
    ("mysql", "mysql"): "999:999",
    ("mariadb", "mysql"): "999:999",
    ("redis", "redis"): "999:999",
    ("mongo", "mongodb"): "999:999",
    ("rabbitmq", "rabbitmq"): "999:999",
}


def _official(service: Mapping[str, Any]) -> tuple[str, str] | None:
    """The official library image's name and tag, else None (another registry or owner)."""
    image = str(service.get("image") or "")
    name, _, tag = image.partition("@")[0].partition(":")
    for prefix in ("docker.io/library/", "library/"):
        name = name.removeprefix(prefix)
    return None if "/" in name else (name, tag)


def _official_ids(service: Mapping[str, Any], user: str) -> str | None:
    """`uid:gid` of a named user in an official library image by its Debian-based tag, else
    None (another registry, an Alpine tag, or a user the table does not know)."""
    official = _official(service)
    if official is None or "alpine" in official[1]:
        return None
    return _OFFICIAL_USERS.get((official[0], user))


def data_variable(service: Mapping[str, Any], mount: str) -> tuple[str, str] | None:
    """`(VARIABLE, folder)` that puts the data of a claim mounted at `mount` in a subfolder of
    it, or None when the image names its data folder by no variable hotmode knows.

    The service's own value is kept where it is already below the mount.
    """
    official = _official(service)
    known = _DATA_VARIABLES.get(official[0]) if official else None
    if known is None:
        return None
    variable, default = known
    given = str((service.get("environment") or {}).get(variable) or default)
    if PurePosixPath(mount) in PurePosixPath(given).parents:
        return variable, given
    if PurePosixPath(given) != PurePosixPath(mount):
        return None
    return variable, str(PurePosixPath(mount) / DATA_FOLDER)


def qualified(image: str) -> str:
    """`image` with the registry Docker resolves a short name to (`postgres:16` is
    `docker.io/library/postgres:16`), so that no node's short-name policy decides."""
    if is_qualified(image):
        return image
    return f"docker.io/{image if '/' in image else 'library/' + image}"


def is_qualified(image: str) -> bool:
    """Whether an image names its registry (`host[:port]/...`)."""
    first = image.split("/", 1)[0]
    return "/" in image and ("." in first or ":" in first or first == "localhost")


def user_ids(name: str, service: Mapping[str, Any], given: str | None = None) -> tuple[int, int]:
    """The numeric uid and gid the pod runs as: `given` for it, the service's numeric `user`,
    or the number an official image gives its named user."""
    user = given or str(service.get("user") or "")
    if not given and not user.split(":")[0].isdigit():
        user = _official_ids(service, user.split(":")[0]) or user
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or not (gid or uid).isdigit():
        raise UsageError(
            f"{where(name, 'user')} is {user or 'unset'}: Kubernetes proves non-root only with "
            f"a numeric uid; set user: UID:GID, or render with --stateful {name}=UID:GID"
        )
    if int(uid) == 0:
        raise UsageError(f"{where(name, 'user')} is root; prod runs as a non-root uid")
    return int(uid), int(gid or uid)


def probes(
    name: str,
    service: Mapping[str, Any],
    port: int | None,
    reaches: Sequence[tuple[str, int]] = (),
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Readiness, liveness and startup probes from the healthcheck.

    A check that fetches `http://127.0.0.1[:PORT]/PATH` is an `httpGet` on PATH (no interpreter
    in the probe); any other is an `exec` of the same command. The startup probe allows the
    start period; liveness and readiness begin after it. With `reaches` (the companions' hosts
    and ports), readiness also opens a connection to each: a pod whose database does not
    answer takes no traffic, while liveness, the declared check alone, does not restart it.
    """
    check = service.get("healthcheck") or {}
    test = check.get("test")
    if check.get("disable") or not test or test == ["NONE"]:
        raise UsageError(
            f"{where(name, 'healthcheck')} is missing: the readiness and liveness probes "
            "come from it; declare one"
        )
    if isinstance(test, str):
        command = ["/bin/sh", "-c", test]
    elif test[0] == "CMD-SHELL":
        command = ["/bin/sh", "-c", " ".join(test[1:])]
    else:
        command = list(test[1:] if test[0] == "CMD" else test)
    found = _HTTP.search(" ".join(command))
    action: dict[str, Any]
    if found and (found["port"] or port):
        action = {"httpGet": {"path": found["path"], "port": int(found["port"] or port or 0)}}
    else:
        action = {"exec": {"command": command}}
    period = seconds(check.get("interval"), 30)
    timeout = seconds(check.get("timeout"), 30)
    retries = int(check.get("retries") or 3)
    start = seconds(check.get("start_period"), 0) if check.get("start_period") else 0
    liveness = {**action, "periodSeconds": period, "timeoutSeconds": timeout,
                "failureThreshold": retries}  # fmt: skip
    readiness = {**_reaching(action, reaches), "periodSeconds": period,
                 "timeoutSeconds": timeout, "failureThreshold": retries}  # fmt: skip
    startup_period = min(period, 5)
    startup = {
        **copy.deepcopy(action),
        "periodSeconds": startup_period,
        "timeoutSeconds": timeout,
        "failureThreshold": max(retries, math.ceil((start + period * retries) / startup_period)),
    }
    return readiness, liveness, startup


# Readiness with the companions: the declared HTTP check (if any), then a TCP connection to
# each `host:port`; the app's own interpreter runs it (every image hotmode builds has one).
_REACH = (
    "import socket, sys, urllib.request\n"
    "url, *targets = sys.argv[1:]\n"
    "if url:\n"
    "    urllib.request.urlopen(url, timeout=5)\n"
    "for target in targets:\n"
    "    host, _, port = target.rpartition(':')\n"
    "    socket.create_connection((host, int(port)), timeout=5).close()\n"
)


def _reaching(action: Mapping[str, Any], reaches: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """The readiness action: `action`, and with companions, each of them reached."""
    if not reaches:
        return copy.deepcopy(dict(action))
    targets = [f"{host}:{port}" for host, port in reaches]
    if "httpGet" in action:
        get = action["httpGet"]
        url = f"http://127.0.0.1:{get['port']}{get['path']}"
        return {"exec": {"command": ["python", "-c", _REACH, url, *targets]}}
    command = shlex.join(action["exec"]["command"])
    reach = shlex.join(["python", "-c", _REACH, "", *targets])
    return {"exec": {"command": ["/bin/sh", "-c", f"{command} && {reach}"]}}


def _fraction(quantity: str, share: Decimal, cpu: bool) -> str:
    if cpu:
        cores = Decimal(quantity[:-1]) / 1000 if quantity.endswith("m") else Decimal(quantity)
        return f"{max(1, int(cores * share * 1000))}m"
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    number, unit = (quantity[:-2], quantity[-2:]) if quantity[-2:] in units else (quantity, "")
    value = int(Decimal(number) * units.get(unit, 1) * share)
    return f"{value // 2**20}Mi" if value >= 2**20 else str(value)


def resources(service: Mapping[str, Any]) -> dict[str, Any]:
    """Limits from `deploy.resources.limits`; requests from reservations, else below limits."""
    given = (service.get("deploy") or {}).get("resources") or {}
    out: dict[str, dict[str, str]] = {}
    for compose_key, kube_key in (("limits", "limits"), ("reservations", "requests")):
        values = {}
        part = given.get(compose_key) or {}
        if part.get("cpus") not in (None, "", 0):
            values["cpu"] = cpu_quantity(part["cpus"])
        if part.get("memory") not in (None, "", 0):
            values["memory"] = memory_quantity(part["memory"])
        if values:
            out[kube_key] = values
    if "limits" in out and "requests" not in out:
        # Burstable: scheduled for a share of what it may use, so one pod's limit does not
        # hold a whole CPU idle on a node.
        out["requests"] = {
            key: _fraction(value, Decimal("0.25") if key == "cpu" else Decimal("0.5"), key == "cpu")
            for key, value in out["limits"].items()
        }
    return out


def _secret_volumes(
    service: Mapping[str, Any], project: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One projected volume per folder the secrets land in; each secret a file in it."""
    folders: dict[str, list[dict[str, Any]]] = {}
    for secret in service.get("secrets") or []:
        source = str(secret.get("source") if isinstance(secret, dict) else secret)
        target = str(secret.get("target") or source) if isinstance(secret, dict) else source
        path = PurePosixPath(target if target.startswith("/") else f"{SECRETS_DIR}/{target}")
        folders.setdefault(str(path.parent), []).append(
            {"secret": {"name": name_of(project, source),
                        "items": [{"key": source, "path": path.name}]}}
        )  # fmt: skip
    pod, mounts = [], []
    for index, (folder, sources) in enumerate(sorted(folders.items())):
        volume = "secrets" if index == 0 else f"secrets-{index}"
        pod.append({"name": volume, "projected": {"sources": sources, "defaultMode": 0o440}})
        mounts.append({"name": volume, "mountPath": folder, "readOnly": True})
    return pod, mounts


def volumes(
    name: str,
    service: Mapping[str, Any],
    project: str,
    stateful: bool,
    *,
    resource: str,
    storage_class: str | None,
    claim_size: str = CLAIM_SIZE,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """Pod volumes, container mounts, claim templates, and the files of its ConfigMap."""
    pod: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    claims: list[dict[str, Any]] = []
    files: dict[str, str] = {}
    tmpfs = service.get("tmpfs") or []
    targets = [str(t).split(":")[0] for t in (tmpfs if isinstance(tmpfs, list) else [tmpfs])]
    for index, volume in enumerate(service.get("volumes") or []):
        kind, target = volume.get("type"), str(volume.get("target"))
        source = Path(str(volume.get("source")))
        if kind == "tmpfs":
            targets.append(target)
        elif kind == "volume" and volume.get("source"):
            volume_name = name_of(str(volume["source"]))
            mount: dict[str, Any] = {"name": volume_name, "mountPath": target}
            if volume.get("read_only"):
                mount["readOnly"] = True
            if stateful:
                claim: dict[str, Any] = {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": claim_size}},
                }
                if storage_class:
                    claim["storageClassName"] = storage_class
                claims.append({"metadata": {"name": volume_name}, "spec": claim})
            else:
                # A Deployment's pods are cattle: what the app writes to a named volume (logs)
                # lives as long as its pod; logs belong on stdout in a cluster.
                pod.append({"name": volume_name, "emptyDir": {}})
            mounts.append(mount)
        elif kind == "bind" and source.name == ".env":
            # The deployment .env's variables come through the ConfigMap and Secrets instead.
            continue
        elif kind == "bind" and volume.get("read_only") and (source.is_dir() or source.is_file()):
            listed = sorted(source.iterdir()) if source.is_dir() else [source]
            if any(not path.is_file() for path in listed):
                raise UsageError(f"{where(name, 'volumes', index)}: {source} holds a folder")
            volume_name = f"files-{sum(1 for v in pod if 'configMap' in v)}"
            items = []
            for path in listed:
                key = name_of(path.name.replace(".", "-")) or "file"
                files[key] = path.read_text(encoding="utf-8")
                items.append({"key": key, "path": path.name})
            pod.append({"name": volume_name,
                        "configMap": {"name": f"{resource}-files", "items": items}})  # fmt: skip
            mount_path = target if source.is_dir() else str(PurePosixPath(target).parent)
            mounts.append({"name": volume_name, "mountPath": mount_path, "readOnly": True})
        else:
            raise UsageError(
                f"{where(name, 'volumes', index)} is a {kind} mount of "
                f"{volume.get('source')}: a cluster has no host folders; bake it into the "
                "image, or make it a read-only file or folder (a ConfigMap)"
            )
    for index, target in enumerate(sorted(set(targets))):
        volume_name = "tmp" if index == 0 else f"tmp-{index}"
        pod.append({"name": volume_name, "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": volume_name, "mountPath": target})
    secret_pod, secret_mounts = _secret_volumes(service, project)
    pod += secret_pod
    mounts += secret_mounts
    return pod, sorted(mounts, key=lambda m: m["mountPath"]), claims, files


def lifecycle(service: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """A preStop sleep (endpoints drop the pod before SIGTERM) and the grace period around it."""
    grace = seconds(service.get("stop_grace_period"), 10) + PRE_STOP_SECONDS
    return {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}}, max(grace, 30)
