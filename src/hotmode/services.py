"""Companion services (`[services.NAME]`): what the declaration says, validated into values.

A companion is a service the app needs beside it, such as its database. It is declared once, with
per-mode overrides (`[services.NAME.dev]`, `[services.NAME.prod]`), and how to run it natively
(`[services.NAME.native]`). Every mistake is a `ConfigError` naming the file, the key and its
line, made through the declaration reader's `fail`; nothing downstream re-validates.

Secrets never sit in the environment: each is a file (`secrets = ["db_password"]` is
`deployment/secrets/db_password`, git-ignored) that Compose mounts at `/run/secrets/NAME`, read
through the image's `*_FILE` convention. Prod has no value for one; dev may declare a dev-only
value (`[services.NAME.dev] secrets = { db_password = "..." }`), which never reaches a prod file.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from hotmode.errors import ConfigError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")
_IPV4 = re.compile(r"^(?:[0-9]{1,3}\.){3}[0-9]{1,3}$")
# A variable reference in a value: `${NAME}`, `${NAME:-default}`, `${NAME:?message}`.
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
# Environment names that hold a secret: a literal value for one in prod is refused.
_SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|PASSPHRASE|PRIVATE_KEY", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"://[^/@:\s]+:[^/@\s]+@")
# A URL's password named, not written: `user:{secret:NAME}@`, filled from the secret file; or
# the whole value a secret (`DB_PASSWORD = "{secret:NAME}"`, an app that reads its password alone).
URL_SECRET = re.compile(r"(?:(?P<url>:)|^)\{secret:(?P<name>[a-z0-9][a-z0-9_-]*)\}(?(url)@|$)")


def without_secrets(value: str) -> str:
    """`value` with each secret it names taken out: a URL keeps its `@`, a whole value is empty."""
    return URL_SECRET.sub(lambda m: "@" if m.group("url") else "", value)


MODES = ("dev", "prod")

_SPEC_KEYS = {
    "image": "an image reference, e.g. 'postgres:16-bookworm'",
    "build": "a build context folder, or a table: context, dockerfile",
    "command": "a list of strings",
    "environment": "a table of strings",
    "env_file": "a file name, in the deployment folder",
    "volumes": "a table NAME = '/target', or NAME = { target, name, names, shared }",
    "mounts": "a table 'host path' = '/target', mounted read-only",
    "port": "the port it listens on in its container ({port} in app_env)",
    "ports": "a list: PORT, 'HOST:CONTAINER' or 'IP:HOST:CONTAINER'",
    "healthcheck": "a command (list), or a table: test, interval, timeout, retries, start_period",
    "user": "the user the service runs as, e.g. 'postgres'",
    "app_env": "a table of the app's environment; {host}, {port} and {secrets} (the folder of "
    "the secret files) name this service, user:{secret:NAME}@ in a URL puts the secret "
    "NAME in as its password, and a value {secret:NAME} alone is the secret",
    "secrets": "a list of secret names: files in deployment/secrets/, at /run/secrets/NAME",
    "memory": "the memory limit in prod, e.g. '512M'",
    "cpus": "the CPU limit in prod, e.g. '1.0'",
    "read_only": "true or false: a read-only root filesystem in prod",
    "hardened": "false: run the image as it was adopted (no read-only root, no dropped "
    "capabilities), for an image hotmode does not know",
    "tmpfs": "a list of folders that stay writable with a read-only root",
    "cap_add": "a list of capabilities the image needs after cap_drop ALL",
    "waivers": "a table RULE = 'why': findings `check` reports as waived for this service",
}
_TOP_ONLY = {
    "dev": "a table: what dev changes",
    "prod": "a table: what prod changes",
    "native": "a table: path, init, command, ready, setup, init_scripts, user, env, port",
    "embedded": "a table of the app's environment when the service cannot run natively",
}
_DEV_ONLY = {"secrets": "a table NAME = 'dev-only value'"}
_NATIVE_KEYS = {
    "path": "a list of folders (globs) searched for the commands",
    "init": "a command (list) that creates the data folder {data}; run again if interrupted",
    "command": "the command (list) that runs the service in the foreground",
    "ready": "a command (list) that exits 0 once the service accepts work",
    "setup": "commands (a list of lists) run at every start once it is ready, finishing its "
    "set-up (a database, a role): each must be safe to run again",
    "init_scripts": "a command (list) that runs one script given on its standard input: run "
    "once for each file of the folder mounted at /docker-entrypoint-initdb.d, in name order, "
    "at the first start of a new data folder",
    "user": "the unprivileged user it runs as when hotmode runs as root",
    "env": "a table of its environment (with PATH, LANG and TZ, the only variables it gets); "
    "{secret:NAME} is the value of a secret it declares, generated once for each mode",
    "port": "the port it listens on natively, default: a free port chosen at each start",
    "retitles": "true when the server rewrites its process title (and so its environment): "
    "hotmode runs it under a keeper process that holds the proof of what it started",
}
_HEALTH_KEYS = {
    "test": "a command (list)",
    "interval": "a duration, e.g. '5s'",
    "timeout": "a duration",
    "retries": "a positive integer",
    "start_period": "a duration",
}
_VOLUME_KEYS = {
    "target": "the folder in the container",
    "name": "a fixed volume name",
    "shared": "true: every mode and edition uses the same volume, on purpose",
    "names": "a table EDITION = 'volume name': the volume this mode uses in each edition",
}


class _Reader(Protocol):
    def fail(self, key: str, problem: str) -> ConfigError: ...
    def check_keys(self, table: Mapping[str, Any], allowed: Mapping[str, str], at: str) -> None: ...
    def env_table(self, value: Any, at: str, *, dotted: bool = False) -> dict[str, str]: ...


@dataclass(frozen=True)
class Port:
    """A published port: on `host_ip:host` of the host, to `container` in the service."""

    host_ip: str
    host: int
    container: int

    def compose(self) -> str:
        return f"{self.host_ip}:{self.host}:{self.container}"


@dataclass(frozen=True)
class Volume:
    """A named data volume; its name is per mode and edition unless `shared` says otherwise."""

    key: str
    target: str
    name: str | None = None
    shared: bool = False
    # The real volume name of each edition that keeps one of its own (adopted names).
    names: Mapping[str, str] = field(default_factory=dict)

    def real_name(self, project: str, edition: str) -> str:
        """The volume's name on the engine for one mode x edition (`project` is its own)."""
        if edition in self.names:
            return self.names[edition]
        return str(self.name) if self.shared and self.name else f"{project}_{self.key}"


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]
    interval: str = "5s"
    timeout: str = "5s"
    retries: int = 10
    start_period: str = "30s"


@dataclass(frozen=True)
class Build:
    context: Path
    dockerfile: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """A companion as one mode sees it (the base declaration with that mode's table over it)."""

    image: str | None = None
    build: Build | None = None
    command: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    env_file: str | None = None
    volumes: tuple[Volume, ...] = ()
    mounts: tuple[tuple[Path, str], ...] = ()
    port: int | None = None
    ports: tuple[Port, ...] = ()
    healthcheck: Healthcheck | None = None
    user: str | None = None
    app_env: Mapping[str, str] = field(default_factory=dict)
    # Secret names, with a dev-only value where the dev table gives one.
    secrets: Mapping[str, str | None] = field(default_factory=dict)
    memory: str = "512M"
    cpus: str = "1.0"
    read_only: bool = True
    tmpfs: tuple[str, ...] = ("/tmp",)  # noqa: S108 - inside the container
    cap_add: tuple[str, ...] = ()
    waivers: Mapping[str, str] = field(default_factory=dict)
    hardened: bool = True


@dataclass(frozen=True)
class NativeSpec:
    """How to run the companion as a local process when no Docker engine is reachable."""

    command: tuple[str, ...]
    path: tuple[str, ...] = ()
    init: tuple[str, ...] = ()
    ready: tuple[str, ...] = ()
    setup: tuple[tuple[str, ...], ...] = ()
    init_scripts: tuple[str, ...] = ()
    user: str | None = None
    port: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    retitles: bool = False


@dataclass(frozen=True)
class Companion:
    """One declared companion service, with what each mode makes of it."""

    name: str
    prod: ServiceSpec
    dev: ServiceSpec
    native: NativeSpec | None = None
    embedded: Mapping[str, str] = field(default_factory=dict)

    def spec(self, mode: str) -> ServiceSpec:
        return self.dev if mode == "dev" else self.prod


def _strings(reader: _Reader, value: Any, at: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise reader.fail(at, "expected a non-empty list of strings")
    return tuple(value)


def _port(reader: _Reader, value: Any, at: str) -> Port:
    parts = value.split(":") if isinstance(value, str) else [value]
    ip = "127.0.0.1"
    if len(parts) == 3:
        ip = str(parts[0])
        parts = parts[1:]
    numbers: list[int] = []
    for part in parts:
        number = int(part) if isinstance(part, str) and part.isdigit() else part
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            raise reader.fail(
                at,
                f"{value!r} is not a port; use PORT, 'HOST:CONTAINER' "
                "or 'IP:HOST:CONTAINER', each port 1-65535",
            )
        numbers.append(number)
    if len(numbers) > 2 or not _IPV4.match(ip):
        raise reader.fail(
            at,
            f"{value!r} is not a port; use PORT, 'HOST:CONTAINER' "
            "or 'IP:HOST:CONTAINER' with an IPv4 address",
        )
    return Port(ip, numbers[0], numbers[-1])


def _volumes(reader: _Reader, value: Any, at: str) -> dict[str, Volume]:
    if not isinstance(value, dict):
        raise reader.fail(at, _SPEC_KEYS["volumes"])
    volumes = {}
    for key, item in value.items():
        where = f"{at}.{key}"
        if not _NAME.match(key):
            raise reader.fail(where, "volume names are lower-case letters, digits, '-' and '_'")
        if isinstance(item, str):
            item = {"target": item}
        if not isinstance(item, dict):
            raise reader.fail(where, _SPEC_KEYS["volumes"])
        reader.check_keys(item, _VOLUME_KEYS, f"{where}.")
        target, name, shared = item.get("target"), item.get("name"), item.get("shared", False)
        if not isinstance(target, str) or not target.startswith("/"):
            raise reader.fail(where, "needs an absolute target folder, e.g. '/var/lib/data'")
        if name is not None and not isinstance(name, str):
            raise reader.fail(f"{where}.name", "expected a string")
        if not isinstance(shared, bool):
            raise reader.fail(f"{where}.shared", "expected true or false")
        names = item.get("names", {})
        if not isinstance(names, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in names.items()
        ):
            raise reader.fail(f"{where}.names", _VOLUME_KEYS["names"])
        if name and not shared:
            raise reader.fail(
                f"{where}.name",
                f"every mode and edition would share volume {name!r} (dev data in prod); "
                "drop `name` for one volume per mode, or add `shared = true` if that is meant",
            )
        volumes[key] = Volume(key, target, name, shared, names)
    return volumes


def _healthcheck(reader: _Reader, value: Any, at: str) -> Healthcheck:
    if isinstance(value, list):
        value = {"test": value}
    if not isinstance(value, dict):
        raise reader.fail(at, _SPEC_KEYS["healthcheck"])
    reader.check_keys(value, _HEALTH_KEYS, f"{at}.")
    check = Healthcheck(_strings(reader, value.get("test"), f"{at}.test"))
    for key in ("interval", "timeout", "start_period"):
        if key in value:
            if not isinstance(value[key], str) or not _DURATION.match(value[key]):
                raise reader.fail(f"{at}.{key}", f"{value[key]!r} is not a duration like '5s'")
            check = replace(check, **{key: value[key]})
    if "retries" in value:
        retries = value["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise reader.fail(f"{at}.retries", "expected a positive integer")
        check = replace(check, retries=retries)
    return check


def _override(
    reader: _Reader,
    base: ServiceSpec,
    table: Mapping[str, Any],
    at: str,
    root: Path,
    *,
    mode: str | None,
) -> ServiceSpec:
    """`base` with the keys of `table` over it (tables merge by key, the rest replace)."""
    allowed = dict(_SPEC_KEYS)
    if mode is None:
        allowed |= _TOP_ONLY
    elif mode == "dev":
        allowed |= _DEV_ONLY
    reader.check_keys(table, allowed, f"{at}.")
    changes: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{at}.{key}"
        if key in ("image", "env_file", "user"):
            if not isinstance(value, str) or not value:
                raise reader.fail(where, f"expected {_SPEC_KEYS[key]}")
            changes[key] = value
        elif key == "build":
            if isinstance(value, str):
                value = {"context": value}
            if not isinstance(value, dict) or not isinstance(value.get("context"), str):
                raise reader.fail(where, _SPEC_KEYS["build"])
            reader.check_keys(value, {"context": "a folder", "dockerfile": "a file"}, f"{where}.")
            context = (root / value["context"]).resolve()
            if not context.is_dir():
                raise reader.fail(where, f"folder {context} does not exist")
            dockerfile = value.get("dockerfile")
            if dockerfile is not None and not isinstance(dockerfile, str):
                raise reader.fail(f"{where}.dockerfile", "expected a file name")
            changes["build"] = Build(context, dockerfile)
        elif key in ("command", "tmpfs", "cap_add"):
            changes[key] = _strings(reader, value, where)
        elif key in ("environment", "app_env"):
            merged = dict(getattr(base, key))
            merged.update(reader.env_table(value, where, dotted=key == "environment"))
            changes[key] = merged
        elif key == "volumes":
            volumes = {v.key: v for v in base.volumes} | _volumes(reader, value, where)
            changes["volumes"] = tuple(volumes.values())
        elif key == "mounts":
            changes["mounts"] = _mounts(reader, value, where, root)
        elif key == "ports":
            if not isinstance(value, list):
                raise reader.fail(where, _SPEC_KEYS["ports"])
            ports = tuple(_port(reader, item, where) for item in value)
            changes["ports"] = ports
        elif key == "port":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
                raise reader.fail(where, f"{value!r} is not a TCP port; use an integer 1-65535")
            changes["port"] = value
        elif key == "healthcheck":
            changes["healthcheck"] = _healthcheck(reader, value, where)
        elif key == "secrets":
            changes["secrets"] = _secrets(reader, base, value, where, mode)
        elif key in ("memory", "cpus"):
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or not value:
                raise reader.fail(where, f"expected {_SPEC_KEYS[key]}")
            changes[key] = value
        elif key == "waivers":
            if not isinstance(value, dict) or not all(
                isinstance(k, str)
                and re.match(r"^[A-Z]+-[A-Z0-9]+$", k)
                and isinstance(v, str)
                and v.strip()
                for k, v in value.items()
            ):
                raise reader.fail(where, "expected RULE-ID = 'why it does not apply'")
            changes["waivers"] = {**base.waivers, **value}
        elif key in ("read_only", "hardened"):
            if not isinstance(value, bool):
                raise reader.fail(where, "expected true or false")
            changes[key] = value
    return replace(base, **changes)


def _mounts(reader: _Reader, value: Any, at: str, root: Path) -> tuple[tuple[Path, str], ...]:
    if not isinstance(value, dict):
        raise reader.fail(at, _SPEC_KEYS["mounts"])
    mounts = []
    for source, target in value.items():
        path = (root / source).resolve()
        if not path.exists():
            raise reader.fail(f"{at}.{source}", f"{path} does not exist; create it or fix it")
        if not isinstance(target, str) or not target.startswith("/"):
            raise reader.fail(f"{at}.{source}", "needs an absolute target in the container")
        mounts.append((path, target))
    return tuple(mounts)


def _secrets(
    reader: _Reader, spec: ServiceSpec, value: Any, at: str, mode: str | None
) -> dict[str, str | None]:
    if mode == "dev":
        if not isinstance(value, dict):
            raise reader.fail(at, _DEV_ONLY["secrets"])
        merged = dict(spec.secrets)
        for name, default in value.items():
            if name not in merged:
                raise reader.fail(f"{at}.{name}", "not declared in `secrets` of the service")
            if not isinstance(default, str) or not default:
                raise reader.fail(f"{at}.{name}", "expected a string")
            merged[name] = default
        return merged
    if isinstance(value, dict):
        raise reader.fail(
            at,
            "prod never has a value for a secret; list the names here, and "
            "give dev-only values in the dev table",
        )
    names = _strings(reader, value, at)
    for name in names:
        if not _NAME.match(name):
            raise reader.fail(at, f"{name!r}: secret names are lower-case, digits, '-' and '_'")
    return dict.fromkeys(names)


def _native(reader: _Reader, value: Any, at: str) -> NativeSpec:
    if not isinstance(value, dict):
        raise reader.fail(at, _TOP_ONLY["native"])
    reader.check_keys(value, _NATIVE_KEYS, f"{at}.")
    if "command" not in value:
        raise reader.fail(at, "`command` is required: " + _NATIVE_KEYS["command"])
    native = NativeSpec(command=_strings(reader, value["command"], f"{at}.command"))
    lists: dict[str, Any] = {
        key: _strings(reader, value[key], f"{at}.{key}")
        for key in ("path", "init", "ready", "init_scripts")
        if key in value
    }
    setup = value.get("setup", [])
    if not isinstance(setup, list):
        raise reader.fail(f"{at}.setup", _NATIVE_KEYS["setup"])
    lists["setup"] = tuple(_strings(reader, c, f"{at}.setup") for c in setup)
    native = replace(native, **lists)
    user = value.get("user")
    if user is not None and (not isinstance(user, str) or not user):
        raise reader.fail(f"{at}.user", "expected a user name")
    port = value.get("port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535
    ):
        raise reader.fail(f"{at}.port", f"{port!r} is not a TCP port; use an integer 1-65535")
    env = reader.env_table(value.get("env", {}), f"{at}.env")
    retitles = value.get("retitles", False)
    if not isinstance(retitles, bool):
        raise reader.fail(f"{at}.retitles", f"{retitles!r} is not true or false")
    return replace(native, user=user, port=port, env=env, retitles=retitles)


_NATIVE_SECRET = re.compile(r"\{secret:([^}]*)\}")


def _check_native_secrets(
    reader: _Reader, native: NativeSpec, declared: Collection[str], at: str
) -> None:
    """A secret goes only into the environment (a command line is readable by every local
    user), and only one the service declares."""
    for key in ("command", "init", "ready", "init_scripts"):
        if any(_NATIVE_SECRET.search(part) for part in getattr(native, key)):
            raise reader.fail(f"{at}.{key}", _IN_ARGV)
    if any(_NATIVE_SECRET.search(part) for command in native.setup for part in command):
        raise reader.fail(f"{at}.setup", _IN_ARGV)
    for name, value in native.env.items():
        for secret in _NATIVE_SECRET.findall(value):
            if secret not in declared:
                raise reader.fail(
                    f"{at}.env.{name}",
                    f"{{secret:{secret}}} names no secret of the service; add {secret!r} to "
                    "its `secrets`",
                )


_IN_ARGV = "{secret:NAME} in a command line is readable by every local user; use `env`"


def _check_secrets(reader: _Reader, spec: ServiceSpec, at: str) -> None:
    """Prod: no secret in the environment, literal or defaulted; secrets are files."""
    for key in ("environment", "app_env"):
        for name, value in getattr(spec, key).items():
            named = list(URL_SECRET.finditer(value)) if key == "app_env" else []
            for secret in (m.group("name") for m in named):
                if secret not in spec.secrets:
                    raise reader.fail(
                        f"{at}.{key}.{name}",
                        f"{{secret:{secret}}} names no secret of the service; "
                        f"add {secret!r} to its `secrets`",
                    )
            if named and not named[0].group("url"):
                continue  # the whole value is the secret, passed from its file
            value = without_secrets(value) if key == "app_env" else value
            if _URL_PASSWORD.search(value):
                raise reader.fail(
                    f"{at}.{key}.{name}",
                    "a password in a URL would be rendered "
                    "into prod; leave it out and pass the secret's file",
                )
            if not _SECRET.search(name) or name.endswith("_FILE"):
                continue
            defaulted = any(op.endswith("-") for _, op, _ in VARIABLE.findall(value))
            if defaulted or not VARIABLE.search(value):
                raise reader.fail(
                    f"{at}.{key}.{name}",
                    "a secret would be rendered into prod; list it in `secrets` and pass its "
                    f"file instead ({name}_FILE = '/run/secrets/NAME', if the image reads one)",
                )


def project_of(app: str, mode: str, edition: str, default_edition: str) -> str:
    """The Compose project of a mode x edition: distinct for every combination."""
    parts = [app]
    if mode == "dev":
        parts.append("dev")
    if edition != default_edition:
        parts.append(edition)
    return "-".join(parts)


def check_volumes(
    reader: _Reader,
    app: str,
    editions: Sequence[str],
    companions: Sequence[Companion],
    reserved: Collection[str],
) -> None:
    """No data volume is mounted by two services, or by two modes x editions, that do not
    share it on purpose (`shared = true` on every side): the data-mixing guard."""
    default = editions[0]
    for companion in companions:
        for mode in MODES:
            for volume in companion.spec(mode).volumes:
                unknown = sorted(set(volume.names) - set(editions))
                if unknown:
                    raise reader.fail(
                        f"services.{companion.name}.{mode}.volumes.{volume.key}.names",
                        f"edition {unknown[0]!r} is not declared; use one of {', '.join(editions)}",
                    )
    users: dict[str, list[tuple[str, str, str, bool]]] = {}
    keys: dict[str, str] = {}
    for companion in companions:
        for mode in MODES:
            for volume in companion.spec(mode).volumes:
                owner = keys.setdefault(volume.key, companion.name)
                if owner != companion.name or volume.key in reserved:
                    other = owner if owner != companion.name else "the app"
                    raise reader.fail(
                        f"services.{companion.name}.volumes.{volume.key}",
                        f"volume {volume.key!r} is also {other}'s: one volume would hold both "
                        "services' data; give this one another name",
                    )
                for edition in editions:
                    real = volume.real_name(project_of(app, mode, edition, default), edition)
                    users.setdefault(real, []).append(
                        (companion.name, mode, edition, volume.shared)
                    )
    for real, used in users.items():
        places = {(name, mode, edition) for name, mode, edition, _ in used}
        if len(places) > 1 and not all(shared for *_, shared in used):
            (name, mode, edition), (name2, mode2, edition2) = sorted(places)[:2]
            raise reader.fail(
                f"services.{name2}.{mode2}.volumes",
                f"volume {real!r} would hold the data of {name} {mode} {edition} and of "
                f"{name2} {mode2} {edition2}; give each its own name, or mark it "
                "`shared = true` if that is meant",
            )


def read_services(
    reader: _Reader, value: Any, root: Path, app_service: str
) -> tuple[Companion, ...]:
    """The `[services.*]` tables of a declaration, validated."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise reader.fail("services", "expected [services.NAME] tables")
    companions = []
    for name, table in value.items():
        at = f"services.{name}"
        if not _NAME.match(name) or len(name) < 2:
            raise reader.fail(at, "service names are lower-case letters, digits, '-' and '_'")
        if name == app_service:
            raise reader.fail(
                at,
                f"{name!r} is the app's own service (`service`); name the "
                "companion otherwise, or set `service` to another name",
            )
        if not isinstance(table, dict):
            raise reader.fail(at, "expected a table")
        base = _override(reader, ServiceSpec(), table, at, root, mode=None)
        modes = {}
        for mode in MODES:
            sub = table.get(mode, {})
            if not isinstance(sub, dict):
                raise reader.fail(f"{at}.{mode}", f"expected a table of what {mode} changes")
            modes[mode] = _override(reader, base, sub, f"{at}.{mode}", root, mode=mode)
        for mode, spec in modes.items():
            where = at if mode not in table else f"{at}.{mode}"
            if (spec.image is None) == (spec.build is None):
                raise reader.fail(where, "give exactly one of `image` and `build`")
            uses_port = any("{port}" in v for v in spec.app_env.values())
            if uses_port and spec.port is None:
                raise reader.fail(f"{at}.app_env", "{port} needs the service's `port`")
        _check_secrets(reader, modes["prod"], at)
        native = _native(reader, table["native"], f"{at}.native") if "native" in table else None
        if native is not None:
            _check_native_secrets(reader, native, modes["prod"].secrets, f"{at}.native")
        embedded = reader.env_table(table.get("embedded", {}), f"{at}.embedded")
        companions.append(Companion(name, modes["prod"], modes["dev"], native, embedded))
    return tuple(companions)
