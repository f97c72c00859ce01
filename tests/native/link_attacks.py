"""Links planted in the project, and what every command does with them (issue 26).

Run by `test_link_safety.py` as PID 1 of fresh PID and network namespaces (`unshare --pid --net
--fork --mount-proc`): `python link_attacks.py WORKDIR CASE` runs one attack, `... WORKDIR fuzz
N` the property test with N examples. WORKDIR holds the project and, beside it (outside the
project), the victims: a file, a folder of files and folders with their own modes, and a name a
dangling link points at. Two bystanders record every catchable signal they get. After each
command the victims' bytes, modes and presence are what they were, the bystanders are alive and
unsignalled, and the planted links are still there, untouched. Prints `CASE held` and exits 0,
or fails loudly.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bystander import BYSTANDER

os.environ["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # no engine: native only
WORK = Path(sys.argv[1]).resolve()
PROJECT = WORK / "project"
DOT = PROJECT / ".hotmode"
VICTIMS = WORK / "victims"
PORT = 8000
APP = """
import os, pathlib
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                folder = os.environ.get("DB_DIR")
                if folder:  # what an embedded database does: write into its data folder
                    pathlib.Path(folder, "app.sqlite3").write_text("written by the app")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""
DECLARATION = f"""name = "attacked"
source = "app"
target = "main:app"
port = {PORT}

[services.db]
image = "db:1"
port = 5432
embedded = {{ DB_DIR = "{{data}}" }}
"""


def make_project() -> None:
    (PROJECT / "app").mkdir(parents=True)
    (PROJECT / "app" / "main.py").write_text(APP)
    (PROJECT / "hotmode.toml").write_text(DECLARATION)


def make_victims() -> None:
    folder = VICTIMS / "folder"
    (folder / "sub").mkdir(parents=True)
    for index in range(12):  # enough `*.log` for run-log pruning to delete some
        (folder / f"{index:02}.log").write_text(f"victim log {index}\n")
    (folder / "sub" / "keep").write_text("deep victim\n")
    (folder / "sub").chmod(0o750)
    folder.chmod(0o700)
    (VICTIMS / "file").write_text("victim bytes\n")
    (VICTIMS / "file").chmod(0o640)


def picture(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under `root`: its mode, and its bytes (a file) or target (a link)."""
    seen: dict[str, tuple[int, bytes]] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                body = os.readlink(path).encode()
            elif stat.S_ISREG(info.st_mode):
                body = path.read_bytes()
            else:
                body = b""
            seen[str(path.relative_to(root))] = (info.st_mode, body)
    seen["."] = (root.lstat().st_mode, b"")
    return seen


def start_bystanders() -> list[subprocess.Popen[bytes]]:
    started = []
    for index, new_session in enumerate((False, True)):
        process = subprocess.Popen(
            [sys.executable, "-c", BYSTANDER, str(WORK / f"bystander-{index}.log")],
            stdout=subprocess.PIPE,
            start_new_session=new_session,
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        started.append(process)
    return started


def check_bystanders(bystanders: list[subprocess.Popen[bytes]]) -> None:
    for index, process in enumerate(bystanders):
        assert process.poll() is None, f"bystander {index} died ({process.returncode})"
        log = WORK / f"bystander-{index}.log"
        assert not log.exists(), f"bystander {index} got signals {log.read_text().split()}"


def hotmode(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    """The real CLI, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "hotmode", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def port_free() -> bool:
    """Free for a server to listen on (as servers bind: a closed connection's TIME_WAIT left by
    the readiness check does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", PORT))
        except OSError:
            return False
    return True


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def plant(where: str, target: Path | str) -> Path:
    link = PROJECT / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


def refused(result: subprocess.CompletedProcess[str], link: Path) -> None:
    """Exit 2 and one line naming the link."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{link} is a symbolic link" in lines[0], result.stderr


UP_PROD = ("up", "--native", "--detach", "--prod", "--allow-uncommitted")


# --- the attacks --------------------------------------------------------------------------------


def case_lock_link_to_a_file() -> None:
    link = plant(".hotmode/lock", VICTIMS / "file")
    refused(hotmode("down", "--native"), link)
    refused(hotmode(*UP_PROD), link)


def case_lock_link_dangling() -> None:
    link = plant(".hotmode/lock", VICTIMS / "created-through-the-link")
    refused(hotmode("down", "--native"), link)
    assert not (VICTIMS / "created-through-the-link").exists()


def case_data_link_to_a_folder() -> None:
    link = plant(".hotmode/data", VICTIMS / "folder")
    refused(hotmode("down", "--native", "--volumes", "--yes"), link)


def case_data_mode_link_to_a_folder() -> None:
    DOT.mkdir()
    link = plant(".hotmode/data/prod-default", VICTIMS / "folder")
    refused(hotmode("down", "--native", "--volumes", "--yes"), link)


def case_runs_link_to_a_folder() -> None:
    link = plant(".hotmode/runs", VICTIMS / "folder")
    refused(hotmode(*UP_PROD), link)
    assert port_free()


def case_snapshots_link_to_a_folder() -> None:
    link = plant(".hotmode/snapshots", VICTIMS / "folder")
    refused(hotmode(*UP_PROD), link)


def case_snapshot_entry_link_to_a_folder() -> None:
    link = plant(".hotmode/snapshots/0123456789ab", VICTIMS / "folder")
    refused(hotmode(*UP_PROD), link)


def case_pycache_link_to_a_folder() -> None:
    link = plant(".hotmode/pycache", VICTIMS / "folder")
    refused(hotmode("up", "--native", "--detach", "--dev"), link)


def case_embedded_default_through_a_data_link() -> None:
    link = plant(".hotmode/data/prod-default/db", VICTIMS / "folder")
    refused(hotmode(*UP_PROD), link)
    assert port_free()


def case_renamed_project_is_still_stopped() -> None:
    up = hotmode(*UP_PROD)
    assert up.returncode == 0, up.stderr
    pid = int(up.stdout.split("(pid ")[1].split(",")[0])
    moved = WORK / "project-renamed"
    PROJECT.rename(moved)
    try:
        down = hotmode("down", "--native", cwd=moved)
        assert down.returncode == 0, down.stderr
        assert f"stopped prod default (pid {pid})" in down.stdout, down.stdout
        assert wait_until(lambda: not alive(pid)), f"pid {pid} still runs"
        assert wait_until(port_free), "the port is still held"
    finally:
        moved.rename(PROJECT)


def case_unreadable_declaration() -> None:
    up = hotmode(*UP_PROD)
    assert up.returncode == 0, up.stderr
    pid = int(up.stdout.split("(pid ")[1].split(",")[0])
    declaration = PROJECT / "hotmode.toml"
    for text in (b'name = "\xff"\n', b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n"):
        declaration.write_bytes(text)
        for command in (("status",), ("logs", "--no-follow"), ("switch", "--dev"), UP_PROD):
            result = hotmode(*command)
            assert result.returncode == 2, (command, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert str(declaration) in result.stderr, result.stderr
    down = hotmode("down", "--native")
    assert down.returncode == 2 and len(down.stderr.strip().splitlines()) == 1, down.stderr
    assert f"stopped prod default (pid {pid})" in down.stdout, down.stdout
    assert wait_until(lambda: not alive(pid)), f"pid {pid} still runs"
    assert wait_until(port_free)


CASES = {name.removeprefix("case_"): f for name, f in dict(globals()).items() if
         name.startswith("case_")}  # fmt: skip


# --- the property test --------------------------------------------------------------------------

# Where hotmode keeps its own files and folders: where a link may be planted.
PLACES = (
    ".hotmode", ".hotmode/lock", ".hotmode/state.json", ".hotmode/companions.json",
    ".hotmode/.gitignore", ".hotmode/runs", ".hotmode/snapshots", ".hotmode/data",
    ".hotmode/logs", ".hotmode/pycache", ".hotmode/db-prod-default.log", ".hotmode/runs/x.log",
    ".hotmode/snapshots/UNCOMMITTED", ".hotmode/snapshots/0123456789ab",
    ".hotmode/data/prod-default", ".hotmode/data/dev-default", ".hotmode/data/prod-default/db",
    ".hotmode/data/dev-default/db", ".hotmode/logs/prod-default", ".hotmode/native-db.yml",
    ".hotmode/backup",
)  # fmt: skip
COMMANDS = (
    UP_PROD,
    ("up", "--native", "--detach", "--dev"),
    ("down", "--native"),
    ("down", "--native", "--volumes", "--yes"),
    ("switch", "--native", "--dev", "--allow-uncommitted"),
    ("status", "--native"),
    ("logs", "--native", "--no-follow"),
    ("exec", "--", "true"),
)


def run_in_process(*args: str) -> int:
    from hotmode.cli import main

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(PROJECT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(cwd)
    return int(code or 0)


def fuzz(examples: int, bystanders: list[subprocess.Popen[bytes]]) -> int:
    import shutil

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    targets = st.sampled_from(["file", "folder", "folder/sub", "dangling", "loop", "self"])
    trees = st.dictionaries(st.sampled_from(PLACES), targets, min_size=1, max_size=4)
    before = picture(VICTIMS)
    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(tree=trees, commands=st.permutations(COMMANDS))
    def example(tree: dict[str, str], commands: list[tuple[str, ...]]) -> None:
        nonlocal count
        shutil.rmtree(PROJECT, ignore_errors=True)
        make_project()
        planted = {}
        # Shallow places first, so that a folder planted deeper is made before a link above it.
        for where, kind in sorted(tree.items(), key=lambda item: item[0].count("/")):
            link = PROJECT / where
            if any(parent.is_symlink() for parent in link.parents):
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            target = {
                "dangling": VICTIMS / f"dangling-{link.name}",
                "loop": link.with_name(link.name + ".loop"),
                "self": link,
            }.get(kind, VICTIMS / kind)
            link.symlink_to(target)
            if kind == "loop":
                link.with_name(link.name + ".loop").symlink_to(link)
            planted[link] = os.readlink(link)
        for command in commands:
            run_in_process(*command)
            assert picture(VICTIMS) == before, (tree, command)
            for link, target in planted.items():
                assert link.is_symlink() and os.readlink(link) == target, (tree, command, link)
            check_bystanders(bystanders)
        run_in_process("down", "--native")
        assert port_free(), (tree, "a server was left running")
        count += 1

    example()
    return count


def main() -> int:
    what = sys.argv[2]
    make_victims()
    bystanders = start_bystanders()
    before = picture(VICTIMS)
    if what == "fuzz":
        count = fuzz(int(sys.argv[3]), bystanders)
        print(f"{count} examples held")
        return 0
    make_project()
    try:
        CASES[what]()
    finally:
        hotmode("down", "--native")
    assert picture(VICTIMS) == before, "a victim changed"
    check_bystanders(bystanders)
    print(f"{what} held")
    return 0


def as_init() -> int:
    """PID 1 ignores signals it has no handler for, and must reap orphans: fork the worker,
    reap everything, and exit with the worker's code."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    worker = os.fork()
    if worker == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            code = main()
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        os._exit(code)
    while True:
        pid, status = os.wait()
        if pid == worker:
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    raise SystemExit(as_init() if os.getpid() == 1 else main())
