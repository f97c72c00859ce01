"""What runs beside a native app, as recorded in `.hotmode/companions.json`, and stopping it.

The record is untrusted input, like `state.json`: every entry is parsed strictly, and a process
entry is acted on only while `hotmode.procs` proves its process is the one hotmode started for
this project (PID, start time, argv, run id, project folder). A hostile value is reported as a
note and dropped: never signalled, never a crash. The record is written *before* a companion
starts ("starting"), and every companion process carries the project's marker in its
environment (`HOTMODE_PROJECT`, `HOTMODE_RUN_ID`, `HOTMODE_COMPANION`), so that `stop` finds it
by the /proc scan even when its record was never written or was lost. A Docker entry names no
container: `stop` acts only on containers labelled with this project's folder.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hotmode import procs, safefs
from hotmode.atomic import write_atomic

VERSION = 1
STOP_TIMEOUT = 10.0
COMPANION_VARIABLE = "HOTMODE_COMPANION"
# The labels a native app's companion container carries (`companion_docker.start`).
PROJECT_LABEL = "hotmode.project"
RUN_LABEL = "hotmode.run"
COMPANION_LABEL = "hotmode.native-companion"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_RUN_ID = re.compile(r"^[0-9a-f]{0,32}$")


@dataclass(frozen=True)
class Entry:
    """One companion as recorded: how it runs, where, and (a process) its proven identity."""

    name: str
    how: str  # "process" or "docker"
    state: str  # "starting" or "running"
    detail: str
    port: int = 0
    process: procs.ProcessId | None = None
    # The run id and user a process is started with, written before it starts: a process of
    # another user (the database's own) is believed by its marker only with both (`marked`).
    run_id: str = ""
    uid: int = -1

    def as_dict(self) -> dict[str, Any]:
        process = self.process
        return {
            "name": self.name,
            "how": self.how,
            "state": self.state,
            "detail": self.detail,
            "port": self.port,
            "run_id": self.run_id,
            "uid": self.uid,
            "process": None
            if process is None
            else {
                "pid": process.pid,
                "start_time": process.start_time,
                "argv": list(process.argv),
                "run_id": process.run_id,
                "project": process.project,
            },
        }


@dataclass(frozen=True)
class Stopped:
    """What `stop` stopped (one line each), and what it noticed without acting on it."""

    stopped: tuple[str, ...]
    notes: tuple[str, ...]


def path(root: Path) -> Path:
    return root / ".hotmode" / "companions.json"


def _entry(data: object, root: Path) -> Entry:
    if not isinstance(data, dict):
        raise ValueError("an entry is not an object")
    name, how, state, detail, port = (
        data.get(k) for k in ("name", "how", "state", "detail", "port")
    )
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name {name!r} is not a service name")
    if how not in ("process", "docker"):
        raise ValueError(f"{name}: how {how!r} is not process or docker")
    if state not in ("starting", "running"):
        raise ValueError(f"{name}: state {state!r} is not starting or running")
    if not isinstance(detail, str):
        raise ValueError(f"{name}: detail is not text")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise ValueError(f"{name}: port {port!r} is not a TCP port")
    run_id, uid = data.get("run_id", ""), data.get("uid", -1)
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise ValueError(f"{name}: run_id {run_id!r} is not a run id")
    if not isinstance(uid, int) or isinstance(uid, bool) or uid < -1:
        raise ValueError(f"{name}: uid {uid!r} is not a user id")
    process = data.get("process")
    return Entry(
        name,
        how,
        state,
        detail,
        port,
        None if process is None else procs.parse_record(process, f"{name}.process", root),
        run_id,
        uid,
    )


def read(root: Path) -> tuple[list[Entry], list[str]]:
    """The entries that parse, and a note for each that does not (or for the whole file)."""
    where = path(root)
    problem = procs.record_file_problem(where)
    if problem:
        return [], [f"{problem}; nothing was signalled for it"]
    try:
        raw = procs.read_record_bytes(where)
        if raw is None:
            return [], []
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        reason = "it is not valid JSON" if isinstance(exc, ValueError) else str(exc)
        return [], [f"ignored {where}: {reason}; nothing was signalled for it"]
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return [], [f"ignored {where}: not a version {VERSION} record; nothing was signalled"]
    if not procs.same_project(data.get("project"), data.get("project_id"), root):
        return [], [f"ignored {where}: it belongs to another project folder; nothing was signalled"]
    items = data.get("companions")
    if not isinstance(items, list):
        return [], [f"ignored {where}: it lists no companions; nothing was signalled"]
    entries, notes = [], []
    for item in items:
        try:
            entries.append(_entry(item, root))
        except (ValueError, RecursionError) as exc:
            notes.append(f"ignored an entry of {where}: {exc}; nothing was signalled for it")
    return entries, notes


def write(root: Path, entries: list[Entry]) -> None:
    document = {
        "version": VERSION,
        "project": str(root),
        "project_id": procs.project_id(root),
        "companions": [entry.as_dict() for entry in entries],
    }
    write_atomic(path(root), json.dumps(document, indent=2) + "\n", within=root)


def clear(root: Path) -> None:
    """Remove the record, unless what is there is not a regular file (never ours to remove)."""
    where = path(root)
    if not procs.record_file_problem(where):
        safefs.unlink(root, where)


def marked(root: Path) -> list[procs.ProcessId]:
    """Every running companion process hotmode started for this project, recorded or not."""
    return [
        process
        for process in procs.find_marked(root, written(root))
        if (procs.read_environ(process.pid) or {}).get(COMPANION_VARIABLE)
    ]


def written(root: Path) -> set[tuple[str, int]]:
    """The run ids (with the user each runs as) that the record says hotmode started."""
    return {(entry.run_id, entry.uid) for entry in read(root)[0] if entry.run_id}


def companion_of(process: procs.ProcessId) -> str:
    """The companion a marked process was started for, from its environment."""
    return (procs.read_environ(process.pid) or {}).get(COMPANION_VARIABLE, "?")


def port_answers(port: int) -> bool:
    if not 0 < port < 65536:
        return False
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def stop_process(process: procs.ProcessId, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM (postgres: a smart shutdown), then SIGINT (fast), then SIGKILL the session's
    proven members; only if the process is proven to be the one hotmode started."""
    return procs.stop(process, timeout, own_session=True, gentle=(signal.SIGTERM, signal.SIGINT))


def stop(root: Path, remove_containers: Callable[[Path], list[str]]) -> Stopped:
    """Stop every companion of this project: the proven recorded ones, every marked process,
    and (when the record names Docker) the containers labelled with this project's folder."""
    entries, notes = read(root)
    stopped: list[str] = []
    seen: set[int] = set()
    for entry in entries:
        if entry.process is None:
            continue
        why = procs.why_not(entry.process)
        if not why and entry.process.project != str(root):
            # Proven, in a folder since renamed: the /proc scan below looks for the new name.
            seen.add(entry.process.pid)
            if stop_process(entry.process):
                stopped.append(f"{entry.name} (pid {entry.process.pid})")
        elif why and not procs.alive(procs.read_stat(entry.process.pid)):
            notes.append(f"{entry.name} had stopped unexpectedly (pid {entry.process.pid})")
        elif why:
            notes.append(f"the record of {entry.name} is stale: {why}; nothing was signalled")
    for process in marked(root):
        if process.pid in seen:
            continue
        seen.add(process.pid)
        name = companion_of(process)
        if stop_process(process):
            stopped.append(f"{name} (pid {process.pid})")
    if any(entry.how == "docker" for entry in entries):
        stopped += [f"{name} in Docker" for name in remove_containers(root)]
    clear(root)
    return Stopped(tuple(stopped), tuple(notes))


def running(entry: Entry) -> bool:
    """True if a recorded companion still runs: its process proven, and its port answering."""
    if entry.process is not None and procs.why_not(entry.process):
        return False
    return port_answers(entry.port)


def with_state(entry: Entry, state: str, **changes: Any) -> Entry:
    return replace(entry, state=state, **changes)
