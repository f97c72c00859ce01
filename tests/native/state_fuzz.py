"""Feed `hotmode status` and `hotmode down` arbitrary record files, among bystander processes.

Both records are fuzzed at once: `.hotmode/state.json` (the app) and `.hotmode/companions.json`
(its database and other companions), each with any bytes, any JSON, or a well-formed record
around dangerous PIDs, bystanders' faithful identities and Docker entries naming any project.

Run by `test_state_safety.py` as PID 1 of a fresh PID namespace (`unshare --pid --fork
--mount-proc`), so that a wrong signal (`kill(-1)` terminates every process it may) can only
hit this namespace. PID 1 ignores signals it has no handler for, so it forks a worker to run the
examples and only reaps. Bystanders record every catchable signal they receive in a file; after
each example they must all be alive with an empty file, and the project must be usable: no
record left, and `status` clean. Prints `N examples passed` and exits 0, or fails loudly.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from bystander import BYSTANDER
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hotmode.cli import main

# No engine: a Docker entry can only ever reach containers labelled with this project's folder,
# and the fuzz stays fast and off the shared engine.
os.environ["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
PROJECT = Path(sys.argv[1]).resolve()
CONFIG = PROJECT / "hotmode.toml"
STATE = PROJECT / ".hotmode" / "state.json"
COMPANIONS = PROJECT / ".hotmode" / "companions.json"
OTHER_PROJECT = "/elsewhere/other-project"
LOGS = PROJECT / "bystanders"


def start_bystanders() -> list[subprocess.Popen[bytes]]:
    """Four bystanders: one in this process group, one in a session of its own, one plain, and
    one in a session of its own marked as another project's companion (a database that
    hotmode started for another folder on this machine)."""
    LOGS.mkdir(exist_ok=True)
    started = []
    marked = {
        **os.environ,
        "HOTMODE_PROJECT": OTHER_PROJECT,
        "HOTMODE_RUN_ID": "0123456789ab",
        "HOTMODE_COMPANION": "postgres",
    }
    for index, new_session in enumerate((False, True, False, True)):
        process = subprocess.Popen(
            [sys.executable, "-c", BYSTANDER, str(LOGS / f"{index}.log")],
            stdout=subprocess.PIPE,
            start_new_session=new_session,
            env=marked if index == 3 else None,
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        started.append(process)
    return started


def identity(pid: int) -> tuple[int, list[str]]:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().removesuffix(b"\0").split(b"\0")
    return int(stat[19]), [part.decode() for part in argv]


def hotmode(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--config", str(CONFIG)])
    return code, out.getvalue(), err.getvalue()


BYSTANDERS = start_bystanders() if os.getpid() != 1 else []
PIDS = [p.pid for p in BYSTANDERS]
IDENTITIES = [identity(pid) for pid in PIDS]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
pids = st.one_of(
    st.sampled_from([-1, 0, 1, 2, True, False, 1.5, "-1", "1", None, 2**31, -(2**31)]),
    st.sampled_from(PIDS or [3]),
    st.just(os.getpid()),
    st.integers(),
)


projects = st.sampled_from([str(PROJECT), str(PROJECT), OTHER_PROJECT, "", "/"])


@st.composite
def servers(draw: st.DrawFn) -> object:
    """A process entry: random, or a faithful copy of a bystander's (or this process's)
    identity, with this project's folder or another's."""
    if PIDS and draw(st.booleans()):
        index = draw(st.integers(0, len(PIDS) - 1))
        start, argv = IDENTITIES[index]
        return {
            "pid": PIDS[index],
            "start_time": draw(st.sampled_from([start, start + 1, 0])),
            "argv": draw(st.sampled_from([argv, [*argv, ""], ["python"]])),
            "run_id": draw(st.sampled_from(["", "abc", "0123456789ab"])),
            "project": draw(projects),
        }
    return {
        "pid": draw(pids),
        "start_time": draw(st.one_of(st.integers(), json_values)),
        "argv": draw(st.one_of(st.lists(st.text(max_size=8), max_size=3), json_values)),
        "run_id": draw(st.one_of(st.text(max_size=12), json_values)),
        "project": draw(st.one_of(projects, json_values)),
    }


@st.composite
def companion_entries(draw: st.DrawFn) -> object:
    """One companion: a process around any PID, or a Docker entry naming any Compose project."""
    entry: dict[str, object] = {
        "name": draw(st.sampled_from(["postgres", "redis", "", "../x"])),
        "how": draw(st.sampled_from(["process", "process", "docker", "embedded", None])),
        "state": draw(st.sampled_from(["starting", "running", "x"])),
        "detail": "pid 1",
        "port": draw(st.sampled_from([5432, 0, -1, 70000, True])),
        "process": draw(st.one_of(st.none(), servers())),
        # Old records named a Compose project; nothing may act on it.
        "project": draw(st.sampled_from(["other-app-prod", "", "x; rm -rf /"])),
        "pid": draw(pids),
    }
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(entry)))
        entry[key] = draw(json_values)
    return entry


@st.composite
def companion_records(draw: st.DrawFn) -> object:
    record: dict[str, object] = {
        "version": draw(st.sampled_from([1, 1, 1, 2, None])),
        "project": draw(projects),
        "companions": draw(st.lists(companion_entries(), max_size=3)),
    }
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(record)))
        record[key] = draw(json_values)
    # The old format: a bare list of entries.
    return record if draw(st.integers(0, 4)) else record["companions"]


@st.composite
def records(draw: st.DrawFn) -> object:
    record: dict[str, object] = {
        "version": draw(st.sampled_from([3, 3, 3, 2, None, "3"])),
        "mode": draw(st.sampled_from(["prod", "dev", "x"])),
        "edition": "core",
        "host": draw(st.sampled_from(["127.0.0.1", "", "::1"])),
        "port": draw(st.sampled_from([7778, 0, 70000, True, "7778"])),
        "revision": "abc",
        "mode_source": "--prod",
        "edition_source": "default",
        "log": draw(st.sampled_from(["", "/etc/passwd", "x.log"])),
        "started": draw(st.sampled_from([0.0, 1, None, "now"])),
        "server": draw(servers()),
        "owner": draw(st.one_of(st.none(), servers())),
    }
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(record)))
        record[key] = draw(json_values)
    return record


contents = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    records().map(lambda value: json.dumps(value).encode()),
)
companion_contents = st.one_of(
    st.none(),
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    companion_records().map(lambda value: json.dumps(value).encode()),
)


def pid_record(pid: object) -> bytes:
    """The issue's cases: a well-formed record around a dangerous PID."""
    return json.dumps(
        {
            "version": 3,
            "mode": "prod",
            "edition": "core",
            "host": "127.0.0.1",
            "port": 7778,
            "revision": "abc",
            "mode_source": "--prod",
            "edition_source": "default",
            "log": "",
            "started": 0.0,
            "owner": None,
            "server": {
                "pid": pid,
                "start_time": 0,
                "argv": ["python"],
                "run_id": "abc",
                "project": str(PROJECT),
            },
        }
    ).encode()


def companion_record(pid: object, how: str = "process") -> bytes:
    """The issue's cases: a companion around a dangerous PID, or a Docker entry."""
    process = {"pid": pid, "start_time": 0, "argv": ["postgres"], "run_id": "abc",
               "project": str(PROJECT)}  # fmt: skip
    entry = {"name": "postgres", "how": how, "state": "running", "detail": "", "port": 5432,
             "process": process, "pid": pid, "project": "other-app-prod"}  # fmt: skip
    return json.dumps({"version": 1, "project": str(PROJECT), "companions": [entry]}).encode()


def check_bystanders() -> None:
    for process in BYSTANDERS:
        assert process.poll() is None, f"bystander {process.pid} died ({process.returncode})"
    for log in LOGS.glob("*.log"):
        received = log.read_text().split()
        assert not received, f"bystander {log.stem} received signals {received}"


examples_run = 0


@settings(
    max_examples=int(os.environ.get("STATE_FUZZ_EXAMPLES", "250")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(contents, companion_contents)
@example(pid_record(-1), companion_record(-1))
@example(pid_record(0), companion_record(0))
@example(pid_record(True), companion_record(True))
@example(pid_record(2), companion_record(2))
@example(pid_record(1), companion_record(1))
@example(pid_record(1.5), companion_record(1.5))
@example(pid_record("-1"), companion_record("-1"))
@example(b"", companion_record(2**31))
@example(b"{", companion_record(1, "docker"))
@example(
    b"{", json.dumps([{"name": "postgres", "how": "process", "detail": "", "pid": -1}]).encode()
)
@example(
    b"{", json.dumps([{"name": "db", "how": "docker", "detail": "", "project": "other"}]).encode()
)
def test_untrusted_state(content: bytes, companions: bytes | None) -> None:
    global examples_run
    STATE.parent.mkdir(exist_ok=True)
    STATE.write_bytes(content)
    if companions is not None:
        COMPANIONS.write_bytes(companions)
    for args in (("status", "--json", "--native"), ("down", "--native")):
        code, out, err = hotmode(*args)
        assert code == 0, f"{args[0]} exited {code}: {err.strip()}"
        for line in err.splitlines():
            assert line.startswith("hotmode: note: "), f"{args[0]} said {line!r}"
            assert "internal error" not in line
        if args[0] == "down":
            assert "nothing was running" in out, out
        check_bystanders()
    assert not STATE.exists(), "down left the unusable record behind"
    assert not COMPANIONS.exists(), "down left the companions' record behind"
    code, out, err = hotmode("status", "--json", "--native")
    assert code == 0
    assert not err, err
    assert not any(row["running"] for row in json.loads(out)["modes"])
    examples_run += 1


def as_init() -> int:
    """PID 1: run the examples in a child, reap every orphan, return the child's code."""
    child = subprocess.Popen([sys.executable, *sys.argv])
    code = None
    while code is None:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child.pid:
            code = os.waitstatus_to_exitcode(status)
    return 1 if code is None else code


if __name__ == "__main__":
    if os.getpid() == 1:
        sys.exit(as_init())
    try:
        test_untrusted_state()
    finally:
        for process in BYSTANDERS:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
    print(f"{examples_run} examples passed")
