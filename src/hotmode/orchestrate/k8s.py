"""Kubernetes manifests from the prod configuration: `hotmode render --k8s`.

Each edition's prod services, as Compose merges them, become plain manifests: the app a
Deployment (rolling, never below its replicas), a Service, a ConfigMap for the non-secret
environment and references to Secrets for credentials, never their values; every prod promise
goes into the pod's security context and probes. A companion (a database beside the app) is by
default a reference to a managed database (an ExternalName Service under the companion's own
name, so the app's settings do not change), or, asked by name, a StatefulSet with a claim per
named volume. The default edition is the Kustomize base; every edition has an overlay whose
patches are computed as the difference from the base, so one source of truth gives both.
Anything a manifest cannot carry is refused with the key that asks for it.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotmode.audit.prod import SECRET_NAME
from hotmode.compose.prod import EnvFile, ProdConfig, merge
from hotmode.compose.render import has_header, with_header
from hotmode.config import Config
from hotmode.errors import UsageError
from hotmode.orchestrate.units import cpu_quantity, duration_seconds, memory_quantity

FOLDER = "k8s"
REVISION_ANNOTATION = "hotmode.dev/revision"
EDITION_LABEL = "hotmode.dev/edition"
MANAGED_HOST = "{name}.managed-database.invalid"
SECRETS_DIR = "/run/secrets"
# Lists that strategic merge patches merge by a key; every other list is replaced whole.
_MERGE_KEYS = {
    "containers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "env": "name",
    "ports": "containerPort",
}


@dataclass(frozen=True)
class K8sOptions:
    """What the renderer needs besides the configuration: the revision and the companions' form."""

    revision: str
    # Companions rendered as StatefulSets instead of managed-database references.
    stateful: frozenset[str] = frozenset()
    # Companion -> the managed database's host name.
    managed: Mapping[str, str] = field(default_factory=dict)


def _seconds(value: Any, default: int) -> int:
    return max(1, math.ceil(duration_seconds(value))) if value is not None else default


def _name(*parts: str) -> str:
    text = "-".join(p for p in parts if p)
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-")


def _where(service: str, *keys: str | int) -> str:
    return ".".join(["services", service, *(str(k) for k in keys)])


def _user(name: str, service: Mapping[str, Any]) -> tuple[int, int]:
    user = str(service.get("user") or "")
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or not (gid or uid).isdigit():
        raise UsageError(
            f"{_where(name, 'user')} is {user or 'unset'}: Kubernetes proves non-root only with "
            "a numeric uid; set user: UID:GID"
        )
    if int(uid) == 0:
        raise UsageError(f"{_where(name, 'user')} is root; prod runs as a non-root uid")
    return int(uid), int(gid or uid)


def _probe(name: str, service: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    check = service.get("healthcheck") or {}
    test = check.get("test")
    if check.get("disable") or not test or test == ["NONE"]:
        raise UsageError(
            f"{_where(name, 'healthcheck')} is missing: the readiness and liveness probes "
            "come from it; declare one"
        )
    if isinstance(test, str):
        command = ["/bin/sh", "-c", test]
    elif test[0] == "CMD-SHELL":
        command = ["/bin/sh", "-c", " ".join(test[1:])]
    else:
        command = list(test[1:] if test[0] == "CMD" else test)
    period = _seconds(check.get("interval"), 30)
    timeout = _seconds(check.get("timeout"), 30)
    retries = int(check.get("retries") or 3)
    start = _seconds(check.get("start_period"), 0) if check.get("start_period") else 0
    readiness = {
        "exec": {"command": command},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": retries,
    }
    liveness = {**copy.deepcopy(readiness), "initialDelaySeconds": start} if start else readiness
    return readiness, copy.deepcopy(liveness)


def _resources(service: Mapping[str, Any]) -> dict[str, Any]:
    resources = (service.get("deploy") or {}).get("resources") or {}
    out: dict[str, dict[str, str]] = {}
    for compose_key, kube_key in (("limits", "limits"), ("reservations", "requests")):
        given = resources.get(compose_key) or {}
        values = {}
        if given.get("cpus") not in (None, "", 0):
            values["cpu"] = cpu_quantity(given["cpus"])
        if given.get("memory") not in (None, "", 0):
            values["memory"] = memory_quantity(given["memory"])
        if values:
            out[kube_key] = values
    if "limits" in out and "requests" not in out:
        # Requests equal to limits: the pod is scheduled for what it may use (Guaranteed QoS).
        out["requests"] = dict(out["limits"])
    return out


def _image(
    name: str, service: Mapping[str, Any], revision: str, built: bool
) -> tuple[str, str | None]:
    image = service.get("image")
    if not image:
        raise UsageError(f"{_where(name, 'image')} is missing; a cluster runs images by name")
    if not built:
        return str(image), None
    repository = str(image).rsplit(":", 1)[0] if ":" in str(image).rsplit("/", 1)[-1] else image
    return f"{repository}:{revision}", str(repository)


def _split_environment(
    service: Mapping[str, Any],
) -> tuple[dict[str, str], list[str]]:
    plain: dict[str, str] = {}
    secret: list[str] = []
    for key, value in sorted((service.get("environment") or {}).items()):
        if is_credential(key):
            secret.append(key)
        elif value is not None:
            plain[key] = str(value)
    return plain, secret


def is_credential(name: str) -> bool:
    """A variable whose value is a credential; `*_FILE` names a file (Docker's convention)."""
    return bool(SECRET_NAME.search(name)) and not name.upper().endswith("_FILE")


def env_file_secret(project: str, reference: EnvFile) -> str:
    """The Secret that stands for an env file (`kubectl create secret generic NAME
    --from-env-file=FILE`)."""
    return _name(project, Path(reference.path).name.lstrip(".").replace(".", "-"))


def _labels(app: str, component: str, edition: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": component,
        EDITION_LABEL: edition,
    }


def _selector(labels: Mapping[str, str]) -> dict[str, str]:
    """What selects an edition's pods: name and component. The edition is its namespace, so its
    label stays out of selectors, which an overlay could not change without touching every
    Service, an ExternalName one included."""
    return {k: v for k, v in labels.items() if k != EDITION_LABEL}


def _volumes(
    name: str, service: Mapping[str, Any], project: str, stateful: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Pod volumes, container mounts and (for a StatefulSet) claim templates."""
    pod: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    claims: list[dict[str, Any]] = []
    tmpfs = service.get("tmpfs") or []
    targets = [str(t).split(":")[0] for t in (tmpfs if isinstance(tmpfs, list) else [tmpfs])]
    for index, volume in enumerate(service.get("volumes") or []):
        kind, target = volume.get("type"), str(volume.get("target"))
        if kind == "tmpfs":
            targets.append(target)
        elif kind == "volume" and volume.get("source"):
            volume_name = _name(str(volume["source"]))
            mount: dict[str, Any] = {"name": volume_name, "mountPath": target}
            if volume.get("read_only"):
                mount["readOnly"] = True
            mounts.append(mount)
            if stateful:
                claims.append(
                    {
                        "metadata": {"name": volume_name},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                )
            else:
                # A Deployment's pods are cattle: what the app writes to a named volume (logs)
                # lives as long as its pod; logs belong on stdout in a cluster.
                pod.append({"name": volume_name, "emptyDir": {}})
        elif kind == "bind" and Path(str(volume.get("source"))).name == ".env":
            # The deployment .env's variables come through the ConfigMap and Secrets instead.
            continue
        else:
            raise UsageError(
                f"{_where(name, 'volumes', index)} is a {kind} mount of "
                f"{volume.get('source')}: a cluster has no host folders; bake it into the "
                "image or use a ConfigMap"
            )
    for index, target in enumerate(sorted(set(targets))):
        volume_name = "tmp" if index == 0 else f"tmp-{index}"
        pod.append({"name": volume_name, "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": volume_name, "mountPath": target})
    for secret in service.get("secrets") or []:
        source = str(secret.get("source") if isinstance(secret, dict) else secret)
        target = str(secret.get("target") or source) if isinstance(secret, dict) else source
        volume_name = _name("secret", source)
        pod.append({"name": volume_name, "secret": {"secretName": _name(project, source)}})
        path = target if target.startswith("/") else f"{SECRETS_DIR}/{target}"
        mounts.append({"name": volume_name, "mountPath": path, "subPath": source, "readOnly": True})
    return pod, sorted(mounts, key=lambda m: m["mountPath"]), claims


def _workload(
    app: str,
    prod: ProdConfig,
    name: str,
    service: Mapping[str, Any],
    options: K8sOptions,
    *,
    is_app: bool,
) -> list[dict[str, Any]]:
    component = _name(name)
    resource = app if is_app else _name(app, name)
    labels = _labels(app, component, prod.edition)
    uid, gid = _user(name, service)
    if service.get("read_only") is not True:
        raise UsageError(
            f"{_where(name, 'read_only')} is not true: prod's root filesystem is read-only"
        )
    readiness, liveness = _probe(name, service)
    image, _ = _image(name, service, options.revision, built=is_app or "build" in service)
    plain, secret_names = _split_environment(service)
    stateful = not is_app
    pod_volumes, mounts, claims = _volumes(name, service, prod.project, stateful)
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": f"{resource}-env"}}]
    for reference in prod.env_files.get(name, ()):
        secret_ref: dict[str, Any] = {"name": env_file_secret(prod.project, reference)}
        if not reference.required:
            secret_ref["optional"] = True
        env_from.append({"secretRef": secret_ref})
    capabilities: dict[str, Any] = {"drop": ["ALL"]}
    if service.get("cap_add"):
        capabilities["add"] = sorted(str(c) for c in service["cap_add"])
    container: dict[str, Any] = {
        "name": component,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
    }
    if service.get("entrypoint"):
        container["command"] = [str(a) for a in service["entrypoint"]]
    if service.get("command"):
        container["args"] = [str(a) for a in service["command"]]
    ports = sorted({int(p["target"]) for p in service.get("ports") or [] if "target" in p})
    if ports:
        container["ports"] = [{"containerPort": p, "protocol": "TCP"} for p in ports]
    container["envFrom"] = env_from
    if secret_names:
        container["env"] = [
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": f"{prod.project}-secrets", "key": key}},
            }
            for key in secret_names
        ]
    container.update(
        {
            "readinessProbe": readiness,
            "livenessProbe": liveness,
            "resources": _resources(service),
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "runAsUser": uid,
                "runAsGroup": gid,
                "capabilities": capabilities,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
    )
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": gid,
            "fsGroup": gid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    grace = service.get("stop_grace_period")
    if grace:
        pod_spec["terminationGracePeriodSeconds"] = _seconds(grace, 30)
    if pod_volumes:
        pod_spec["volumes"] = pod_volumes
    template = {
        "metadata": {"labels": labels, "annotations": {REVISION_ANNOTATION: options.revision}},
        "spec": pod_spec,
    }
    replicas = int((service.get("deploy") or {}).get("replicas") or 1)
    metadata = {
        "name": resource,
        "labels": labels,
        "annotations": {REVISION_ANNOTATION: options.revision},
    }
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": _selector(labels)},
        "template": template,
    }
    if stateful:
        workload = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata}
        spec = {"serviceName": resource, **spec}
        if claims:
            spec["volumeClaimTemplates"] = claims
    else:
        workload = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata}
        spec["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        }
    workload["spec"] = spec
    objects = [
        workload,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{resource}-env", "labels": labels},
            "data": plain,
        },
    ]
    service_spec: dict[str, Any] = {"selector": _selector(labels)}
    if stateful:
        service_spec["clusterIP"] = "None"
    service_spec["ports"] = [
        {"name": f"tcp-{p}", "port": p, "targetPort": p, "protocol": "TCP"} for p in ports
    ] or [{"name": "none", "port": 1, "protocol": "TCP"}]
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": resource if is_app else _name(name), "labels": labels},
            "spec": service_spec,
        }
    )
    return objects


def _managed(app: str, prod: ProdConfig, name: str, options: K8sOptions) -> dict[str, Any]:
    host = options.managed.get(name) or MANAGED_HOST.format(name=_name(name))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": _name(name),
            "labels": _labels(app, _name(name), prod.edition),
            "annotations": {
                "hotmode.dev/managed-database": (
                    f"the {name} companion is a managed database; set its host with "
                    f"`hotmode render --k8s --managed {name}=HOST`"
                )
            },
        },
        "spec": {"type": "ExternalName", "externalName": host},
    }


def edition_objects(
    app: str, service_name: str, prod: ProdConfig, options: K8sOptions
) -> list[dict[str, Any]]:
    """Every manifest of one edition, without a namespace (the overlay gives it)."""
    services = prod.services
    if service_name not in services:
        raise UsageError(f"the prod configuration has no service {service_name!r}")
    unknown = (options.stateful | set(options.managed)) - set(services)
    if unknown:
        raise UsageError(f"no companion named {sorted(unknown)[0]!r} in the prod configuration")
    objects = _workload(app, prod, service_name, services[service_name], options, is_app=True)
    for name in sorted(services):
        if name == service_name:
            continue
        if name in options.stateful:
            objects += _workload(app, prod, name, services[name], options, is_app=False)
        else:
            objects.append(_managed(app, prod, name, options))
    return objects


def _file_name(document: Mapping[str, Any]) -> str:
    return f"{document['metadata']['name']}.{document['kind'].lower()}.yaml"


class _Dumper(yaml.SafeDumper):
    # The same labels dict in metadata, selector and template: written out, never as an alias.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(documents: Iterable[Mapping[str, Any]]) -> str:
    return "---\n".join(
        yaml.dump(dict(d), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
        for d in documents
    )


def _keyed(items: Sequence[Any], key: str) -> dict[Any, Any] | None:
    if not all(isinstance(i, dict) and key in i for i in items):
        return None
    return {i[key]: i for i in items}


def patch_diff(base: Any, target: Any, key: str | None = None) -> Any:
    """A strategic merge patch from `base` to `target`: keyed lists merged, others whole."""
    if isinstance(base, dict) and isinstance(target, dict):
        patch: dict[str, Any] = {}
        for name, value in target.items():
            if name not in base:
                patch[name] = value
            elif base[name] != value:
                patch[name] = patch_diff(base[name], value, name)
        for name in base:
            if name not in target:
                patch[name] = None
        return patch
    merge_key = _MERGE_KEYS.get(key or "")
    if isinstance(base, list) and isinstance(target, list) and merge_key:
        old, new = _keyed(base, merge_key), _keyed(target, merge_key)
        if old is not None and new is not None:
            items = []
            for item_key, item in new.items():
                if item_key not in old:
                    items.append(item)
                elif old[item_key] != item:
                    items.append({merge_key: item_key, **patch_diff(old[item_key], item)})
            items += [{merge_key: k, "$patch": "delete"} for k in old if k not in new]
            return items
    return target


def render_tree(
    app: str, service_name: str, editions: Sequence[ProdConfig], options: K8sOptions
) -> dict[str, str]:
    """The files of `k8s/`, relative path -> YAML body: the base and one overlay per edition.

    `editions[0]` is the default edition, which the base is.
    """
    base_prod = editions[0]
    base = edition_objects(app, service_name, base_prod, options)
    files: dict[str, str] = {}
    names = []
    for document in base:
        name = _file_name(document)
        files[f"base/{name}"] = _dump([document])
        names.append(name)
    files["base/kustomization.yaml"] = _dump(
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": names,
            }
        ]
    )
    for prod in editions:
        objects = edition_objects(app, service_name, prod, options)
        by_id = {(d["kind"], d["metadata"]["name"]): d for d in base}
        patches = []
        for document in objects:
            ident = (document["kind"], document["metadata"]["name"])
            if ident not in by_id:
                raise UsageError(
                    f"edition {prod.edition} has {ident[0]} {ident[1]} that the base has not; "
                    "declare the same services in every edition"
                )
            # Labels are the overlay's `labels:` transformer's; the rest is patched.
            diff = patch_diff(_unlabelled(by_id[ident]), _unlabelled(document))
            if diff:
                patches.append({"apiVersion": document["apiVersion"], "kind": ident[0],
                                "metadata": {"name": ident[1]}, **diff})  # fmt: skip
        kustomization: dict[str, Any] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            # One namespace per edition, like one Compose project: the companions keep their
            # names (the app's settings name them) and editions never collide.
            "namespace": prod.project,
            "resources": ["../../base", "namespace.yaml"],
        }
        files[f"overlays/{prod.edition}/namespace.yaml"] = _dump([namespace(prod)])
        if prod is not base_prod:
            kustomization["labels"] = [
                {"pairs": {EDITION_LABEL: prod.edition}, "includeTemplates": True}
            ]
        if patches:
            kustomization["patches"] = [{"path": "patches.yaml"}]
            files[f"overlays/{prod.edition}/patches.yaml"] = _dump(patches)
        files[f"overlays/{prod.edition}/kustomization.yaml"] = _dump([kustomization])
    return files


def _unlabelled(document: Mapping[str, Any]) -> dict[str, Any]:
    clean = copy.deepcopy(dict(document))

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("labels", "matchLabels", "selector"):
                value = node.get(key)
                if isinstance(value, dict) and EDITION_LABEL in value:
                    del value[EDITION_LABEL]
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(clean)
    return clean


def namespace(prod: ProdConfig) -> dict[str, Any]:
    """The namespace of an edition: its Compose project's name."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": prod.project, "labels": {EDITION_LABEL: prod.edition}},
    }


def expected_objects(
    app: str, service_name: str, prod: ProdConfig, options: K8sOptions
) -> list[dict[str, Any]]:
    """What `kustomize build overlays/EDITION` gives: the edition's objects in its namespace."""
    objects = edition_objects(app, service_name, prod, options)
    for document in objects:
        document["metadata"]["namespace"] = prod.project
    return [namespace(prod), *objects]


def render_files(config: Config, options: K8sOptions) -> dict[Path, str]:
    """Every file of `deployment/k8s/`, with hotmode's header, keyed by absolute path."""
    editions = [merge(config, edition.name) for edition in config.editions]
    out = config.deployment / FOLDER
    declaration = os.path.relpath(config.path, config.root)
    return {
        out / relative: with_header(body, declaration, "hotmode render --k8s")
        for relative, body in render_tree(config.name, config.service, editions, options).items()
    }


def leftover_files(config: Config, rendered: Mapping[Path, str]) -> list[Path]:
    """Files under `deployment/k8s/` that hotmode wrote and no longer renders."""
    folder = config.deployment / FOLDER
    found = []
    for path in sorted(folder.rglob("*.yaml")) if folder.is_dir() else []:
        if path not in rendered and has_header(path):
            found.append(path)
    return found
