"""The companion services of an adopted project, as `[services.NAME]` tables.

What sits beside the app in the team's merged configurations (a database, a cache) becomes a
declared companion: its image, command, environment, data volumes, read-only mounts (init
scripts), ports, healthcheck and user, plus what its image needs to start hardened and natively
(`hotmode.adopt.images`). Things that change on purpose are reported: a credential in the
environment becomes a secret file (`NAME_FILE`, where the image reads one; the old default stays
as a dev-only value), and the app's settings that name the companion (`DATABASE_URL`) name it
through `{host}` and `{port}`, its password through `{secret:NAME}`, so the app still gets a
whole URL.

Data continuity: each companion keeps, per mode and edition, the real name of the data volume it
used (`names = { EDITION = "..." }`), so the team's data is still there after `hotmode up`. A
volume that two places used (dev on prod's data, two services on one volume) stays with the first
(prod before dev, the default edition first) and the others get their own, said in the report,
unless `share_data` keeps it shared on purpose.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotmode.adopt import images
from hotmode.adopt.old import OldMode
from hotmode.adopt.settings import Named, named_in_source

_SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|PASSPHRASE|PRIVATE_KEY|_PASS$|_PWD$", re.IGNORECASE)
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")
_INLINE_PASSWORD = re.compile(r"(?P<user>://[^/@:\s]+):(?P<password>[^/@\s]+)@")


@dataclass
class Companions:
    """The tables, and what adoption says about them."""

    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    app_env: dict[str, dict[str, str]] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    not_carried: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


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


def _secret_env(
    name: str, service: Mapping[str, Any], known: images.Known | None, found: Companions
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(prod environment, dev-only environment, secrets with their dev values)."""
    env: dict[str, str] = {}
    dev_env: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for key, value in sorted((service.get("environment") or {}).items()):
        text = "" if value is None else str(value)
        if not _SECRET.search(key) or key.upper().endswith("_FILE"):
            env[key] = text
        elif known is not None and known.secret_files:
            secret = key.lower()
            secrets[secret] = text
            env[f"{key}_FILE"] = f"{{secrets}}/{secret}"
            found.changed.append(
                f"{name}: {key} -> {key}_FILE, the secret file deployment/secrets/{secret} "
                "(HM-P09: no credential in the environment; the old value is dev's only)"
            )
        else:
            # The image reads no NAME_FILE: the value comes from the deployment's .env (git-
            # ignored), never from a file hotmode renders.
            env[key] = f"${{{key}}}"
            found.changed.append(
                f"{name}: {key} comes from {key} in the deployment's .env, in every mode (the "
                "image reads no secret file); write it there"
            )
    return env, dev_env, secrets


def _spec(
    name: str, service: Mapping[str, Any], root: Path, found: Companions
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The companion's table, its dev-only secret values and its dev-only environment."""
    image = str(service.get("image") or built_from(service) or "")
    known = images.known(image)
    spec: dict[str, Any] = {"image": image}
    build = service.get("build")
    if not service.get("image") and isinstance(build, dict):
        # Built from the team's own Dockerfile over a known server's image: built as it was.
        context = Path(str(build.get("context", "")))
        spec = {"build": {"context": os.path.relpath(context, root)}}
        if build.get("dockerfile") not in (None, "Dockerfile"):
            spec["build"]["dockerfile"] = str(build["dockerfile"])
        found.changed.append(
            f"{name}: built from {spec['build']['context']}/ as before (its Dockerfile starts "
            f"FROM {image})"
        )
        if _adds(build):
            found.not_carried.append(
                f"{name}: natively, {known.family if known else image} runs from Debian's "
                f"packages, without what {spec['build']['context']}/'s Dockerfile adds to {image}"
            )
    if service.get("command"):
        spec["command"] = [str(part) for part in service["command"]]
    user = service.get("user") or (known.user if known else None)
    if user:
        spec["user"] = str(user)
    env, dev_env, secrets = _secret_env(name, service, known, found)
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
    elif known is not None and known.port:
        spec["port"] = known.port
    check = _healthcheck(service.get("healthcheck") or {})
    if check is None and known is not None and known.healthcheck is not None:
        check = {"test": known.healthcheck(env)}
        found.changed.append(f"{name}: a health check ({' '.join(check['test'])}), the app waits")
    if check is not None:
        spec["healthcheck"] = check
    if known is None:
        spec["hardened"] = False
        found.changed.append(
            f"{name}: {image} is an image hotmode does not know: kept as it was (not "
            "hardened: no read-only root, its capabilities kept; the waivers say why)"
        )
        return spec, secrets, dev_env
    old_tmpfs = [str(t).split(":", 1)[0] for t in service.get("tmpfs") or []]
    # A folder the team mounts a volume on keeps its volume, not a tmpfs over it.
    mounted = {str(v.get("target")) for v in service.get("volumes") or []}
    spec["tmpfs"] = [t for t in dict.fromkeys([*known.tmpfs, *old_tmpfs]) if t not in mounted]
    if not known.read_only:
        spec["read_only"] = False
    if known.cap_add:
        spec["cap_add"] = list(known.cap_add)
    if known.why:
        spec["waivers"] = dict(known.why)
    native = known.native(env) if known.native is not None else None
    if native is not None:
        spec["native"] = native
    found.changed.append(
        f"{name}: hardened as {known.family} starts: user {user or 'the image default'}, tmpfs "
        f"{', '.join(spec['tmpfs'])}"
        + (", a native command from Debian's packages" if native else "")
        + (
            " (no native command: it declares no password secret, and natively any local "
            "user would get in)"
            if known.native is not None and native is None
            else ""
        )
    )
    return spec, secrets, dev_env


def _modes(
    modes: Sequence[OldMode], mode: str, default: str
) -> tuple[OldMode | None, list[OldMode]]:
    """The default edition's old mode, and the other editions' of the same mode."""
    first = next((m for m in modes if m.mode == mode and m.edition == default and m.merged), None)
    return first, [m for m in modes if m.mode == mode and m is not first and m.merged]


def built_from(service: Mapping[str, Any]) -> str | None:
    """The image a service's own Dockerfile starts from, when it is a server hotmode knows
    (`FROM postgres:16` in ./db): such a build is that server, with the team's additions."""
    from hotmode.audit.build import read_dockerfile

    build = service.get("build")
    dockerfile = read_dockerfile(build) if isinstance(build, dict) else None
    if dockerfile is None or not isinstance(build, dict):
        return None
    base = dockerfile.base_image(build.get("target"), build.get("args") or {})
    return base if base and images.known(base) is not None else None


def _adds(build: Mapping[str, Any]) -> bool:
    """True when the build's Dockerfile does more than start FROM its base image."""
    from hotmode.audit.build import read_dockerfile

    dockerfile = read_dockerfile(build)
    chain = dockerfile.chain(build.get("target")) if dockerfile is not None else []
    return any(stage.instructions for stage in chain)


def _data(mode: OldMode, service: str) -> dict[str, tuple[str, str]]:
    """The named volumes a service mounts in one old mode: target -> (key, real name)."""
    document = mode.merged or {}
    declared = document.get("volumes") or {}
    this = (document.get("services") or {}).get(service) or {}
    used = {}
    for volume in this.get("volumes") or []:
        key = volume.get("source")
        if volume.get("type") == "volume" and key:
            used[volume["target"]] = (key, (declared.get(key) or {}).get("name") or key)
    return used


def _volume_key(name: str, key: str, taken: dict[str, str]) -> str:
    """A declaration key for a companion's volume, no other service's."""
    key = re.sub(r"[^a-z0-9_-]+", "-", key.lower()).strip("-_") or "data"
    if taken.get(key, name) != name:
        key = f"{name}-{key}"
    taken[key] = name
    return key


def _volumes(
    names: Sequence[str],
    ordered: Sequence[OldMode],
    known: Mapping[str, images.Known | None],
    found: Companions,
    share_data: bool,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every companion's `volumes` table per mode: each target with its names per edition."""
    taken: dict[str, str] = {"logs": "the app", "cache": "the app"}
    places: dict[str, list[tuple[str, str, str, str]]] = {}  # real -> (service, mode, ed., target)
    keys: dict[tuple[str, str], str] = {}
    for old in ordered:
        for name in names:
            for target, (key, real) in sorted(_data(old, name).items()):
                if (name, target) not in keys:
                    keys[name, target] = _volume_key(name, key, taken)
                places.setdefault(real, []).append((name, old.mode, old.edition, target))
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    for real, used in places.items():
        first = used[0]
        # Editions of one mode that shared a volume keep sharing it (as they ran); dev on prod's
        # data, or two services on one volume, do not, unless asked.
        keep = [u for u in used if u[:2] == first[:2] or (share_data and u[0] == first[0])]
        for name, mode, edition, _ in (u for u in keep if u[1] != first[1]):
            found.changed.append(
                f"{mode} {edition}: {name}'s volume {real} is also {first[0]} {first[1]} "
                f"{first[2]}'s; kept shared, as --share-data asks: {mode} {edition} writes into "
                f"{first[1]} {first[2]}'s data"
            )
        for name, mode, edition, target in keep:
            volume = tables.setdefault(name, {}).setdefault(mode, {})
            entry = volume.setdefault(keys[name, target], {"target": target, "names": {}})
            entry["names"][edition] = real
            if len(keep) > 1:
                entry["shared"] = True
            found.kept.append(f"{name}: {mode} {edition} keeps its volume {real}")
        for name, mode, edition, _ in (u for u in used if u not in keep):
            found.changed.append(
                f"{mode} {edition}: {name}'s volume {real} is also {first[0]} {first[1]} "
                f"{first[2]}'s; {mode} {edition} gets a volume of its own and {real} stays "
                f"{first[1]} {first[2]}'s (init --share-data keeps them shared)"
            )
    # A mode that had no volume where another mode kept data gets one of its own.
    for (name, target), key in keys.items():
        for which in ("prod", "dev"):
            volume = tables.setdefault(name, {}).setdefault(which, {})
            volume.setdefault(key, {"target": target})
    for name, kind in known.items():
        targets = {Path(t) for (n, t) in keys if n == name}
        # A volume at the data folder, below it (PGDATA=/var/lib/postgresql/data/pgdata) or
        # above it already keeps the data.
        holds = (
            kind is not None
            and kind.data
            and any(
                t == Path(kind.data)
                or t.is_relative_to(kind.data)
                or Path(kind.data).is_relative_to(t)
                for t in targets
            )
        )
        if kind is not None and kind.data and not holds:
            key = _volume_key(name, "data", taken)
            for which in ("prod", "dev"):
                tables.setdefault(name, {}).setdefault(which, {})[key] = {"target": kind.data}
            folders = _bound_data(ordered, name, Path(kind.data))
            before = (
                f"its data was the host folder {', '.join(folders)}, bind-mounted; that folder "
                "is left as it is and the new volume starts empty: copy the data in to keep it"
                if folders
                else "its data lived in the container and went with it"
            )
            found.changed.append(
                f"{name}: a data volume at {kind.data}, one per mode and edition (before, {before})"
            )
    return tables


def _bound_data(ordered: Sequence[OldMode], service: str, data: Path) -> list[str]:
    """The host folders a service bind-mounts at (or above, or below) its data folder."""
    folders: list[str] = []
    for mode in ordered:
        this = ((mode.merged or {}).get("services") or {}).get(service) or {}
        for volume in this.get("volumes") or []:
            target = Path(str(volume.get("target", "")))
            at_data = target == data or target.is_relative_to(data) or data.is_relative_to(target)
            source = str(volume.get("source", ""))
            if volume.get("type") == "bind" and at_data and source not in folders:
                folders.append(source)
    return folders


def infer(
    modes: Sequence[OldMode],
    app: str,
    root: Path,
    default: str,
    *,
    roles: Mapping[str, Any],
    share_data: bool = False,
    jobs: Collection[str] = (),
    source: Path | None = None,
) -> Companions:
    """Every companion of the old modes, its data volumes named as each mode x edition named
    them, no volume mounted by two places that did not share it."""
    found = Companions()
    prod, prod_others = _modes(modes, "prod", default)
    dev, dev_others = _modes(modes, "dev", default)
    reference = prod or dev
    if reference is None:
        return found
    app_env = dict(_services(reference).get(app, {}).get("environment") or {})
    chosen: dict[str, Mapping[str, Any]] = {}
    # A companion of one mode only (dev's database, the prod file holding only the app) too.
    everywhere = {
        name: service
        for mode in (*reversed(dev_others), dev, *reversed(prod_others), prod)
        for name, service in _services(mode).items()
    }
    for name, service in sorted(everywhere.items()):
        if name == app or name in jobs:
            continue
        role = roles.get(name)
        image = service.get("image") or built_from(service)
        if role is None or role.kind.value != "companion" or not image:
            what = role.kind.value if role is not None else "service"
            found.not_carried.append(
                f"service {name} ({what}): hotmode declares the app and its companions only"
            )
            continue
        chosen[name] = service
    ordered = [m for m in (prod, *prod_others, dev, *dev_others) if m is not None]
    known = {
        name: images.known(str(service.get("image") or built_from(service)))
        for name, service in chosen.items()
    }
    volumes = _volumes(sorted(chosen), ordered, known, found, share_data)
    for name, service in chosen.items():
        spec, secrets, dev_env = _spec(name, service, root, found)
        ports = [
            str(p["published"]) if str(p["published"]) == str(p.get("target"))
            else f"{p['published']}:{p.get('target')}"
            for p in this_ports(service)
        ]  # fmt: skip
        if ports:
            spec["ports"] = ports
            found.changed.append(f"{name}: ports {', '.join(ports)} bound to 127.0.0.1 (CL-0005)")
        native = spec.pop("native", None)
        named = named_in_source(source, name, spec.get("port")) if source else Named()
        from_source = {k: v for k, v in named.variables.items() if k not in app_env}
        carried = _app_env(name, spec, secrets, {**from_source, **app_env}, found)
        carried.update({v: "{port}" for v in named.ports if v not in app_env and carried})
        for variable, default in sorted(named.passwords.items()):
            # The app's password setting, defaulted to the companion's: natively the companion
            # has a generated one, so the app is told it, as it is told the host.
            secret = next((k for k, v in sorted(secrets.items()) if v == default), None)
            if secret and carried and variable not in app_env:
                carried[variable] = f"{{secret:{secret}}}"
                found.changed.append(
                    f"app: {variable} (its settings default it to {name}'s password) is the "
                    f"secret file deployment/secrets/{secret}, in every mode"
                )
        for variable in sorted(set(from_source) & set(carried)):
            found.changed.append(
                f"app: {variable} (its settings default it to {name}'s Compose host) is set to "
                f"where {name} runs, in every mode"
            )
        found.not_carried += [
            f"app: {place} names {name}'s Compose host in a URL that no variable overrides: "
            f"natively it does not reach {name}; make the app read it from a variable"
            for place in named.places
        ]
        if carried:
            spec["app_env"] = carried
        found.tables[name] = spec
        mine = volumes.get(name, {})
        dev_table: dict[str, Any] = {}
        if "dev" in mine:
            dev_table["volumes"] = mine["dev"]
        dev_values = _dev_values(secrets, _services(dev).get(name) or {})
        if dev_values:
            dev_table["secrets"] = dev_values
        for secret in sorted(set(secrets) - set(dev_values)):
            found.changed.append(
                f"{name}: the secret {secret} had no value; dev reads deployment/secrets/{secret}"
                " too: write it there"
            )
        if dev_env:
            dev_table["environment"] = dev_env
        if dev_table:
            found.tables[f"{name}.dev"] = dev_table
        if "prod" in mine:
            found.tables[f"{name}.prod"] = {"volumes": mine["prod"]}
        if native is not None:
            found.tables[f"{name}.native"] = native
    return found


def _dev_values(secrets: Mapping[str, str], dev: Mapping[str, Any]) -> dict[str, str]:
    """Each secret's dev value: what dev's own files gave the variable (`NAME` for the secret
    `name`), else the value the reference mode had. Dev's data was made with dev's password."""
    given = {str(k).lower(): v for k, v in (dev.get("environment") or {}).items()}
    values = {k: str(given[k]) if given.get(k) else v for k, v in secrets.items()}
    return {k: v for k, v in values.items() if v}


def dev_url(template: str, name: str, port: object, secrets: Mapping[str, str]) -> str:
    """An `app_env` value as dev gets it in Docker: the companion's name and port, the secret's
    dev value in the URL."""
    text = template.replace("{host}", name).replace("{port}", str(port))
    for secret, value in secrets.items():
        text = text.replace(f"{{secret:{secret}}}", value)
    return text


def this_ports(service: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in service.get("ports") or [] if str(p.get("published", "")).isdigit()]


def _app_env(
    name: str,
    spec: dict[str, Any],
    secrets: dict[str, str],
    app_env: Mapping[str, Any],
    found: Companions,
) -> dict[str, str]:
    """The app's settings that name the companion, with `{host}` and `{port}` in its place and
    a URL's password named as the secret that holds it (`{secret:NAME}`)."""
    port = spec.get("port")
    carried = {}
    for key, value in sorted(app_env.items()):
        text = "" if value is None else str(value)
        if not re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", text):
            continue
        if port:
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}:{port}\b", "{host}:{port}", text)
            # A URL's host with no port (`@db/name`) meant the default port, which is the
            # companion's own only in Docker: natively it runs wherever a port is free.
            text = (
                re.sub(rf"(?<=[@/]){re.escape(name)}(?=[/?]|$)", "{host}:{port}", text)
                if "://" in text
                else text
            )
        # Not a URL's scheme (`redis://redis:6379`) nor its user (`postgres:pw@postgres`): a
        # service is often named after its protocol and its default user.
        text = re.sub(
            rf"(?<![\w.-]){re.escape(name)}(?![\w.-]|://|(?::[^/@\s]*)?@)", "{host}", text
        )
        match = _INLINE_PASSWORD.search(text)
        if match:
            password = match.group("password")
            secret = next((s for s, v in sorted(secrets.items()) if v == password), None)
            if secret is None:
                secret = f"{key.lower()}_password"
                secrets[secret] = password
                spec["secrets"] = sorted({*spec.get("secrets", []), secret})
            text = _INLINE_PASSWORD.sub(rf"\g<user>:{{secret:{secret}}}@", text, count=1)
            found.changed.append(
                f"app: {key}'s password is the secret file deployment/secrets/{secret} "
                "(CL-0021); the app still gets the whole URL, in every mode"
            )
        carried[key] = text
    return carried


def separate_derived(found: Companions, app: str, editions: Sequence[str], default: str) -> None:
    """A mode that had no volume of its own (prod derived from a lone dev file) gets hotmode's
    default name, which can be the very name another mode keeps (the old Compose project was
    the folder, and so is the app's name): that mode then gets a name of its own, said."""
    from hotmode.services import project_of

    kept = {
        real
        for spec in found.tables.values()
        for volume in (spec.get("volumes") or {}).values()
        for real in (volume.get("names") or {}).values()
    }
    for table, spec in found.tables.items():
        name, _, mode = table.partition(".")
        if mode not in ("dev", "prod"):
            continue
        for key, volume in (spec.get("volumes") or {}).items():
            for edition in editions:
                if edition in (volume.get("names") or {}) or volume.get("shared"):
                    continue
                project = project_of(app, mode, edition, default)
                if f"{project}_{key}" not in kept:
                    continue
                own, n = f"{project}-{mode}_{key}", 1
                while own in kept:
                    n += 1
                    own = f"{project}-{mode}{n}_{key}"
                kept.add(own)
                volume.setdefault("names", {})[edition] = own
                found.changed.append(
                    f"{mode} {edition}: {name}'s volume would be {project}_{key}, the name "
                    f"another mode keeps its data in; {mode} {edition} gets its own, {own}"
                )
