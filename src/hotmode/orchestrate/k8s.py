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
import os
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
from hotmode.orchestrate.k8s_pod import (
    lifecycle,
    name_of,
    probes,
    resources,
    user_ids,
    volumes,
    where,
)

FOLDER = "k8s"
REVISION_ANNOTATION = "hotmode.dev/revision"
EDITION_LABEL = "hotmode.dev/edition"
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
    # Companion -> the UID:GID its StatefulSet runs as, where its `user` is a name.
    users: Mapping[str, str] = field(default_factory=dict)
    # Companion -> the port it listens on (its declaration's `port`).
    ports: Mapping[str, int] = field(default_factory=dict)
    registry: str | None = None
    storage_class: str | None = None


def _image(
    name: str, service: Mapping[str, Any], revision: str, built: bool, registry: str | None = None
) -> tuple[str, str | None]:
    image = service.get("image")
    if not image:
        raise UsageError(f"{where(name, 'image')} is missing; a cluster runs images by name")
    if not built:
        return str(image), None
    repository = str(image).rsplit(":", 1)[0] if ":" in str(image).rsplit("/", 1)[-1] else image
    if registry:
        repository = f"{registry.rstrip('/')}/{repository}"
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
    return name_of(project, Path(reference.path).name.lstrip(".").replace(".", "-"))


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


def _workload(
    app: str,
    prod: ProdConfig,
    name: str,
    service: Mapping[str, Any],
    options: K8sOptions,
    *,
    is_app: bool,
) -> list[dict[str, Any]]:
    component = name_of(name)
    resource = app if is_app else name_of(app, name)
    labels = _labels(app, component, prod.edition)
    uid, gid = user_ids(name, service, options.users.get(name))
    if service.get("read_only") is not True:
        raise UsageError(
            f"{where(name, 'read_only')} is not true: prod's root filesystem is read-only"
        )
    ports = sorted({int(p["target"]) for p in service.get("ports") or [] if "target" in p})
    if not ports and name in options.ports:
        ports = [options.ports[name]]
    readiness, liveness, startup = probes(name, service, ports[0] if ports else None)
    built = is_app or "build" in service
    image, _ = _image(name, service, options.revision, built=built, registry=options.registry)
    plain, secret_names = _split_environment(service)
    stateful = not is_app
    pod_volumes, mounts, claims, files = volumes(
        name, service, prod.project, stateful, resource=resource,
        storage_class=options.storage_class,
    )  # fmt: skip
    for claim in claims:
        # As the overlay's label transformer would give them (it labels templates too).
        claim["metadata"]["labels"] = dict(labels)
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": f"{resource}-env"}}]
    for reference in prod.env_files.get(name, ()):
        # Required in a cluster even where Compose may go without the file: a pod that lacks
        # its edition's settings must not start (CreateContainerConfigError says which).
        env_from.append({"secretRef": {"name": env_file_secret(prod.project, reference)}})
    hooks, grace = lifecycle(service)
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
    if ports:
        container["ports"] = [
            {"name": f"tcp-{p}"[:15], "containerPort": p, "protocol": "TCP"} for p in ports
        ]
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
            "startupProbe": startup,
            "readinessProbe": readiness,
            "livenessProbe": liveness,
            "lifecycle": hooks,
            "resources": resources(service),
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
    pod_spec["terminationGracePeriodSeconds"] = grace
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
    service_name = resource if is_app else name_of(name)
    if stateful:
        workload = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata}
        # The headless Service that gives the pods their DNS names: the one rendered below.
        spec = {"serviceName": service_name, **spec}
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
    if not ports:
        raise UsageError(f"{where(name, 'ports')}: no port to serve on; declare the service's port")
    if files:
        objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": f"{resource}-files", "labels": labels},
                        "data": files})  # fmt: skip
    service_spec: dict[str, Any] = {"selector": _selector(labels)}
    if stateful:
        service_spec["clusterIP"] = "None"
    service_spec["ports"] = [
        {"name": f"tcp-{p}", "port": p, "targetPort": p, "protocol": "TCP"} for p in ports
    ]
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service_name, "labels": labels},
            "spec": service_spec,
        }
    )
    # A drain takes at most one pod at a time, and never blocks on a single replica.
    objects.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": resource, "labels": labels},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(labels)}},
        }
    )
    return objects


def _managed(app: str, prod: ProdConfig, name: str, options: K8sOptions) -> dict[str, Any]:
    host = options.managed.get(name)
    if not host:
        # A placeholder host would deploy and go Ready while every database call fails.
        raise UsageError(
            f"the {name} companion needs a home in the cluster: --managed {name}=HOST (a "
            f"managed database) or --stateful {name} (a StatefulSet)"
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name_of(name),
            "labels": _labels(app, name_of(name), prod.edition),
            "annotations": {"hotmode.dev/managed-database": f"the {name} companion is {host}"},
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
    base_kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": names,
    }
    built = _image(service_name, base_prod.services[service_name], options.revision, True,
                   options.registry)  # fmt: skip
    if built[1]:
        # `kustomize edit set image` (or a CI step) moves the app to another tag or registry.
        base_kustomization["images"] = [
            {"name": built[1], "newName": built[1], "newTag": options.revision}
        ]
    files["base/kustomization.yaml"] = _dump([base_kustomization])
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
