"""The container of a Kubernetes pod from one Compose service: user, probes, resources, mounts.

Pure translations, each refusing by key what a manifest cannot carry. An HTTP healthcheck on the
loopback becomes `httpGet` probes on its path, with a startup probe for the start period, so
liveness never kills a slow start. Requests sit below limits (a quarter of the CPU, half of the
memory, unless reservations say otherwise). Secrets are projected into their folder, never with
`subPath`, which would freeze them at the pod's start and hide a rotation. A read-only bind
mount becomes a ConfigMap of its files; a claim is mounted on a subdirectory of its volume, so
a data folder never holds the volume's own `lost+found`.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

from hotmode.errors import UsageError
from hotmode.orchestrate.units import cpu_quantity, duration_seconds, memory_quantity

SECRETS_DIR = "/run/secrets"
# The seconds a stopping pod keeps serving while endpoints drop it, before SIGTERM.
PRE_STOP_SECONDS = 5
# A claim's data lives in this subdirectory of its volume.
DATA_SUBPATH = "data"
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


def user_ids(name: str, service: Mapping[str, Any], given: str | None = None) -> tuple[int, int]:
    """The numeric uid and gid the pod runs as: the service's `user`, or `given` for it."""
    user = given or str(service.get("user") or "")
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
    name: str, service: Mapping[str, Any], port: int | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Readiness, liveness and startup probes from the healthcheck.

    A check that fetches `http://127.0.0.1[:PORT]/PATH` is an `httpGet` on PATH (no interpreter
    in the probe); any other is an `exec` of the same command. The startup probe allows the
    start period; liveness and readiness begin after it.
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
    readiness = {**action, "periodSeconds": period, "timeoutSeconds": timeout,
                 "failureThreshold": retries}  # fmt: skip
    startup_period = min(period, 5)
    startup = {
        **copy.deepcopy(action),
        "periodSeconds": startup_period,
        "timeoutSeconds": timeout,
        "failureThreshold": max(retries, math.ceil((start + period * retries) / startup_period)),
    }
    return readiness, copy.deepcopy(readiness), startup


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
                mount["subPath"] = DATA_SUBPATH
                claim: dict[str, Any] = {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
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
