"""`hotmode check --k8s`: prod's rules, read from Kubernetes manifests instead of Compose.

The manifests checked are each edition's objects as its overlay builds them; a rendered file on
disk that is stale or edited by hand is a finding too, since then the files are not what was
checked. Each rule mirrors a prod rule of `hotmode.audit.prod` (the id in its title) in the
form a pod spec gives it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hotmode.audit.model import Finding, Severity, findings_of
from hotmode.orchestrate.k8s_pod import is_qualified
from hotmode.orchestrate.k8s_workload import REVISION_ANNOTATION, is_credential

_RELOADERS = ("--reload", "watchfiles", "hupper", "watchgod")
_DEBUG = {"debug", "trace"}

# id -> (severity, title, fix)
RULES: dict[str, tuple[Severity, str, str]] = {
    "HM-K01": (Severity.HIGH, "Non-root with a fixed uid (HM-P05)",
               "Set runAsNonRoot: true and a non-zero runAsUser in the securityContext."),
    "HM-K02": (Severity.MEDIUM, "Read-only root filesystem with an emptyDir for /tmp (HM-P04)",
               "Set readOnlyRootFilesystem: true and mount an emptyDir at /tmp."),
    "HM-K03": (Severity.HIGH, "No privilege escalation, no capabilities, RuntimeDefault seccomp",
               "No privilege escalation, drop ALL capabilities, seccomp RuntimeDefault."),
    "HM-K04": (Severity.HIGH, "No host folder over the code and no reload (HM-P01, HM-P02)",
               "Remove hostPath volumes and --reload; the image carries the code."),
    "HM-K05": (Severity.MEDIUM, "The revision is the image tag and an annotation (HM-P06)",
               "Tag the image with the commit and annotate the pod with hotmode.dev/revision."),
    "HM-K06": (Severity.MEDIUM, "Probes, requests and limits",
               "Give the container readiness and liveness probes, resource requests and limits."),
    "HM-K07": (Severity.HIGH, "Credentials come from Secrets, never values (HM-P09)",
               "Move the value into a Secret and reference it (secretKeyRef, envFrom secretRef)."),
    "HM-K08": (Severity.MEDIUM, "A rollout never goes below the replicas asked for",
               "Use strategy RollingUpdate with maxUnavailable: 0."),
    "HM-K09": (Severity.MEDIUM, "No debug mode and no debug log level (HM-P07)",
               "Remove DEBUG=true and debug/trace log levels from prod."),
    "HM-K10": (Severity.HIGH, "The files on disk are what was checked",
               "Run `hotmode render --k8s` (or move hand edits into the declaration)."),
    "HM-K11": (Severity.MEDIUM, "Every image names its registry",
               "Render with --registry HOST[:PORT] (the app) and write companions' images in "
               "full (docker.io/library/postgres:16): a node's short-name policy must not "
               "decide where an image comes from."),
}  # fmt: skip

Hit = tuple[str, str]


def _containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _pod_hits(workload: Mapping[str, Any]) -> Iterator[Hit]:
    pod = workload["spec"]["template"]
    spec = pod.get("spec") or {}
    pod_context = spec.get("securityContext") or {}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for volume in volumes.values():
        if "hostPath" in volume:
            yield (
                "HM-K04",
                f"volume {volume['name']} is a hostPath ({volume['hostPath'].get('path')})",
            )
    annotation = (pod.get("metadata") or {}).get("annotations", {}).get(REVISION_ANNOTATION)
    # The app's release (its Deployment and its jobs) carries the revision; a companion's
    # StatefulSet does not, or every release would restart the database.
    released = workload["kind"] in ("Deployment", "Job")
    if released and not annotation:
        yield "HM-K05", f"the pod template has no {REVISION_ANNOTATION} annotation"
    if workload["kind"] == "StatefulSet" and annotation:
        yield "HM-K05", f"the StatefulSet's pod template carries {REVISION_ANNOTATION}"
    for container in _containers(pod):
        name = container.get("name", "?")
        context = {**pod_context, **(container.get("securityContext") or {})}
        if context.get("runAsNonRoot") is not True or int(context.get("runAsUser") or 0) == 0:
            yield "HM-K01", f"container {name} may run as root (runAsNonRoot/runAsUser)"
        if context.get("readOnlyRootFilesystem") is not True:
            yield "HM-K02", f"container {name}'s root filesystem is writable"
        tmp = [m for m in container.get("volumeMounts") or [] if m.get("mountPath") == "/tmp"]  # noqa: S108
        if not tmp or "emptyDir" not in volumes.get(tmp[0].get("name"), {}):
            yield "HM-K02", f"container {name} has no emptyDir at /tmp"
        if context.get("allowPrivilegeEscalation") is not False:
            yield "HM-K03", f"container {name} may gain privileges (allowPrivilegeEscalation)"
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            yield "HM-K03", f"container {name} keeps the default capabilities (drop ALL)"
        if (context.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            yield "HM-K03", f"container {name} runs without a seccomp profile"
        argv = " ".join(
            str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]
        )
        if any(word in argv for word in _RELOADERS):
            yield "HM-K04", f"container {name} reloads: {argv[:80]!r}"
        level = re.search(r"--log-level[= ]+(\w+)", argv)
        if level and level.group(1).lower() in _DEBUG:
            yield "HM-K09", f"container {name} asks for debug output"
        image = str(container.get("image", ""))
        if not is_qualified(image):
            yield "HM-K11", f"container {name}'s image {image} names no registry"
        if annotation and released and not image.endswith(f":{annotation}"):
            yield (
                "HM-K05",
                f"container {name}'s image {image} is not tagged with the revision {annotation}",
            )
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in container and workload["kind"] != "Job":
                yield "HM-K06", f"container {name} has no {probe}"
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            if not resources.get(kind):
                yield "HM-K06", f"container {name} has no resource {kind}"
        for variable in container.get("env") or []:
            if "value" in variable and is_credential(variable.get("name", "")):
                yield "HM-K07", f"container {name} sets {variable['name']} to a literal value"
    strategy = workload["spec"].get("strategy")
    if workload["kind"] == "Deployment":
        rolling = (strategy or {}).get("rollingUpdate") or {}
        if (strategy or {}).get("type", "RollingUpdate") != "RollingUpdate" or rolling.get(
            "maxUnavailable"
        ) not in (0, "0", "0%"):
            yield "HM-K08", "the rollout may take pods away before new ones are ready"


def _document_hits(document: Mapping[str, Any]) -> Iterator[Hit]:
    kind = document.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield from _pod_hits(document)
    if kind == "ConfigMap":
        for key, value in (document.get("data") or {}).items():
            if is_credential(key):
                yield "HM-K07", f"ConfigMap {document['metadata']['name']} holds {key}"
            if key.upper() == "DEBUG" and str(value).lower() in ("1", "true", "yes", "on"):
                yield "HM-K09", f"{key}={value} in ConfigMap {document['metadata']['name']}"
            if key.upper().endswith("LOG_LEVEL") and str(value).lower() in _DEBUG:
                yield "HM-K09", f"{key}={value} in ConfigMap {document['metadata']['name']}"


def audit(
    label: str, documents: Sequence[Mapping[str, Any]], where: Path, stale: Sequence[Path] = ()
) -> list[Finding]:
    """Findings for one edition's objects; `stale` are rendered files that differ on disk."""
    hits: list[tuple[Hit, Path]] = [
        ((r, m), where) for d in documents for r, m in _document_hits(d)
    ]
    hits += [(("HM-K10", f"{path.name} is stale or edited by hand"), path) for path in stale]
    return findings_of(RULES, label, [(rule, message, path) for (rule, message), path in hits])
