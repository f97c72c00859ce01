"""The app's target, found from evidence, the way each framework names its app.

Evidence, strongest first:
- the server command, wherever the project keeps it (the Compose command or entrypoint, a script
  they run, the Dockerfile's CMD, a Procfile's `web:`): `gunicorn config.wsgi`,
  `gunicorn 'hello.app:create_app()'`, `uvicorn main:app`, `uwsgi --module x.wsgi` or its ini
  file, `manage.py runserver` (Django), `flask run` (Flask, with FLASK_APP);
- a server started in the code such a command runs (`python -m app`, `python serve.py`), the
  app named as a string: `granian.Granian(target="app.main:app")`, `uvicorn.run("main:app")`;
- Django's own: `manage.py` and the settings module it (or DJANGO_SETTINGS_MODULE) names, whose
  WSGI_APPLICATION names the app (`config.wsgi.application`);
- Flask's own: FLASK_APP (the service's environment, the Dockerfile's ENV, `.flaskenv`), else
  `wsgi.py` or `app.py`, where Flask itself looks; an app object in them, else a `create_app`
  factory, called;
- an app built by a framework's constructor in an entry file (`app = FastAPI()`,
  `app = Flask(__name__)`), or a factory a package defines and an entry file calls.
A module that merely assigns an `app` attribute (a script calling `create_app()` to export data)
is not evidence: a target is written only from what names the app.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hotmode.audit.commands import Program, programs, words
from hotmode.target import TargetSyntaxError, parse_target

# Options of the servers that take a value as the next word: the value is never the app.
_VALUE_OPTIONS = {
    "-c",
    "--config",
    "-b",
    "--bind",
    "-w",
    "--workers",
    "-k",
    "--worker-class",
    "--threads",
    "-t",
    "--timeout",
    "--graceful-timeout",
    "--keep-alive",
    "--log-level",
    "--access-logfile",
    "--error-logfile",
    "--log-file",
    "--log-config",
    "-e",
    "--env",
    "--chdir",
    "--pythonpath",
    "--max-requests",
    "--max-requests-jitter",
    "--worker-tmp-dir",
    "--forwarded-allow-ips",
    "-u",
    "--user",
    "-g",
    "--group",
    "-n",
    "--name",
    "--certfile",
    "--keyfile",
    "--host",
    "--port",
    "--app-dir",
    "--root-path",
    "--env-file",
    "--timeout-keep-alive",
    "--ws",
    "--loop",
    "--http",
    "--interface",
    "--lifespan",
    "--uds",
    "--fd",
    "--backlog",
    "--reload-dir",
    "--reload-include",
    "--reload-exclude",
    "--header",
    "--limit-concurrency",
    "-p",
    "--listen",
    "--url-prefix",
    "--install",
    "--watch",
    "--include",
    "--exclude",
    "--ini",
    "--http-socket",
    "--socket",
    "--processes",
    "--uid",
    "--gid",
    "--static-map",
    "--home",
    "-H",
    "--virtualenv",
    "--bind-address",
}
_MODULE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
_WSGI_APPLICATION = re.compile(r"^WSGI_APPLICATION\s*=\s*[\"'](?P<path>[\w.]+)[\"']", re.M)
_SETTINGS_DEFAULT = re.compile(r"DJANGO_SETTINGS_MODULE[\"']\s*,\s*[\"'](?P<module>[\w.]+)[\"']")
_FLASK_APP_LINE = re.compile(r"^\s*(?:export\s+)?FLASK_APP\s*=\s*[\"']?(?P<value>[^\"'\s#]+)", re.M)
# `app = Flask(__name__)`, `application = FastAPI(...)`, `app: Starlette = Starlette()`.
CONSTRUCTED = re.compile(
    r"^(?P<name>[A-Za-z_]\w*)\s*(?::\s*[\w.\[\]]+\s*)?=\s*(?:[\w.]+\.)?"
    r"(?P<ctor>FastAPI|Starlette|Quart|Litestar|Sanic|Flask|App|API|make_wsgi_app|"
    r"get_wsgi_application|get_asgi_application)\s*\(",
    re.M,
)
# `app = create_app()`: evidence only in a file the framework itself looks in.
_FACTORY_CALLED = re.compile(
    r"^(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<factory>create_app|make_app|get_app|build_app|"
    r"get_application|create_application)\s*\(",
    re.M,
)
_FACTORY_DEFINED = re.compile(
    r"^(?:async\s+)?def\s+(?P<name>create_app|make_app)\s*\(\s*(?:\)|[^)]*=)", re.M
)
# A server started from the app's own code names its app as a string, first or as `target=`/`app=`:
# `uvicorn.run("main:app", ...)`, `granian.Granian(target="app.application:application", ...)`.
_SERVED_IN_CODE = re.compile(
    r"\b(?:uvicorn\.run|uvicorn\.Config|Granian|hypercorn\.run)\s*\(\s*"
    r"(?:(?:target|app)\s*=\s*)?[\"'](?P<target>[\w.]+:[\w.]+(?:\(\))?)[\"']"
)
_ENTRY_FILES = ("wsgi.py", "app.py", "main.py", "asgi.py", "server.py", "manage.py")


@dataclass(frozen=True)
class Found:
    """A target, the folder it is imported from, and the evidence, said as a note."""

    target: str
    source: Path
    why: str

    def said(self, top: Path) -> str:
        """The evidence, its files shown relative to `top` (the project's folder)."""
        return re.sub("\0([^\0]*)\0", lambda m: os.path.relpath(m.group(1), top), self.why)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _module_file(source: Path, module: str) -> Path | None:
    base = source.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _import_roots(source: Path) -> list[Path]:
    """The folder itself, then the `src/` layout's."""
    return [folder for folder in (source, source / "src") if folder.is_dir()]


def _shown(path: Path) -> str:
    """A file named in a note: shown relative to the folder `Found.said` is given."""
    return f"\0{path}\0"


# --- the server command -------------------------------------------------------------------------


def _positionals(program: Program) -> list[str]:
    found, skip = [], False
    for arg in program.args:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = arg in _VALUE_OPTIONS
            continue
        found.append(arg)
    return found


def _as_target(text: str, source: Path, default_attribute: str | None) -> Found | None:
    """`module:attr[()]`, or a module alone (gunicorn and uwsgi take `application` from it),
    when the module is a file of the source."""
    text = text.strip("'\"")
    if ":" in text:
        try:
            parsed = parse_target(text)
        except TargetSyntaxError:
            return None
        for root in _import_roots(source):
            if _module_file(root, parsed.module) is not None:
                return Found(text, root, "")
        return Found(text, source, "")  # the command names it: evidence enough
    if default_attribute is None or not _MODULE.match(text):
        return None
    for root in _import_roots(source):
        path = _module_file(root, text)
        if path is not None and re.search(rf"^{default_attribute}\b\s*[:=]", _read(path), re.M):
            return Found(f"{text}:{default_attribute}", root, "")
    return None


def _uwsgi(program: Program, source: Path) -> Found | None:
    module = program.flag_value("--module") or program.flag_value("-w")
    if module is None:
        module = program.flag_value("--wsgi")
    wsgi_file = program.flag_value("--wsgi-file")
    ini = program.flag_value("--ini") or next(
        (a for a in _positionals(program) if a.endswith(".ini")), None
    )
    if module is None and wsgi_file is None and ini is not None:
        path = _inside(source, ini)
        parser = configparser.ConfigParser(strict=False, interpolation=None, allow_no_value=True)
        try:
            parser.read_string(_read(path) if path else "")
        except configparser.Error:
            return None
        section = parser["uwsgi"] if parser.has_section("uwsgi") else {}
        module = section.get("module") or section.get("wsgi")
        wsgi_file = section.get("wsgi-file")
    if module is None and wsgi_file is not None:
        module = PurePosixPath(wsgi_file).with_suffix("").as_posix().lstrip("./").replace("/", ".")
    return _as_target(module, source, "application") if module else None


def _inside(source: Path, container_path: str) -> Path | None:
    """A file a command names by its path in the image, found in the source by its tail."""
    parts = PurePosixPath(container_path).parts
    for start in range(len(parts)):
        tail = [p for p in parts[start:] if p not in ("/", ".")]
        if tail and (candidate := source.joinpath(*tail)).is_file():
            return candidate
    return None


def from_command(text: str, source: Path, env: Mapping[str, str]) -> Found | None:
    """The target a command line's server names, with the evidence."""
    argv = words(text)
    for program in programs(argv):
        found: Found | None = None
        if program.name in {
            "gunicorn",
            "uvicorn",
            "hypercorn",
            "granian",
            "daphne",
            "waitress-serve",
        }:
            for arg in _positionals(program):
                found = _as_target(
                    arg, source, "application" if program.name == "gunicorn" else None
                )
                if found:
                    break
            if found and program.has("--factory") and not parse_target(found.target).called:
                found = Found(found.target + "()", found.source, "")
        elif program.name == "uwsgi":
            found = _uwsgi(program, source)
        elif program.name == "hotmode" and program.args[:1] == ("run",):
            found = next(
                (f for a in _positionals(program)[1:] if (f := _as_target(a, source, None))),
                None,
            )
        elif program.name in {"manage.py", "django-admin"} and program.args[:1] in (
            ("runserver",),
            ("runserver_plus",),
        ):
            found = django_target(source, env.get("DJANGO_SETTINGS_MODULE"))
            if found:
                return Found(
                    found.target, found.source, f"`{program.name} {program.args[0]}`: {found.why}"
                )
        elif program.name == "flask" and "run" in program.args:
            given = program.flag_value("--app") or program.flag_value("-A")
            found = flask_target(source, given or env.get("FLASK_APP"))
            if found:
                return Found(found.target, found.source, f"`flask run`: {found.why}")
        elif (script := _python_file(program.name, source)) is not None:
            found = _served_in(script, source)
            if found:
                return found
        if found is not None:
            return Found(
                found.target,
                found.source,
                f"the server command `{program.name}` names {found.target}",
            )
    return None


def _python_file(name: str, source: Path) -> Path | None:
    """The source's file a command runs with Python: `python -m pkg` (its `__main__.py`),
    `python -m pkg.mod` or `python path/to/script.py`; None for any other program."""
    if name.endswith(".py"):
        return _inside(source, name)
    if not _MODULE.match(name):
        return None
    for root in _import_roots(source):
        package = root.joinpath(*name.split("."))
        if (package / "__main__.py").is_file():
            return package / "__main__.py"
        if (module := _module_file(root, name)) is not None and module.name != "__init__.py":
            return module
    return None


def _served_in(script: Path, source: Path) -> Found | None:
    """The target a server started in `script`'s code names (`_SERVED_IN_CODE`)."""
    match = _SERVED_IN_CODE.search(_read(script))
    found = _as_target(match.group("target"), source, None) if match else None
    if found is None:
        return None
    why = f"the server started in {_shown(script)} names {found.target}"
    return Found(found.target, found.source, why)


def scripts_named(text: str, source: Path) -> list[Path]:
    """Shell scripts of the source that a command line runs (an entrypoint script)."""
    found = []
    for word in words(text):
        if "/" in word or word.endswith(".sh") or word.startswith("docker-entrypoint"):
            path = _inside(source, word)
            if path is not None and path.suffix != ".py" and path.stat().st_size < 65536:
                found.append(path)
    return found


def _script(text: str) -> str:
    """A shell script as one command line: comments dropped, continuations joined, one command
    per line."""
    text = re.sub(r"\\\n", " ", text)
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    return " ; ".join(lines)


def read_script(path: Path) -> str:
    """A shell script of the source as one command line."""
    return _script(_read(path))


def from_commands(texts: Iterable[str], source: Path, env: Mapping[str, str]) -> Found | None:
    """The first target the command lines name, directly or through the scripts they run."""
    texts = list(texts)
    for text in texts:
        if found := from_command(text, source, env):
            return found
    for text in texts:
        for script in scripts_named(text, source):
            if found := from_command(read_script(script), source, env):
                why = f"{found.why} (in {_shown(script)})"
                return Found(found.target, found.source, why)
    return None


def dockerfile_commands(source: Path) -> tuple[list[str], dict[str, str]]:
    """The final stage's ENTRYPOINT and CMD, and the ENV it sets, of the source's Dockerfile."""
    from hotmode.audit.build import parse_dockerfile

    path = source / "Dockerfile"
    text = _read(path)
    if not text:
        return [], {}
    parsed = parse_dockerfile(path, text)
    commands: list[str] = []
    env: dict[str, str] = {}
    for stage in reversed(parsed.chain(None)):
        for instruction, value in stage.instructions:
            if instruction in ("CMD", "ENTRYPOINT"):
                commands.append(_json_words(value))
            elif instruction == "ENV":
                for name, item in re.findall(r"(\w+)=(\"[^\"]*\"|'[^']*'|\S+)", value):
                    env[name] = item.strip("\"'")
    return commands[::-1], env


def _json_words(value: str) -> str:
    import json
    import shlex

    try:
        parts = json.loads(value)
    except ValueError:
        return value
    if isinstance(parts, list):
        return " ".join(shlex.quote(str(p)) for p in parts)
    return value


def procfile_command(source: Path) -> str | None:
    match = re.search(r"^web:\s*(?P<command>.+)$", _read(source / "Procfile"), re.M)
    return match.group("command") if match else None


# --- Django -------------------------------------------------------------------------------------


def _settings_module(source: Path, given: str | None) -> tuple[str, Path] | None:
    """The settings module (DJANGO_SETTINGS_MODULE, else manage.py's default) and the folder
    manage.py sits in (the import root)."""
    for root in [source, *sorted(p for p in source.iterdir() if p.is_dir())]:
        manage = root / "manage.py"
        if not manage.is_file():
            continue
        match = _SETTINGS_DEFAULT.search(_read(manage))
        module = given or (match.group("module") if match else None)
        if module:
            return module, root
    return None


def django_target(source: Path, settings: str | None = None) -> Found | None:
    """Django's WSGI app, as the project's settings name it (WSGI_APPLICATION), found from
    manage.py and DJANGO_SETTINGS_MODULE; None when the source is not a Django project."""
    if not source.is_dir():
        return None
    found = _settings_module(source, settings)
    if found is None:
        return None
    module, root = found
    path = _module_file(root, module)
    files = [path] if path else []
    if path is not None:  # a settings package: base.py, common.py... beside it
        files += sorted(p for p in path.parent.glob("*.py") if p != path)
    for candidate in files:
        match = _WSGI_APPLICATION.search(_read(candidate))
        if match:
            wsgi_module, _, attribute = match.group("path").rpartition(".")
            if _module_file(root, wsgi_module) is not None:
                return Found(
                    f"{wsgi_module}:{attribute}",
                    root,
                    f"Django: WSGI_APPLICATION in {_shown(candidate)} (settings "
                    f"{module}, from {'DJANGO_SETTINGS_MODULE' if settings else 'manage.py'})",
                )
    top = module.split(".")[0]
    for name in ("wsgi", "asgi"):
        wsgi = root / top / f"{name}.py"
        if re.search(r"^application\s*=", _read(wsgi), re.M):
            return Found(
                f"{top}.{name}:application",
                root,
                f"Django: {_shown(wsgi)} beside the settings {module}",
            )
    return None


# --- Flask --------------------------------------------------------------------------------------


def _app_in(path: Path, module: str) -> str | None:
    """The target of the app a module defines, as Flask looks for it: an app object named `app`
    or `application`, else any constructed, else a factory `create_app`/`make_app`, called."""
    text = _read(path)
    names = [m.group("name") for m in CONSTRUCTED.finditer(text)]
    names += [m.group("name") for m in _FACTORY_CALLED.finditer(text)]
    for name in ("app", "application", *names):
        if name in names:
            return f"{module}:{name}"
    factory = _FACTORY_DEFINED.search(text)
    return f"{module}:{factory.group('name')}()" if factory else None


def flask_target(source: Path, flask_app: str | None = None) -> Found | None:
    """Flask's app as `flask run` finds it: FLASK_APP (`module`, `module:name`, `module:
    create_app()`, `path/module.py`), else `wsgi.py` or `app.py`."""
    if flask_app:
        value = flask_app.strip()
        module, _, attribute = value.partition(":")
        if module.endswith(".py"):
            module = module[:-3].replace("/", ".").lstrip(".")
        for root in _import_roots(source):
            path = _module_file(root, module)
            if path is None:
                continue
            if attribute:
                name = attribute.split("(")[0].strip()
                called = "(" in attribute or re.search(rf"^def\s+{name}\s*\(", _read(path), re.M)
                target = (
                    f"{module}:{attribute}"
                    if "(" in attribute
                    else (f"{module}:{name}()" if called else f"{module}:{name}")
                )
            else:
                target = _app_in(path, module) or ""
            if target:
                return Found(target, root, f"Flask: FLASK_APP={value}")
        return None
    for root in _import_roots(source):
        for name in ("wsgi.py", "app.py"):
            path = root / name
            if path.is_file() and (default := _app_in(path, path.stem)):
                return Found(default, root, f"Flask: the app in {_shown(path)}")
    return None


def flask_app_setting(source: Path) -> str | None:
    """FLASK_APP as the project sets it for `flask`: `.flaskenv`, else `.env`."""
    for name in (".flaskenv", ".env"):
        match = _FLASK_APP_LINE.search(_read(source / name))
        if match:
            return match.group("value")
    return None


# --- the whole tree -----------------------------------------------------------------------------


def from_source(source: Path) -> Found | None:
    """An app built by a framework's constructor (or a factory called) in an entry file, else a
    Flask factory a package defines: only what names the app, never any `app = ...`."""
    for root in _import_roots(source):
        for name in _ENTRY_FILES:
            path = root / name
            text = _read(path)
            match = CONSTRUCTED.search(text) or _FACTORY_CALLED.search(text)
            if match:
                return Found(
                    f"{path.stem}:{match.group('name')}",
                    root,
                    f"the app object in {_shown(path)}",
                )
        for package in sorted(p for p in root.iterdir() if (p / "__init__.py").is_file()):
            text = _read(package / "__init__.py")
            factory = _FACTORY_DEFINED.search(text)
            if factory and re.search(r"^\s*(?:from|import)\s+(?:flask|quart)\b", text, re.M):
                return Found(
                    f"{package.name}:{factory.group('name')}()",
                    root,
                    f"the factory in {_shown(package / '__init__.py')}",
                )
    return None


def find_target(
    source: Path,
    commands: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> Found | None:
    """The app's target in `source`, from the evidence listed in the module's docstring;
    `commands` are the server commands the caller knows (the Compose service's)."""
    env = dict(env or {})
    docker_commands, docker_env = dockerfile_commands(source)
    env = {**docker_env, **env}
    procfile = procfile_command(source)
    every = [*commands, *docker_commands, *([procfile] if procfile else [])]
    if found := from_commands(every, source, env):
        return found
    if found := django_target(source, env.get("DJANGO_SETTINGS_MODULE")):
        return found
    flask_app = env.get("FLASK_APP") or flask_app_setting(source)
    if found := flask_target(source, flask_app):
        return found
    return from_source(source)
