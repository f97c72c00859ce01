"""Loading the declaration (`hotmode.toml` or `[tool.hotmode]`) into one frozen `Config`.

Every check that a user's file can fail is made here, once, and reported as a `ConfigError` that
names the file, the key (with its line where the text shows it) and what is allowed. Nothing
downstream re-validates; it trusts the `Config`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotmode.envfile import ENV_NAME
from hotmode.errors import ConfigError
from hotmode.pyproject import is_pyproject
from hotmode.services import Companion, check_volumes, read_services
from hotmode.target import TargetSyntaxError, parse_target

DECLARATION = "hotmode.toml"
PYPROJECT = "pyproject.toml"
MODES = ("dev", "prod")
DEFAULT_PORT = 7778
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_HEADER = re.compile(r"^\s*\[\[?([^\[\]]+)\]\]?\s*(?:#.*)?$")
_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]+$")  # Compose's container names need two or more
_MEMORY = re.compile(r"^[1-9][0-9]*[bkmg]?$", re.IGNORECASE)
_CPUS = re.compile(r"^(0\.[0-9]*[1-9][0-9]*|[1-9][0-9]*(\.[0-9]+)?)$")
_DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_DEV_ENV = {"DEBUG": "true", "LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class Edition:
    """One edition of the app: the environment and env file that make it what it is."""

    name: str
    env: Mapping[str, str]
    env_file: str | None = None
    default: bool = False


@dataclass(frozen=True)
class DevSettings:
    """What dev mode adds on top of prod: environment and the server's log level."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(_DEV_ENV))
    log_level: str = "debug"


@dataclass(frozen=True)
class Job:
    """A command run before the app starts, in every mode, with the app's environment; it must
    succeed (exit 0) or the app does not start. A migration is the usual one."""

    name: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    """The whole declaration, resolved to absolute paths; passed everywhere, never mutated."""

    path: Path
    root: Path
    name: str
    source: Path
    target: str
    port: int
    requirements: str
    edition_variable: str
    editions: tuple[Edition, ...]
    deployment: Path
    dev: DevSettings
    service: str = "backend"
    default_mode: str | None = None
    base_image: str = "python:3.11-slim"
    memory: str = "512M"
    cpus: str = "1.0"
    install: str = ""
    watch_ignore: tuple[str, ...] = ()
    watch_include: tuple[str, ...] = ()
    services: tuple[Companion, ...] = ()
    jobs: tuple[Job, ...] = ()
    # The path that answers 200 once the app is ready; None: any HTTP answer means ready.
    health: str | None = None

    @property
    def default_edition(self) -> Edition:
        return next(e for e in self.editions if e.default)

    def edition(self, name: str) -> Edition:
        for edition in self.editions:
            if edition.name == name:
                return edition
        allowed = ", ".join(e.name for e in self.editions)
        raise ConfigError(f"{self.path}: edition {name!r} is not declared; use one of: {allowed}")

    @property
    def watch_options(self) -> list[str]:
        """The reload engine's `--include`/`--exclude` options for the declared globs."""
        options: list[str] = []
        for glob in self.watch_include:
            options += ["--include", glob]
        for glob in self.watch_ignore:
            options += ["--exclude", glob]
        return options

    @property
    def install_command(self) -> str:
        """The command that installs the app's dependencies, run from the source folder."""
        if self.install:
            return self.install
        if is_pyproject(self.requirements):
            return f"python -m hotmode requirements --install {self.requirements}"
        return f"python -m pip install -r {self.requirements}"


_TOP_KEYS = {
    "name": "a lower-case name, e.g. 'linkedin-gateway'",
    "source": "the source folder, relative to the declaration",
    "target": "the app, 'module:attribute' (ASGI or WSGI), or a factory called: 'app:create_app()'",
    "port": "a TCP port, 1-65535",
    "requirements": "the requirements file (or pyproject.toml), relative to the source folder",
    "edition_variable": "the environment variable that carries the edition",
    "editions": "a table of editions",
    "deployment": "the deployment folder, relative to the declaration",
    "dev": "a table: env, log_level",
    "service": "the Compose service name",
    "default_mode": "'dev' or 'prod'",
    "base_image": "the Python base image of the Dockerfile",
    "memory": "the container's memory limit, e.g. '512M' or '1G'",
    "cpus": "the container's CPU limit, e.g. '1.0' or '0.5'",
    "install": "the command that installs the dependencies",
    "watch_ignore": "a list of globs the reloader ignores",
    "watch_include": "a list of globs that reload besides *.py (templates, static files do not)",
    "services": "companion services, as [services.NAME] tables",
    "jobs": "commands run before the app in every mode, as [jobs.NAME] tables: command = [...]",
    "health": "the path that answers 200 once the app is ready, e.g. '/health'; false: any "
    "HTTP answer means ready (the default)",
}
_EDITION_KEYS = {"env": "a table of strings", "env_file": "a file name", "default": "true or false"}
_DEV_KEYS = {
    "env": "a table of strings",
    "log_level": "debug, info, warning, error or critical",
    "defaults": "true or false: whether dev adds DEBUG=true and LOG_LEVEL=DEBUG",
}
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def find_declaration(start: Path) -> Path:
    """Return the nearest `hotmode.toml`, or `pyproject.toml` with `[tool.hotmode]`, upwards."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / DECLARATION
        if candidate.is_file():
            return candidate
        pyproject = folder / PYPROJECT
        if pyproject.is_file() and "[tool.hotmode]" in pyproject.read_text(errors="replace"):
            return pyproject
    raise ConfigError(
        f"no {DECLARATION} (or [tool.hotmode] in {PYPROJECT}) in {start} or above; "
        "create one, or pass --config FILE"
    )


def load_config(path: Path) -> Config:
    """Read and validate a declaration file into a `Config`."""
    path = path.resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the declaration ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the declaration as UTF-8"
        ) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(
            f"{path}: arrays or tables nest too deep to read; flatten the declaration"
        ) from None
    if path.name == PYPROJECT:
        table = document.get("tool", {}).get("hotmode")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: no [tool.hotmode] table; add one or use {DECLARATION}")
        prefix = "tool.hotmode."
    else:
        table = document
        prefix = ""
    return _Reader(path, text, prefix).read(table)


class _Reader:
    """Walks one declaration, turning every problem into a ConfigError naming key and line."""

    def __init__(self, path: Path, text: str, prefix: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.prefix = prefix
        self.headers = [
            (index, re.sub(r"[\s\"']", "", match.group(1)))
            for index, line in enumerate(self.lines)
            if (match := _HEADER.match(line))
        ]

    def fail(self, key: str, problem: str) -> ConfigError:
        line = self._line_of(key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: {self.prefix}{key}: {problem}")

    def _line_of(self, key: str) -> int | None:
        # tomllib keeps no positions. The key's own table header, else `leaf =` inside the
        # innermost enclosing table the file spells out, so that a key repeated in several tables
        # (`env_file` in two editions) points at the right one.
        parts = f"{self.prefix}{key}".split(".")
        full = ".".join(parts)
        for index, name in self.headers:
            if name == full or name.startswith(full + "."):
                return index + 1
        leaf = re.compile(rf'(?:^|[{{,])\s*"?{re.escape(parts[-1])}"?\s*=')
        for depth in range(len(parts) - 1, -1, -1):
            span = self._span(".".join(parts[:depth]))
            if span is None:
                continue
            for index in range(*span):
                if leaf.search(self.lines[index]):
                    return index + 1
        return None

    def _span(self, table: str) -> tuple[int, int] | None:
        """The line indexes holding the keys of `table` ("" is the root), if it has a header."""
        starts = [index for index, _ in self.headers]
        if not table:
            return 0, starts[0] if starts else len(self.lines)
        for position, (index, name) in enumerate(self.headers):
            if name == table:
                end = starts[position + 1] if position + 1 < len(starts) else len(self.lines)
                return index + 1, end
        return None

    def check_keys(self, table: Mapping[str, Any], allowed: Mapping[str, str], at: str) -> None:
        for key in table:
            if key not in allowed:
                names = ", ".join(sorted(allowed))
                raise self.fail(f"{at}{key}", f"unknown key; allowed here: {names}")

    def string(self, table: Mapping[str, Any], key: str, at: str = "") -> str | None:
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(f"{at}{key}", f"expected a string, got {type(value).__name__}")
        return value

    def env_table(self, value: Any, at: str, *, dotted: bool = False) -> dict[str, str]:
        """NAME = "value" pairs; `dotted` allows `bootstrap.memory_lock`, which images such as
        Elasticsearch read from their environment."""
        if not isinstance(value, dict):
            raise self.fail(at, 'expected a table of NAME = "value"')
        env: dict[str, str] = {}
        for name, item in value.items():
            if not (_DOTTED_NAME if dotted else ENV_NAME).match(name):
                raise self.fail(f"{at}.{name}", "not a valid environment variable name")
            if isinstance(item, bool):
                item = "true" if item else "false"
            if not isinstance(item, str | int | float):
                raise self.fail(f"{at}.{name}", f"expected a string, got {type(item).__name__}")
            env[name] = str(item)
        return env

    def read(self, table: Mapping[str, Any]) -> Config:
        self.check_keys(table, _TOP_KEYS, "")
        root = self.path.parent
        name = self.string(table, "name")
        if not name or not _APP_NAME.match(name):
            raise self.fail("name", "required; two or more lower-case letters, digits, '-' and '_'")
        source_name = self.string(table, "source") or "."
        source = (root / source_name).resolve()
        if not source.is_dir():
            raise self.fail("source", f"folder {source} does not exist; create it or fix the path")
        target = self.string(table, "target") or "main:app"
        try:
            parse_target(target)
        except TargetSyntaxError as exc:
            raise self.fail("target", str(exc)) from None
        port = table.get("port", DEFAULT_PORT)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise self.fail("port", f"{port!r} is not a TCP port; use an integer 1-65535")
        requirements = self.string(table, "requirements") or "requirements.txt"
        variable = self.string(table, "edition_variable") or "APP_EDITION"
        if not ENV_NAME.match(variable):
            raise self.fail("edition_variable", f"{variable!r} is not an environment variable")
        deployment = (root / (self.string(table, "deployment") or "deployment")).resolve()
        default_mode = self.string(table, "default_mode")
        if default_mode is not None and default_mode not in MODES:
            raise self.fail("default_mode", f"{default_mode!r}; allowed: dev, prod")
        service = self.string(table, "service") or "backend"
        if not _NAME.match(service):
            raise self.fail("service", f"{service!r}; lower-case letters, digits, '-' and '_'")
        health = table.get("health", False)
        if health is not False and (not isinstance(health, str) or not health.startswith("/")):
            raise self.fail("health", f"{health!r} is not {_TOP_KEYS['health']}")
        editions = self.editions(table.get("editions"), variable)
        services = read_services(self, table.get("services"), root, service)
        jobs = self.jobs(table.get("jobs", {}), {service, *(c.name for c in services)})
        check_volumes(self, name, [e.name for e in editions], services, reserved=("logs", "cache"))
        return Config(
            path=self.path,
            root=root,
            name=name,
            source=source,
            target=target,
            port=port,
            requirements=requirements,
            edition_variable=variable,
            editions=editions,
            deployment=deployment,
            dev=self.dev(table.get("dev", {})),
            service=service,
            default_mode=default_mode,
            base_image=self.string(table, "base_image") or "python:3.11-slim",
            memory=self.matching(table, "memory", _MEMORY, "512M"),
            cpus=self.matching(table, "cpus", _CPUS, "1.0"),
            install=self.string(table, "install") or "",
            watch_ignore=self.globs(table, "watch_ignore"),
            watch_include=self.globs(table, "watch_include"),
            jobs=jobs,
            services=services,
            health=health or None,
        )

    def matching(
        self, table: Mapping[str, Any], key: str, pattern: re.Pattern[str], default: str
    ) -> str:
        value = table.get(key, default)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not pattern.match(value):
            raise self.fail(key, f"{value!r} is not {_TOP_KEYS[key]}")
        return value

    def globs(self, table: Mapping[str, Any], key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "expected a list of strings")
        return tuple(value)

    def editions(self, value: Any, variable: str) -> tuple[Edition, ...]:
        if value is None:
            return (Edition(name="default", env={}, default=True),)
        if not isinstance(value, dict) or not value:
            raise self.fail("editions", "expected at least one [editions.NAME] table")
        editions = []
        for name, spec in value.items():
            at = f"editions.{name}"
            if not _NAME.match(name) or name in MODES or name == "local":
                raise self.fail(at, "edition names are lower-case and not 'dev', 'prod', 'local'")
            if not isinstance(spec, dict):
                raise self.fail(at, "expected a table with env, env_file, default")
            self.check_keys(spec, _EDITION_KEYS, f"{at}.")
            env = self.env_table(spec.get("env", {}), f"{at}.env")
            env.setdefault(variable, name)
            default = spec.get("default", False)
            if not isinstance(default, bool):
                raise self.fail(f"{at}.default", "expected true or false")
            env_file = self.string(spec, "env_file", f"{at}.")
            if env_file is not None:
                self.inside_deployment(env_file, f"{at}.env_file")
            editions.append(Edition(name=name, env=env, env_file=env_file, default=default))
        defaults = [e.name for e in editions if e.default]
        if len(defaults) > 1:
            raise self.fail("editions", f"only one edition may be default, not {defaults}")
        if not defaults:
            if len(editions) > 1:
                raise self.fail("editions", "mark one edition with default = true")
            editions[0] = Edition(editions[0].name, editions[0].env, editions[0].env_file, True)
        # The default edition comes first: it is the base file's edition.
        editions.sort(key=lambda e: not e.default)
        return tuple(editions)

    def inside_deployment(self, name: str, key: str) -> None:
        """An env file must be a file of the deployment folder: never one elsewhere on the host,
        whose lines an error would quote (`/etc/passwd`, `../../etc/hostname`)."""
        path = Path(name)
        if path.is_absolute() or ".." in path.parts or not name.strip():
            raise self.fail(
                key,
                f"{name!r} is outside the deployment folder; name a file in it, "
                "e.g. '.env.prod.saas'",
            )

    def jobs(self, value: Any, taken: set[str]) -> tuple[Job, ...]:
        if not isinstance(value, dict):
            raise self.fail("jobs", _TOP_KEYS["jobs"])
        jobs = []
        for name, spec in value.items():
            at = f"jobs.{name}"
            if not _NAME.match(name) or name in taken:
                raise self.fail(at, "a service name of its own: lower-case letters, digits, '-'")
            if not isinstance(spec, dict):
                raise self.fail(at, "expected a table with command = [...]")
            self.check_keys(spec, {"command": "a command (list of strings)"}, f"{at}.")
            command = spec.get("command")
            if (
                not isinstance(command, list)
                or not command
                or not all(isinstance(part, str) for part in command)
            ):
                raise self.fail(f"{at}.command", "expected a non-empty list of strings")
            jobs.append(Job(name, tuple(command)))
        return tuple(jobs)

    def dev(self, value: Any) -> DevSettings:
        if not isinstance(value, dict):
            raise self.fail("dev", "expected a table with env, log_level")
        self.check_keys(value, _DEV_KEYS, "dev.")
        defaults = value.get("defaults", True)
        if not isinstance(defaults, bool):
            raise self.fail("dev.defaults", f"{defaults!r} is not {_DEV_KEYS['defaults']}")
        # An adopted app's dev has its own variables: DEBUG and LOG_LEVEL are values its
        # settings may not accept (a log level enum in lower case), so adoption turns them off.
        env = dict(_DEV_ENV) if defaults else {"PYTHONUNBUFFERED": "1"}
        env.update(self.env_table(value.get("env", {}), "dev.env"))
        level = self.string(value, "log_level", "dev.") or "debug"
        if level not in _LOG_LEVELS:
            raise self.fail("dev.log_level", f"{level!r}; allowed: {', '.join(_LOG_LEVELS)}")
        return DevSettings(env=env, log_level=level)
