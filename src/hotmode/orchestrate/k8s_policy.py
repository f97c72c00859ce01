"""What a cluster needs around an edition's workloads: where its managed databases are, who may
talk to whom, how many pods a drain may take, how replicas spread, and the namespace's rules.

Pure functions returning manifests (or the parsed `--managed` option). A managed database is
reached by a DNS name only (an ExternalName Service holds no address and no URL), and its port
replaces the declared one in the app's settings. The network is closed by default: the app takes
connections on its ports, and the app and its jobs reach their companions and DNS, nothing else.
A PodDisruptionBudget is rendered only where it protects something (more than one replica).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hotmode.errors import UsageError

EDITION_LABEL = "hotmode.dev/edition"
# Pods that reach the companions (the app and its jobs); the companions take only them.
CLIENT_LABEL = "hotmode.dev/client"
# On the app's Deployment when jobs run before it: `kubectl apply -l 'hotmode.dev/after-jobs!=true'`
# applies everything else first.
AFTER_JOBS_LABEL = "hotmode.dev/after-jobs"
CHECKSUM_ANNOTATION = "hotmode.dev/config-checksum"
# The namespace's Pod Security admission: every pod hotmode renders meets `restricted`.
POD_SECURITY = {
    f"pod-security.kubernetes.io/{mode}": value
    for mode in ("enforce", "audit", "warn")
    for value in ("restricted",)
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Managed:
    """A managed database: its DNS name and, if it is not the declared one, its port."""

    host: str
    port: int | None = None


def _host(given: str, option: str) -> str:
    host = given.removesuffix(".")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        raise UsageError(
            f"--managed {option!r}: {host} is an address; an ExternalName Service takes a DNS "
            "name only (give the database's host name)"
        )
    labels = host.split(".")
    if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise UsageError(
            f"--managed {option!r}: {given!r} is not a DNS name (lower-case letters, digits, "
            "'-' and '.'; no scheme, path or user), e.g. --managed postgres=db.internal:5432"
        )
    return host


def parse_managed(options: Iterable[str]) -> dict[tuple[str, str | None], Managed]:
    """`NAME[@EDITION]=DNS[:PORT]` options, keyed by (companion, edition or None for all)."""
    found: dict[tuple[str, str | None], Managed] = {}
    for option in options:
        key, _, value = option.partition("=")
        name, at, edition = key.partition("@")
        if not name or not value or (at and not edition):
            raise UsageError(
                f"--managed {option!r} is not NAME[@EDITION]=DNS[:PORT]; e.g. --managed "
                "postgres=db.internal or --managed postgres@saas=db-saas.internal:6432"
            )
        if any(mark in value for mark in "/@?#"):
            # A URL or a user: the scheme's colon must not be read as a port's.
            raise UsageError(
                f"--managed {option!r}: {value!r} is not a DNS name (lower-case letters, "
                "digits, '-' and '.'; no scheme, path or user), e.g. --managed "
                "postgres=db.internal:5432"
            )
        host, colon, port = value.rpartition(":") if ":" in value else (value, "", "")
        if colon and (not port.isdigit() or not 0 < int(port) < 65536):
            raise UsageError(f"--managed {option!r}: {port!r} is not a port (1-65535)")
        found[(name, edition or None)] = Managed(_host(host, option), int(port) if colon else None)
    return found


def managed_for(
    managed: Mapping[tuple[str, str | None], Managed], name: str, edition: str
) -> Managed | None:
    """The managed database of `name` in `edition`: its edition's own, else every edition's."""
    return managed.get((name, edition)) or managed.get((name, None))


def with_port(value: str, host: str, declared: int, port: int) -> str:
    """`value` with `host:declared` (a URL's authority) moved to `port`."""
    return re.sub(rf"(?<![\w.-]){re.escape(host)}:{declared}(?!\d)", f"{host}:{port}", value)


def checksum(documents: Sequence[Mapping[str, Any]]) -> str:
    """A digest of ConfigMaps' data: on the pod template, so a change rolls the pods."""
    data = [d.get("data") or {} for d in documents]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def spread(selector: Mapping[str, str], replicas: int) -> dict[str, Any]:
    """With replicas, pods prefer other nodes and spread across zones; one pod needs neither."""
    if replicas < 2:
        return {}
    return {
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": dict(selector)},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(selector)},
            }
        ],
    }


def disruption_budget(
    name: str, labels: Mapping[str, str], selector: Mapping[str, str], replicas: int
) -> list[dict[str, Any]]:
    """A drain takes one pod at a time while others serve; with one replica a budget would
    protect nothing (`maxUnavailable: 1`) or block every drain (`minAvailable: 1`): none."""
    if replicas < 2:
        return []
    return [
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}},
        }
    ]


def _tcp(ports: Iterable[int]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in sorted(set(ports))]


@dataclass(frozen=True)
class Reach:
    """A companion the clients reach: its pods' labels if it runs in the namespace (None for a
    managed database outside), and its port."""

    name: str
    selector: Mapping[str, str] | None
    port: int


def network_policies(
    app: str,
    labels: Mapping[str, str],
    app_selector: Mapping[str, str],
    app_ports: Sequence[int],
    reaches: Sequence[Reach],
) -> list[dict[str, Any]]:
    """Default deny; the app takes connections on its ports; clients reach DNS and companions;
    each companion in the namespace takes connections from the clients only."""

    def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": spec,
        }

    clients = {"matchLabels": {"app.kubernetes.io/name": app, CLIENT_LABEL: "true"}}
    dns = {
        "to": [{"namespaceSelector": {}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    egress: list[dict[str, Any]] = [dns]
    for reach in reaches:
        if reach.selector is None:
            # A managed database is outside the cluster, at an address its DNS name gives.
            egress.append({"ports": _tcp([reach.port])})
        else:
            egress.append(
                {"to": [{"podSelector": {"matchLabels": dict(reach.selector)}}],
                 "ports": _tcp([reach.port])}
            )  # fmt: skip
    policies = [
        policy(f"{app}-default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy(app, {"podSelector": {"matchLabels": dict(app_selector)},
                     "policyTypes": ["Ingress"], "ingress": [{"ports": _tcp(app_ports)}]}),
        policy(f"{app}-clients", {"podSelector": clients, "policyTypes": ["Egress"],
                                  "egress": egress}),
    ]  # fmt: skip
    for reach in reaches:
        if reach.selector is not None:
            policies.append(
                policy(f"{app}-{reach.name}", {
                    "podSelector": {"matchLabels": dict(reach.selector)},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": clients}],
                                 "ports": _tcp([reach.port])}],
                })
            )  # fmt: skip
    return policies


def secret_commands(namespace: str, secrets: Mapping[str, Sequence[str]]) -> list[str]:
    """The `kubectl create secret` command of each Secret the pods read, by what it is made of
    (`--from-env-file=FILE`, `--from-file=KEY=FILE`, `--from-literal=KEY=...`)."""
    return [
        f"kubectl -n {namespace} create secret generic {name} {' '.join(sources)}"
        for name, sources in sorted(secrets.items())
    ]
