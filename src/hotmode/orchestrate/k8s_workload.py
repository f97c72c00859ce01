"""One edition's Kubernetes objects from its prod services: the app, its jobs, its companions.

The app is a Deployment (rolling, never below its replicas) with a Service; each declared job
(a service the app waits for with `service_completed_successfully`) is a Job of the app's own
image and environment, named by the revision so that each release runs it once; a companion is
a managed database (an ExternalName Service under the companion's own name, so the app's
settings keep naming it) or, asked by name, a StatefulSet with a claim per named volume. The
non-secret environment is a ConfigMap whose digest is on the pod template (a change rolls the
pods); credentials are references to Secrets, never their values. Only the app's templates carry
the revision, so a release does not restart the database. The namespace is closed by network
policies and held to the `restricted` Pod Security level.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotmode.audit.prod import SECRET_NAME
from hotmode.compose.jobs import job_names
from hotmode.compose.prod import EnvFile, ProdConfig
from hotmode.errors import UsageError
from hotmode.orchestrate.k8s_pod import (
    CLAIM_SIZE,
    data_variable,
    lifecycle,
    name_of,
    probes,
    qualified,
    resources,
    user_ids,
    volumes,
    where,
)
from hotmode.orchestrate.k8s_policy import (
    AFTER_JOBS_LABEL,
    CHECKSUM_ANNOTATION,
    CLIENT_LABEL,
    EDITION_LABEL,
    Managed,
    Reach,
    checksum,
    disruption_budget,
    managed_for,
    network_policies,
    spread,
    with_port,
)

REVISION_ANNOTATION = "hotmode.dev/revision"
# How long a job may run before Kubernetes stops it and calls it failed.
JOB_DEADLINE_SECONDS = 1800


@dataclass(frozen=True)
class K8sOptions:
    """What the renderer needs besides the configuration: the revision and the companions' form."""

    revision: str
    # Companions rendered as StatefulSets instead of managed-database references.
    stateful: frozenset[str] = frozenset()
    # (companion, edition or None for every edition) -> the managed database.
    managed: Mapping[tuple[str, str | None], Managed] = field(default_factory=dict)
    # Companion -> the UID:GID its StatefulSet runs as, where its `user` is a name.
    users: Mapping[str, str] = field(default_factory=dict)
    # Companion -> the port it listens on (its declaration's `port`).
    ports: Mapping[str, int] = field(default_factory=dict)
    registry: str | None = None
    storage_class: str | None = None
    claim_size: str = CLAIM_SIZE


def built_image(image: Any, revision: str, registry: str | None) -> tuple[str, str]:
    """`[registry/]<repository>:<revision>` and the repository, for a service built here."""
    text = str(image)
    repository = text.rsplit(":", 1)[0] if ":" in text.rsplit("/", 1)[-1] else text
    if registry:
        repository = f"{registry.rstrip('/')}/{repository}"
    return f"{repository}:{revision}", repository


def is_credential(name: str) -> bool:
    """A variable whose value is a credential; `*_FILE` names a file (Docker's convention)."""
    return bool(SECRET_NAME.search(name)) and not name.upper().endswith("_FILE")


def env_file_secret(project: str, reference: EnvFile) -> str:
    """The Secret that stands for an env file (`kubectl create secret generic NAME
    --from-env-file=FILE`)."""
    return name_of(project, Path(reference.path).name.lstrip(".").replace(".", "-"))


def labels_of(app: str, component: str, edition: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": component,
        EDITION_LABEL: edition,
    }


def selector_of(labels: Mapping[str, str]) -> dict[str, str]:
    """What selects an edition's pods: name and component. The edition is its namespace, so its
    label stays out of selectors, which an overlay could not change without touching every
    Service, an ExternalName one included."""
    return {k: v for k, v in labels.items() if k != EDITION_LABEL}


def _environment(service: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    plain: dict[str, str] = {}
    secret: list[str] = []
    for key, value in sorted((service.get("environment") or {}).items()):
        if is_credential(key):
            secret.append(key)
        elif value is not None:
            plain[key] = str(value)
    return plain, secret


@dataclass
class _Pod:
    """A pod template's parts and the objects that go with it."""

    resource: str
    labels: dict[str, str]
    ports: list[int]
    template: dict[str, Any]
    claims: list[dict[str, Any]]
    objects: list[dict[str, Any]]
    secrets: dict[str, list[str]]


def _pod(
    app: str,
    prod: ProdConfig,
    name: str,
    service: Mapping[str, Any],
    options: K8sOptions,
    *,
    kind: str,
    image: str,
    reaches: Sequence[Reach] = (),
) -> _Pod:
    """The pod template of the app (`kind` "app"), a job or a companion, with its ConfigMaps."""
    resource = app if kind == "app" else name_of(app, name)
    labels = labels_of(app, name_of(name), prod.edition)
    uid, gid = user_ids(name, service, options.users.get(name))
    if service.get("read_only") is not True:
        raise UsageError(
            f"{where(name, 'read_only')} is not true: prod's root filesystem is read-only"
        )
    ports = sorted({int(p["target"]) for p in service.get("ports") or [] if "target" in p})
    if not ports and name in options.ports:
        ports = [options.ports[name]]
    plain, secret_names = _environment(service)
    for reach in reaches:
        declared = options.ports.get(reach.name)
        if reach.selector is None and declared and declared != reach.port:
            plain = {k: with_port(v, name_of(reach.name), declared, reach.port)
                     for k, v in plain.items()}  # fmt: skip
    pod_volumes, mounts, claims, files = volumes(
        name, service, prod.project, kind == "companion", resource=resource,
        storage_class=options.storage_class, claim_size=options.claim_size,
    )  # fmt: skip
    for claim in claims:
        # As the overlay's label transformer would give them (it labels templates too).
        claim["metadata"]["labels"] = dict(labels)
        mount = next(m for m in mounts if m["name"] == claim["metadata"]["name"])
        found = data_variable(service, mount["mountPath"])
        if found:
            plain[found[0]] = found[1]
    secrets: dict[str, list[str]] = {}
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": f"{resource}-env"}}]
    for reference in prod.env_files.get(name, ()):
        # Required in a cluster even where Compose may go without the file: a pod that lacks
        # its edition's settings must not start (CreateContainerConfigError says which).
        secret = env_file_secret(prod.project, reference)
        env_from.append({"secretRef": {"name": secret}})
        secrets[secret] = [f"--from-env-file={reference.path}"]
    hooks, grace = lifecycle(service)
    capabilities: dict[str, Any] = {"drop": ["ALL"]}
    if service.get("cap_add"):
        capabilities["add"] = sorted(str(c) for c in service["cap_add"])
    container: dict[str, Any] = {
        "name": name_of(name),
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
        secrets[f"{prod.project}-secrets"] = [
            f'--from-literal={key}="${key}"' for key in secret_names
        ]
    if kind != "job":
        hosts = [(name_of(r.name), r.port) for r in reaches]
        readiness, liveness, startup = probes(name, service, ports[0] if ports else None, hosts)
        container.update(startupProbe=startup, readinessProbe=readiness, livenessProbe=liveness)
        container["lifecycle"] = hooks
    container["resources"] = resources(service)
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "capabilities": capabilities,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if mounts:
        container["volumeMounts"] = mounts
    for volume in pod_volumes:
        for source in (volume.get("projected") or {}).get("sources") or []:
            key = source["secret"]["items"][0]["key"]
            definition = ((prod.merged.get("secrets") or {}).get(key)) or {}
            path = definition.get("file") or f"FILE-OF-{key}"
            if prod.files and os.path.isabs(path):
                # From the deployment folder, where the Compose files are: no machine's path.
                path = os.path.relpath(path, prod.files[0].parent)
            secrets[source["secret"]["name"]] = [f"--from-file={key}={path}"]
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": gid,
            # The claim's root is made the group's (setgid, group-writable) once, not at every
            # start: a large volume is not walked again.
            "fsGroup": gid,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "terminationGracePeriodSeconds": grace,
    }
    if pod_volumes:
        pod_spec["volumes"] = pod_volumes
    configmaps = [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"{resource}-env", "labels": labels}, "data": plain},
    ]  # fmt: skip
    if files:
        configmaps.append({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": f"{resource}-files", "labels": labels},
                           "data": files})  # fmt: skip
    annotations = {CHECKSUM_ANNOTATION: checksum(configmaps)}
    if kind != "companion":
        annotations[REVISION_ANNOTATION] = options.revision
    pod_labels = dict(labels)
    if kind != "companion" and reaches:
        pod_labels[CLIENT_LABEL] = "true"
    template = {"metadata": {"labels": pod_labels, "annotations": annotations}, "spec": pod_spec}
    return _Pod(resource, labels, ports, template, claims, configmaps, secrets)


def _service(name: str, labels: Mapping[str, str], ports: list[int], headless: bool) -> Any:
    spec: dict[str, Any] = {"selector": selector_of(labels)}
    if headless:
        spec["clusterIP"] = "None"
    spec["ports"] = [{"name": f"tcp-{p}", "port": p, "targetPort": p, "protocol": "TCP"}
                     for p in ports]  # fmt: skip
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": dict(labels)}, "spec": spec}  # fmt: skip


def _workload(pod: _Pod, service: Mapping[str, Any], *, stateful: bool, name: str) -> list[Any]:
    if not pod.ports:
        raise UsageError(f"{where(name, 'ports')}: no port to serve on; declare the service's port")
    replicas = int((service.get("deploy") or {}).get("replicas") or 1)
    selector = selector_of(pod.labels)
    pod.template["spec"].update(spread(selector, replicas))
    spec: dict[str, Any] = {"replicas": replicas, "selector": {"matchLabels": selector},
                            "template": pod.template}  # fmt: skip
    metadata: dict[str, Any] = {"name": pod.resource, "labels": dict(pod.labels)}
    service_name = name_of(name) if stateful else pod.resource
    if stateful:
        workload = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata}
        # The headless Service that gives the pods their DNS names: the one rendered below.
        spec = {"serviceName": service_name, **spec}
        if pod.claims:
            spec["volumeClaimTemplates"] = pod.claims
    else:
        metadata["annotations"] = {REVISION_ANNOTATION: pod.template["metadata"]["annotations"][
            REVISION_ANNOTATION]}  # fmt: skip
        workload = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata}
        spec["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        }
    workload["spec"] = spec
    return [
        workload,
        *pod.objects,
        _service(service_name, pod.labels, pod.ports, stateful),
        *disruption_budget(pod.resource, pod.labels, selector, replicas),
    ]


def _job(pod: _Pod, revision: str) -> list[Any]:
    """A Job that runs once per revision (its name carries it) and is never retried."""
    pod.template["spec"]["restartPolicy"] = "Never"
    name = f"{pod.resource}-{name_of(revision)[:12]}".rstrip("-")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": dict(pod.labels),
                     "annotations": {REVISION_ANNOTATION: revision}},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
                 "template": pod.template},
    }  # fmt: skip
    return [job, *pod.objects]


def _managed(app: str, prod: ProdConfig, name: str, managed: Managed) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name_of(name),
            "labels": labels_of(app, name_of(name), prod.edition),
            "annotations": {"hotmode.dev/managed-database": f"the {name} companion is "
                            f"{managed.host}{':' + str(managed.port) if managed.port else ''}"},
        },
        "spec": {"type": "ExternalName", "externalName": managed.host},
    }  # fmt: skip


@dataclass
class Edition:
    """An edition's objects, and the Secrets its pods read, by how each is created."""

    objects: list[dict[str, Any]]
    secrets: dict[str, list[str]]
    jobs: list[str]


def edition(app: str, service_name: str, prod: ProdConfig, options: K8sOptions) -> Edition:
    """Every manifest of one edition, without a namespace (the overlay gives it)."""
    services = prod.services
    if service_name not in services:
        raise UsageError(f"the prod configuration has no service {service_name!r}")
    unknown = (options.stateful | {name for name, _ in options.managed}) - set(services)
    if unknown:
        raise UsageError(f"no companion named {sorted(unknown)[0]!r} in the prod configuration")
    app_service = services[service_name]
    jobs = job_names({service_name: app_service})
    if not app_service.get("image"):
        raise UsageError(
            f"{where(service_name, 'image')} is missing; a cluster runs images by name"
        )
    image, _ = built_image(app_service["image"], options.revision, options.registry)
    reaches: list[Reach] = []
    companions: list[dict[str, Any]] = []
    secrets: dict[str, list[str]] = {}
    for name in sorted(set(services) - jobs - {service_name}):
        service = services[name]
        port = options.ports.get(name) or next(
            (int(p["target"]) for p in service.get("ports") or [] if "target" in p), 0
        )
        if name in options.stateful:
            if not service.get("image"):
                raise UsageError(
                    f"{where(name, 'image')} is missing; a cluster runs images by name"
                )
            pod = _pod(app, prod, name, service, options, kind="companion",
                       image=qualified(str(service["image"])))  # fmt: skip
            companions += _workload(pod, service, stateful=True, name=name)
            secrets.update(pod.secrets)
            reaches.append(Reach(name, selector_of(pod.labels), pod.ports[0]))
            continue
        managed = managed_for(options.managed, name, prod.edition)
        if managed is None:
            # A placeholder host would deploy and go Ready while every database call fails.
            raise UsageError(
                f"the {name} companion needs a home in the cluster (edition {prod.edition}): "
                f"--managed {name}=HOST[:PORT] (a managed database) or --stateful {name} (a "
                "StatefulSet)"
            )
        companions.append(_managed(app, prod, name, managed))
        if port or managed.port:
            reaches.append(Reach(name, None, managed.port or port))
    pod = _pod(app, prod, service_name, app_service, options, kind="app", image=image,
               reaches=reaches)  # fmt: skip
    objects = _workload(pod, app_service, stateful=False, name=service_name)
    secrets.update(pod.secrets)
    job_objects: list[dict[str, Any]] = []
    for name in sorted(jobs):
        job = _pod(app, prod, name, services[name], options, kind="job", image=image,
                   reaches=reaches)  # fmt: skip
        job_objects += _job(job, options.revision)
        secrets.update(job.secrets)
    if jobs:
        objects[0]["metadata"]["labels"][AFTER_JOBS_LABEL] = "true"
    policies = network_policies(app, labels_of(app, "network", prod.edition),
                                selector_of(pod.labels), pod.ports, reaches)  # fmt: skip
    names = [d["metadata"]["name"] for d in job_objects if d["kind"] == "Job"]
    return Edition([*objects, *job_objects, *companions, *policies], secrets, names)


def edition_objects(
    app: str, service_name: str, prod: ProdConfig, options: K8sOptions
) -> list[dict[str, Any]]:
    """Every manifest of one edition, without a namespace (the overlay gives it)."""
    return edition(app, service_name, prod, options).objects
