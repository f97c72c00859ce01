"""The companion services of an adopted project, as `[services.NAME]` tables.

What sits beside the app in the team's merged configurations (a database, a cache) becomes a
declared companion: its image, command, environment, data volumes, read-only mounts (init
scripts), ports, healthcheck and user. Two things change on purpose and are reported: a
credential in the environment becomes a secret file (`NAME_FILE`, the official images'
convention; the old default stays as a dev-only value), and the app's settings that name the
companion (`DATABASE_URL`) name it through `{host}` and `{port}`, without an inline password.
Data continuity: each mode keeps the real name of the data volume it used, so the team's data is
still there after `hotmode up`; a name hotmode cannot keep is returned as a rename.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotmode.adopt.old import OldMode, named_volumes

_SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|PASSPHRASE|PRIVATE_KEY", re.IGNORECASE)
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")
_INLINE_PASSWORD = re.compile(r"(://[^/@:\s]+):[^/@\s]+@")


@dataclass
class Companions:
    """The tables, and what adoption says about them."""

    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    app_env: dict[str, dict[str, str]] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    not_carried: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)


def _services(mode: OldMode | None) -> Mapping[str, Any]:
    return ((mode.merged or {}).get("services") or {}) if mode else {}


def _healthcheck(check: Mapping[str, Any]) -> dict[str, Any] | None:
    test = list(check.get("test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        test = test[1:]
    elif test[0] == "CMD-SHELL":
        test = ["sh", "-c", " ".join(test[1:])]
    table: dict[str, Any] = {"test": test}
    for key in ("interval", "timeout", "start_period"):
        if isinstance(check.get(key), str) and _DURATION.match(check[key]):
            table[key] = check[key]
    if isinstance(check.get("retries"), int) and check["retries"] > 0:
        table["retries"] = check["retries"]
    return table


def _spec(
    name: str, service: Mapping[str, Any], root: Path, found: Companions
) -> tuple[dict[str, Any], dict[str, str]]:
    """The companion's table, and its dev-only secret values."""
    spec: dict[str, Any] = {"image": service["image"]}
    if service.get("command"):
        spec["command"] = [str(part) for part in service["command"]]
    if service.get("user"):
        spec["user"] = str(service["user"])
    env: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for key, value in sorted((service.get("environment") or {}).items()):
        if _SECRET.search(key) and not key.upper().endswith("_FILE"):
            secret = key.lower()
            secrets[secret] = "" if value is None else str(value)
            env[f"{key}_FILE"] = f"{{secrets}}/{secret}"
            found.changed.append(
                f"{name}: {key} -> {key}_FILE, the secret file deployment/secrets/{secret} "
                "(HM-P09: no credential in the environment; the old value is dev's only)"
            )
        else:
            env[key] = "" if value is None else str(value)
    if env:
        spec["environment"] = env
    if secrets:
        spec["secrets"] = sorted(secrets)
    mounts = {}
    for volume in service.get("volumes") or []:
        source = Path(str(volume.get("source", "")))
        if volume.get("type") != "bind":
            continue
        if volume.get("read_only") and source.exists() and source.is_relative_to(root):
            mounts[source.relative_to(root).as_posix()] = volume["target"]
        else:
            found.not_carried.append(f"{name}: the writable bind mount {source}")
    if mounts:
        spec["mounts"] = mounts
    ports = service.get("ports") or []
    if ports:
        spec["port"] = int(ports[0]["target"])
    if (check := _healthcheck(service.get("healthcheck") or {})) is not None:
        spec["healthcheck"] = check
    return spec, secrets


def _modes(
    modes: Sequence[OldMode], mode: str, default: str
) -> tuple[OldMode | None, list[OldMode]]:
    """The default edition's old mode, and the other editions' of the same mode."""
    first = next((m for m in modes if m.mode == mode and m.edition == default and m.merged), None)
    return first, [m for m in modes if m.mode == mode and m is not first and m.merged]


def infer(
    modes: Sequence[OldMode], app: str, root: Path, default: str, *, roles: Mapping[str, Any]
) -> Companions:
    """Every companion of the old modes, its data volumes named as each mode named them."""
    found = Companions()
    prod, prod_others = _modes(modes, "prod", default)
    dev, dev_others = _modes(modes, "dev", default)
    reference = prod or dev
    if reference is None:
        return found
    app_env = dict(_services(reference).get(app, {}).get("environment") or {})
    for name, service in sorted(_services(reference).items()):
        if name == app:
            continue
        role = roles.get(name)
        if role is None or role.kind.value != "companion" or not service.get("image"):
            what = role.kind.value if role is not None else "service"
            found.not_carried.append(
                f"service {name} ({what}): hotmode declares the app and its companions only"
            )
            continue
        spec, secrets = _spec(name, service, root, found)
        volumes: dict[str, dict[str, Any]] = {}
        for mode, first, others in (("prod", prod, prod_others), ("dev", dev, dev_others)):
            this = _services(first).get(name) if first else None
            if first is None or this is None:
                continue
            names = named_volumes(first.merged or {}, this)
            table = {
                f"data{i}" if i else "data": {"target": target, "name": real, "shared": True}
                for i, (target, real) in enumerate(sorted(names.items()))
            }
            if table:
                volumes[mode] = {"volumes": table}
            for other in others:
                theirs = named_volumes(other.merged or {}, _services(other).get(name) or {})
                for target, real in sorted(theirs.items()):
                    if names.get(target) != real:
                        found.renamed.append(
                            f"{other.label}: {name}'s volume {real} -> {names.get(target)}"
                        )
        ports = [
            str(p["published"]) if str(p["published"]) == str(p.get("target"))
            else f"{p['published']}:{p.get('target')}"
            for p in this_ports(service)
        ]  # fmt: skip
        if ports:
            spec["ports"] = ports
            found.changed.append(f"{name}: ports {', '.join(ports)} bound to 127.0.0.1 (CL-0005)")
        found.tables[name] = spec
        if secrets or "dev" in volumes:
            dev_table = dict(volumes.get("dev", {}))
            if secrets:
                dev_table["secrets"] = secrets
            found.tables[f"{name}.dev"] = dev_table
        if "prod" in volumes:
            found.tables[f"{name}.prod"] = volumes["prod"]
        carried = _app_env(name, spec.get("port"), app_env, found)
        if carried:
            spec["app_env"] = carried
    return found


def this_ports(service: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in service.get("ports") or [] if str(p.get("published", "")).isdigit()]


def _app_env(
    name: str, port: int | None, app_env: Mapping[str, Any], found: Companions
) -> dict[str, str]:
    """The app's settings that name the companion, with `{host}` and `{port}` in its place."""
    carried = {}
    for key, value in sorted(app_env.items()):
        text = "" if value is None else str(value)
        if not re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", text):
            continue
        if port:
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}:{port}\b", "{host}:{port}", text)
        text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", "{host}", text)
        if _INLINE_PASSWORD.search(text):
            text = _INLINE_PASSWORD.sub(r"\1@", text)
            found.changed.append(
                f"app: {key} keeps no inline password (CL-0021); give the app the secret file"
            )
        carried[key] = text
    return carried
