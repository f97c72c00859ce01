"""Kubernetes manifests from the prod configuration: `hotmode render --k8s`.

Each edition's objects (`hotmode.orchestrate.k8s_workload`) become plain manifests in a
Kustomize tree: the default edition is the base; every edition has an overlay, in a namespace
of its own held to the `restricted` Pod Security level, whose patches are computed as the
difference from the base, so one source of truth gives both. Each overlay's kustomization says,
in comments, the `kubectl create secret` command of every Secret its pods read (hotmode never
writes a secret's value into a manifest) and, with jobs, the order in which to apply it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hotmode.compose.prod import ProdConfig, merge
from hotmode.compose.render import has_header, with_header
from hotmode.config import Config
from hotmode.errors import UsageError
from hotmode.orchestrate.k8s_policy import (
    AFTER_JOBS_LABEL,
    EDITION_LABEL,
    POD_SECURITY,
    secret_commands,
)
from hotmode.orchestrate.k8s_workload import (
    REVISION_ANNOTATION,
    K8sOptions,
    built_image,
    edition,
    edition_objects,
    env_file_secret,
    is_credential,
)

__all__ = [
    "REVISION_ANNOTATION",
    "K8sOptions",
    "edition_objects",
    "env_file_secret",
    "expected_objects",
    "is_credential",
    "patch_diff",
    "render_tree",
]

FOLDER = "k8s"
# Lists that strategic merge patches merge by a key; every other list is replaced whole.
_MERGE_KEYS = {
    "containers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "env": "name",
    "ports": "containerPort",
}


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
    base = edition(app, service_name, base_prod, options).objects
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
    image = base_prod.services[service_name].get("image")
    if image:
        # `kustomize edit set image` (or a CI step) moves the app to another tag or registry.
        _, repository = built_image(image, options.revision, options.registry)
        base_kustomization["images"] = [
            {"name": repository, "newName": repository, "newTag": options.revision}
        ]
    files["base/kustomization.yaml"] = _dump([base_kustomization])
    for prod in editions:
        found = edition(app, service_name, prod, options)
        objects = found.objects
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
        files[f"overlays/{prod.edition}/kustomization.yaml"] = _how_to_apply(
            prod, found.secrets, found.jobs
        ) + _dump([kustomization])
    return files


def _how_to_apply(
    prod: ProdConfig, secrets: Mapping[str, Sequence[str]], jobs: Sequence[str]
) -> str:
    """Comment lines: the Secrets to create first, and the order of the apply with jobs."""
    namespace = prod.project
    lines = [f"# From the deployment folder: kubectl apply -k k8s/overlays/{prod.edition}"]
    if secrets:
        lines += [
            "# The Secrets its pods read, never written here: create each first, from the",
            "# deployment folder (a literal's value comes from your shell):",
            f"#   kubectl create namespace {namespace}",
            *(f"#   {command}" for command in secret_commands(namespace, secrets)),
            "# A Secret read as environment reaches running pods at their next start:",
            f"#   kubectl -n {namespace} rollout restart deployment statefulset",
        ]
    if jobs:
        lines += [
            "# Jobs run before the app's new pods: apply all but the app, wait, then the app",
            "# (a failed job stops there, and `kubectl wait` names it):",
            f"#   kubectl apply -k k8s/overlays/{prod.edition} -l '{AFTER_JOBS_LABEL}!=true'",
            *(f"#   kubectl -n {namespace} wait --for=condition=complete --timeout=30m job/{job}"
              for job in jobs),
            f"#   kubectl apply -k k8s/overlays/{prod.edition}",
        ]  # fmt: skip
    return "\n".join(lines) + "\n"


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
        "metadata": {"name": prod.project, "labels": {EDITION_LABEL: prod.edition, **POD_SECURITY}},
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
