"""What a service's command runs: a Python web server, a worker, a one-shot job, a reloader.

Compose files start Python backends in a handful of ways, often wrapped in `sh -c`, `poetry
run` or `python -m`. This module reads a command (and the environment beside it) as words and
answers the questions the roles and the reload rules ask: which server, which worker, which job,
and whether, and why, it reloads on change. One matcher serves dev ("does it reload?") and prod
("it must not"), so the two can never disagree.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

# Python web servers, by the program name people type.
SERVERS = {"uvicorn", "gunicorn", "hypercorn", "granian", "daphne", "uwsgi", "waitress-serve"}
WORKERS = {"celery", "rq", "rqworker", "dramatiq", "arq", "huey_consumer", "huey_consumer.py"}
WATCHERS = {"watchfiles", "watchgod", "watchmedo", "nodemon", "entr", "hupper", "reflex", "air"}
_TRUE = {"1", "true", "yes", "on"}
# `manage.py <command>` (or `django-admin <command>`) that are one-shot jobs.
_DJANGO_JOBS = {"migrate", "collectstatic", "test", "makemigrations", "loaddata", "check"}
# `manage.py <command>` that run a task worker (django-rq, django-q, background_task, channels).
_DJANGO_WORKERS = {"rqworker", "rqscheduler", "qcluster", "process_tasks", "runworker", "celery"}
_TEST_RUNNERS = {"pytest", "py.test", "tox", "nox", "unittest"}
_SEPARATORS = {"&&", "||", ";", "|", "&"}


def words(text: str) -> list[str]:
    """A command line as words, splitting `sh -c` scripts and `a && b` chains too."""
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = text.split()
    out: list[str] = []
    for part in parts:
        if " " in part.strip() and part is not parts[0]:
            out += words(part)  # the script of `sh -c '...'`
        else:
            out += re.split(r"(?<=;)|(?=;)", part) if part.endswith(";") else [part]
    return [w for w in out if w]


# A Python wrapper that becomes its arguments (`python -c '...; os.execvp(sys.argv[1],
# sys.argv[1:])' CMD ...`, as hotmode's URL-secret launcher is): what runs is CMD.
_EXEC_ITS_ARGUMENTS = re.compile(r"os\.exec[lv]p?e?\(sys\.argv\[1\],\s*sys\.argv\[1:\]\)\s*$")


def command_words(service: Mapping[str, object], key: str = "command") -> list[str]:
    """The words of a service's `command` or `entrypoint` as Compose merged it; past a Python
    wrapper that execs its arguments, the command it becomes."""
    value = service.get(key)
    if isinstance(value, list):
        parts = [str(part) for part in value]
        while (
            len(parts) > 3
            and _program(parts[0]) in ("python", "python3")
            and parts[1] == "-c"
            and _EXEC_ITS_ARGUMENTS.search(parts[2])
        ):
            parts = parts[3:]
        return words(" ".join(shlex.quote(part) for part in parts))
    return words(str(value)) if value else []


def _program(word: str) -> str:
    return PurePosixPath(word).name


def _segments(argv: list[str]) -> list[list[str]]:
    """Split `a && b; c` into its commands."""
    segments: list[list[str]] = [[]]
    for word in argv:
        if word in _SEPARATORS or word == ";":
            segments.append([])
        else:
            segments[-1].append(word)
    return [s for s in segments if s]


_RUNNERS = {"exec", "poetry", "uv", "pipenv", "pdm", "hatch", "rye", "nice", "tini", "dumb-init"}
# Programs that run the command after their own words: `newrelic-admin run-program CMD`,
# `gosu USER CMD`, `ddtrace-run CMD`; the number of words to skip.
_WRAPPERS = {
    "newrelic-admin": 2, "ddtrace-run": 1, "opentelemetry-instrument": 1, "gosu": 2,
    "su-exec": 2, "setpriv": 1, "chpst": 1, "with-contenv": 1,
}  # fmt: skip
_DEBUGPY_VALUE_OPTIONS = {"--listen", "--connect", "--log-to", "--configure-subProcess", "--pid"}
_SHELLS = {"sh", "bash", "ash", "dash", "zsh"}
# Python options that take a value as the next word.
_PYTHON_VALUE_OPTIONS = {"-X", "-W", "-Q"}


def _after_python(segment: list[str]) -> list[str]:
    """The words from the program itself: drops `python -m`, `poetry run`, `exec`, `VAR=x`."""
    rest = list(segment)
    while rest:
        head = _program(rest[0])
        if head in _SHELLS and len(rest) > 1 and rest[1].startswith("-"):
            rest = rest[1:]  # `sh -c 'script'`: the script's words follow the options
            while rest and rest[0].startswith("-"):
                rest = rest[1:]
        elif re.match(r"(wait[-_]for|dockerize$)", head) and len(rest) > 1:
            # `wait-for-it.sh db:5432 -- CMD`, `wait-for-postgres.sh db CMD`: what waits runs CMD.
            if "--" in rest:
                rest = rest[rest.index("--") + 1 :]
            else:
                after = [i for i, w in enumerate(rest[2:], 2) if w.startswith(("/", "./"))]
                rest = rest[after[0] :] if after else []
        elif head == "debugpy":
            # `debugpy --listen ADDR [--wait-for-client] -m MODULE ...` (or a script path).
            index = 1
            while index < len(rest) and rest[index].startswith("-") and rest[index] != "-m":
                takes_value = "=" not in rest[index] and rest[index] in _DEBUGPY_VALUE_OPTIONS
                index += 2 if takes_value else 1
            rest = rest[index + (index < len(rest) and rest[index] == "-m") :]
        elif head in _WRAPPERS and len(rest) > _WRAPPERS[head]:
            rest = rest[_WRAPPERS[head] :]
        elif head in _RUNNERS and len(rest) > 1:
            rest = rest[2:] if rest[1] == "run" else rest[1:]
            while rest and rest[0] == "--":
                rest = rest[1:]
        elif re.fullmatch(r"python[0-9.]*", head):
            index = 1
            while index < len(rest) and rest[index].startswith("-") and rest[index] != "-m":
                if rest[index] == "-c":
                    return []
                index += 2 if rest[index] in _PYTHON_VALUE_OPTIONS else 1
            if index < len(rest) and rest[index] == "-m":
                index += 1
            rest = rest[index:]
            if not rest or _program(rest[0]) != "debugpy":
                return rest
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", rest[0]):
            rest = rest[1:]  # `VAR=value cmd`
        else:
            return rest
    return rest


@dataclass(frozen=True)
class Program:
    """One command of a command line: its program name and its arguments."""

    name: str
    args: tuple[str, ...]

    def has(self, *flags: str) -> bool:
        return any(a == f or a.startswith(f"{f}=") for a in self.args for f in flags)

    def flag_value(self, flag: str) -> str | None:
        for index, arg in enumerate(self.args):
            if arg.startswith(f"{flag}="):
                return arg.split("=", 1)[1]
            if arg == flag and index + 1 < len(self.args):
                return self.args[index + 1]
        return None


def programs(argv: list[str]) -> list[Program]:
    """Every command a command line runs, `python -m X` and `poetry run X` unwrapped."""
    found = []
    for segment in _segments(argv):
        inner = _after_python(segment)
        if not inner:
            continue
        program = Program(_program(inner[0]), tuple(inner[1:]))
        found.append(program)
        if program.name in WATCHERS:
            found += programs(_watched(list(program.args)))
    return found


# Options of watchers that take the next word as their value (`--filter python`).
_WATCHER_VALUE_OPTIONS = {
    "--filter", "--target-type", "--ignore-paths", "--sigint-timeout", "--sigkill-timeout",
    "--grace-period", "--directory", "-d", "--patterns", "-p", "--ignore-patterns", "-w",
}  # fmt: skip


def _watched(args: list[str]) -> list[str]:
    """The command a file watcher runs: after `--`, else from the first program it names."""
    if "--" in args:
        return args[args.index("--") + 1 :]
    known = SERVERS | WORKERS | {"manage.py", "flask", "fastapi", "hotmode"}
    for index, arg in enumerate(args):
        if index and args[index - 1] in _WATCHER_VALUE_OPTIONS:
            continue
        if _program(arg) in known or re.fullmatch(r"python[0-9.]*", _program(arg)):
            return args[index:]
        # `watchfiles celery.__main__.main --args '-A app worker'`: a function of a package.
        package = arg.split(".")[0]
        if "." in arg and package in known:
            # `words` has split the quoted `--args` already.
            given = args[args.index("--args") + 1 :] if "--args" in args else []
            return [package, *given]
    return []


def _django(program: Program) -> str | None:
    """The subcommand of `manage.py X` or `django-admin X`."""
    if program.name in {"manage.py", "django-admin", "django-admin.py"} and program.args:
        return program.args[0]
    return None


def server(argv: list[str]) -> str | None:
    """The Python web server a command line runs, named as a user would say it."""
    for program in programs(argv):
        if program.name in SERVERS:
            return program.name
        sub = _django(program)
        if sub in {"runserver", "runserver_plus"}:
            return f"manage.py {sub}"
        if program.name == "fastapi" and program.args and program.args[0] in {"run", "dev"}:
            return f"fastapi {program.args[0]}"
        if program.name == "flask" and "run" in program.args:
            return "flask run"
        if program.name == "hotmode" and program.args[:1] == ("run",):
            return "hotmode run"
    return None


def worker(argv: list[str]) -> str | None:
    """The task worker (or scheduler) a command line runs: celery, rq, dramatiq..."""
    for program in programs(argv):
        if program.name in WORKERS:
            role = next((a for a in program.args if a in {"worker", "beat", "flower"}), "")
            return f"{program.name} {role}".strip()
        sub = _django(program)
        if sub in _DJANGO_WORKERS:
            return f"manage.py {sub}"
    return None


# Programs that do their work and exit: a command line made only of them runs once.
_ONE_SHOT = {"chown", "chmod", "mkdir", "cp", "touch", "ln", "rm", "mv", "echo", "true", "chgrp"}


def job(argv: list[str]) -> str | None:
    """The one-shot job a command line runs: migrations, collectstatic, a test runner, or file
    chores only (`chown -R 1000 /data`)."""
    found = programs(argv)
    if found and all(program.name in _ONE_SHOT for program in found):
        return f"{found[0].name}, which exits when done"
    for program in found:
        sub = _django(program)
        if sub in _DJANGO_JOBS:
            return f"manage.py {sub}"
        if program.name == "alembic" and "upgrade" in program.args:
            return "alembic upgrade"
        if program.name in _TEST_RUNNERS:
            return program.name
        if program.name == "flask" and program.args[:2] == ("db", "upgrade"):
            return "flask db upgrade"
    return None


def _flask_debug(program: Program, env: Mapping[str, str]) -> bool:
    if program.has("--no-reload"):
        return False
    if program.has("--reload") or program.has("--debug"):
        return True
    return (
        env.get("FLASK_DEBUG", "").strip().lower() in _TRUE
        or env.get("FLASK_ENV", "").strip().lower() == "development"
    )


def reloading(argv: list[str], env: Mapping[str, str] | None = None) -> str | None:
    """Why a command line reloads on change (a short phrase), or None if it does not.

    `--reload` in any server, Django's `runserver` without `--noreload`, `fastapi dev`, `flask
    run` in debug mode, a file watcher (watchmedo, watchfiles, ...), `hotmode run --reload`.
    """
    env = env or {}
    for program in programs(argv):
        name = program.name
        if name in WATCHERS:
            return f"{name} watches files"
        sub = _django(program)
        if sub in {"runserver", "runserver_plus"}:
            return None if program.has("--noreload") else f"manage.py {sub} reloads by default"
        if name == "fastapi" and program.args[:1] == ("dev",):
            return None if program.has("--no-reload") else "fastapi dev reloads by default"
        if name == "flask" and "run" in program.args and _flask_debug(program, env):
            return "flask run in debug mode reloads"
        if name == "celery" and program.has("--autoreload"):
            return "celery --autoreload"
        flag = next((f for f in ("--py-autoreload", "--touch-reload") if program.has(f)), None)
        if name == "uwsgi" and flag and program.flag_value(flag) not in {"0", None}:
            return f"uwsgi {flag}"
        if "--reload" in program.args:
            return f"{name} --reload"
        value = program.flag_value("--reload")
        if value is not None and value.lower() in _TRUE:
            return f"{name} --reload={value}"
    for variable in ("UVICORN_RELOAD", "HOT_RELOAD_ENABLED"):
        if env.get(variable, "").strip().lower() in _TRUE:
            return f"{variable}=true"
    if re.search(r"(^|\s)--reload\b", env.get("GUNICORN_CMD_ARGS", "")):
        return "GUNICORN_CMD_ARGS has --reload"
    return None
