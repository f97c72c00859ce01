"""Migration jobs the app already runs before it serves, proposed as `[jobs.NAME]`.

Evidence only: Django's `manage.py migrate` or Flask-Migrate's `flask db upgrade` in the app
service's Compose command or entrypoint, or in a shell script they run (`docker-entrypoint.sh`:
`python manage.py migrate --noinput && exec gunicorn ...`). A Django or Flask app whose commands
do not run one gets none: whether it migrates at start is the team's choice, never guessed from
the framework.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path

from hotmode.adopt.targets import read_script, scripts_named
from hotmode.audit.commands import programs, words


def _jobs_in(text: str, source: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for program in programs(words(text)):
        args = list(program.args)
        if program.name == "manage.py" and args[:1] == ["migrate"]:
            if (source / "manage.py").is_file():  # the job runs in the source folder
                found.setdefault("migrate", ["python", "manage.py", *args])
        elif program.name == "flask" and any(args[i : i + 2] == ["db", "upgrade"]
                                             for i in range(len(args))):  # fmt: skip
            found.setdefault("db-upgrade", ["python", "-m", "flask", *args])
    return found


def migration_jobs(
    commands: Iterable[str], source: Path, taken: Iterable[list[str]] = ()
) -> tuple[dict[str, list[str]], list[str]]:
    """The jobs the commands (and the scripts they run) show, and a note for each; a command
    already declared as a job (`taken`) is not proposed twice."""
    jobs: dict[str, list[str]] = {}
    notes: list[str] = []
    # A Compose service the app waits for that migrates already: its job, not a second one.
    already = {name for command in taken for name in _jobs_in(shlex.join(command), source)}
    for text in commands:
        places = [(text, "the app's Compose command")]
        places += [(read_script(script), script.name) for script in scripts_named(text, source)]
        for command_text, where in places:
            for name, command in _jobs_in(command_text, source).items():
                if name in jobs or name in already:
                    continue
                jobs[name] = command
                notes.append(
                    f"[jobs.{name}]: {where} runs `{' '.join(command)}` before the app: "
                    "a job, before the app in every mode"
                )
    return jobs, notes
