"""`hotmode run --reload` end to end: real processes, real sockets on 127.0.0.1, real files."""

from __future__ import annotations

import http.client
import json
import re
import signal
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest

from hotmode.reload import compat
from reload.reload_support import (
    FORKED,
    Server,
    alive,
    children_of,
    parent_of,
    wait_until,
    write_version,
)

pytestmark = pytest.mark.e2e


def test_edit_reloads_and_leaves_no_pycache(app_dir: Path, servers: list[Server]) -> None:
    (app_dir / "templates").mkdir()
    server = Server(app_dir, "--reload")
    servers.append(server)
    first = server.get()
    assert first == {
        "version": "v1",
        "pid": first["pid"],
        "greeting": None,
        "reload": "true",
        "echo": None,
    }

    mark = len(server.lines)
    write_version(app_dir, "v2")
    second = server.wait_version("v2")
    assert second["pid"] != first["pid"]
    line = server.wait_for(
        r"reloaded \(version\.py changed\): import \d+ ms \(.+\), ready \d+ ms", start=mark
    )
    assert f"pid {second['pid']} serving" in line.string

    mark = len(server.lines)
    (app_dir / "templates" / "index.html").write_text("<p>read per request</p>")
    write_version(app_dir, "v3", rename=True)
    third = server.wait_version("v3")
    server.wait_for(r"reloaded \(version\.py changed\)", start=mark)
    assert "index.html" not in server.output()  # a template change restarts nothing

    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: server.get()["pid"] != third["pid"])
    assert not list(app_dir.rglob("__pycache__"))
    assert server.stop() == 143


def test_broken_edit_keeps_serving_then_the_fix_is_served(
    app_dir: Path, servers: list[Server]
) -> None:
    server = Server(app_dir, "--reload")
    servers.append(server)
    mark = len(server.lines)
    (app_dir / "version.py").write_text("VERSION = 'v2'\ndef broken(:\n")
    server.wait_for(
        r"version\.py:2: SyntaxError: .* still serving the last good version", start=mark
    )
    for _ in range(20):  # the old version answers every request while the edit stands
        assert server.get()["version"] == "v1"
    write_version(app_dir, "v2")
    server.wait_version("v2", timeout=5)
    assert server.stop() == 143


def test_a_broken_start_answers_503_naming_the_error_then_the_fix_serves(
    app_dir: Path, servers: list[Server]
) -> None:
    (app_dir / "version.py").write_text("VERSION = 'v1'\nundefined_name\n")
    server = Server(app_dir, "--reload", ready=r"answering 503 with the error on (http://\S+)")
    servers.append(server)
    assert "version.py:2: NameError: name 'undefined_name' is not defined" in server.output()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for _ in range(3):  # answered at once, on a kept-alive connection
        connection.request("POST", "/anything", body=b"payload")
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 503
        assert "version.py:2: NameError: name 'undefined_name' is not defined" in body
    write_version(app_dir, "v2")
    assert server.wait_version("v2")["version"] == "v2"
    connection.close()
    assert server.stop() == 143


def test_env_file_change_is_seen_without_touching_our_own_env(
    app_dir: Path, tmp_path: Path, servers: list[Server]
) -> None:
    env_file = tmp_path / "deploy" / ".env"
    env_file.parent.mkdir()
    env_file.write_text("GREETING=hello\n")
    server = Server(app_dir, "--reload", "--env-file", str(env_file), env={"GREETING": "outer"})
    servers.append(server)
    assert server.get()["greeting"] == "hello"
    env_file.write_text("GREETING=bonjour\n")
    wait_until(lambda: server.get()["greeting"] == "bonjour")
    env_file.write_text("# removed: the inherited value is back\n")
    wait_until(lambda: server.get()["greeting"] == "outer")
    assert server.stop() == 143


def test_requirements_change_runs_the_install_command(app_dir: Path, servers: list[Server]) -> None:
    (app_dir / "requirements.txt").write_text("uvicorn\n")
    server = Server(app_dir, "--reload", "--install", "echo installed >> install.log")
    servers.append(server)
    pid = server.get()["pid"]
    mark = len(server.lines)
    (app_dir / "requirements.txt").write_text("uvicorn\nfastapi\n")
    server.wait_for(r"dependencies changed: running echo installed", start=mark)
    log = app_dir / "install.log"
    wait_until(lambda: log.exists() and log.read_text() == "installed\n")
    wait_until(lambda: server.get()["pid"] != pid)  # then the zygote is rebuilt and it reloads
    assert server.stop() == 143


def test_two_workers_roll_and_sigint_exits_130(app_dir: Path, servers: list[Server]) -> None:
    server = Server(app_dir, "--reload", "--workers", "2")
    servers.append(server)
    server.wait_for(r"worker pid \d+ serving")
    before = {server.get()["pid"] for _ in range(30)}
    mark = len(server.lines)
    write_version(app_dir, "v2")
    server.wait_version("v2")
    swap = re.compile(r"reloaded \(version\.py changed\).* pid (\d+) serving")
    wait_until(lambda: sum(1 for line in server.lines[mark:] if swap.search(line)) >= 2)
    # Every worker that served before the first slot swapped (the first ones, or their refresh
    # onto a rebuilt zygote) must be gone: sampling answers alone cannot tell when the rolling
    # swap is over, since the kernel may hand every connection to the same worker.
    first = next(i for i in range(mark, len(server.lines)) if swap.search(server.lines[i]))
    served = re.compile(r"pid (\d+)\)? serving")
    old = before | {int(m.group(1)) for line in server.lines[:first] if (m := served.search(line))}
    wait_until(lambda: not any(alive(pid) for pid in old), timeout=15)
    bodies = [server.get() for _ in range(30)]
    assert {b["version"] for b in bodies} == {"v2"}
    assert not {b["pid"] for b in bodies} & old
    assert server.stop(signal.SIGINT) == 130


def test_sigterm_stops_cleanly_leaving_no_process(app_dir: Path, servers: list[Server]) -> None:
    server = Server(app_dir, "--reload")
    servers.append(server)
    server.get()
    tree = children_of(server.process.pid)
    assert len(tree) >= (2 if FORKED else 1)  # the zygote (when forking) and a worker
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 143
    assert time.monotonic() - started < 5
    wait_until(lambda: not any(alive(pid) for pid in tree), timeout=5)


def test_sigkill_of_the_supervisor_leaves_no_process(app_dir: Path, servers: list[Server]) -> None:
    server = Server(app_dir, "--reload")
    servers.append(server)
    server.get()
    tree = children_of(server.process.pid)
    assert len(tree) >= (2 if FORKED else 1)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=5)
    wait_until(lambda: not any(alive(pid) for pid in tree), timeout=8)


def test_a_streamed_download_in_flight_finishes_whole_on_the_old_code(
    app_dir: Path, servers: list[Server]
) -> None:
    # Only an event stream is ended at a reload (its client reconnects); a download cut short
    # with a last chunk would look complete to its client while missing its end.
    server = Server(app_dir, "--reload", env={"HOTMODE_DRAIN_TIMEOUT": "20"})
    servers.append(server)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/download")
    response = connection.getresponse()
    assert response.readline() == b"v1 0\n"
    write_version(app_dir, "v2")
    server.wait_version("v2", timeout=5)  # the new code serves while the download runs on
    rest = response.read().decode().splitlines()
    assert rest == [f"v1 {i}" for i in range(1, 60)]
    connection.close()
    assert server.stop() == 143


def test_a_long_stream_does_not_hold_a_reload_hostage(app_dir: Path, servers: list[Server]) -> None:
    server = Server(app_dir, "--reload", env={"HOTMODE_DRAIN_TIMEOUT": "1"})
    servers.append(server)
    old_pid = server.get()["pid"]
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/stream")
    response = connection.getresponse()
    assert response.readline() == b"tick\n"
    ended = threading.Event()

    def drain() -> None:
        try:
            while response.readline():
                pass
        except OSError:
            pass
        ended.set()

    threading.Thread(target=drain, daemon=True).start()
    started = time.monotonic()
    write_version(app_dir, "v2")
    server.wait_version("v2", timeout=3)  # served while the stream still runs
    assert ended.wait(timeout=4)  # the stream is cut at the bound (1 s, then SIGKILL at 2 s)
    wait_until(lambda: not alive(old_pid), timeout=3)
    assert time.monotonic() - started < 4
    connection.close()
    assert server.stop() == 143


def test_forced_polling_still_reloads(app_dir: Path, servers: list[Server]) -> None:
    server = Server(app_dir, "--reload", env={"HOTMODE_FORCE_POLLING": "1"})
    servers.append(server)
    assert "watching by polling: HOTMODE_FORCE_POLLING is set" in server.output()
    # The watcher is watching before anything serves, so this save (same size as v1, maybe in
    # the same second) is seen; and so is the next one, made as soon as v2 is served.
    write_version(app_dir, "v2")
    server.wait_version("v2")
    write_version(app_dir, "v3")
    server.wait_version("v3")
    assert server.stop() == 143


THREADED = """\
import threading
threading.Thread(target=threading.Event().wait, daemon=True).start()
"""


@pytest.mark.skipif(not FORKED, reason="workers are spawned: there is no zygote")
def test_a_module_that_starts_a_thread_is_left_out_of_the_zygote(
    app_dir: Path, tmp_path: Path, servers: list[Server]
) -> None:
    # A third-party module that starts a thread when imported would make forking from the
    # zygote unsafe: the zygote is rebuilt without it, and workers import it after the fork.
    site = tmp_path / "site"
    site.mkdir()
    (site / "threaded_lib.py").write_text(THREADED)
    (app_dir / "version.py").write_text("import threaded_lib\nVERSION = 'v1'\n")
    server = Server(app_dir, "--reload", env={"PYTHONPATH": str(site)})
    servers.append(server)
    server.wait_for(r"zygote: importing threaded_lib starts a thread; leaving it to the workers")
    (app_dir / "version.py").write_text("import threaded_lib\nVERSION = 'v2'\n")
    pid = server.wait_version("v2", timeout=20)["pid"]
    assert parent_of(pid) != server.process.pid  # forked from a zygote, not spawned
    assert "forking is not safe" not in server.output()
    assert server.stop() == 143


def plant_library(tmp_path: Path, name: str, source: str) -> tuple[dict[str, str], Path]:
    """A third-party module on the path that logs each process that imports it: the server's
    environment, and the log."""
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{name}.py").write_text(source)
    imported_by = tmp_path / "imported-by"
    return {"PYTHONPATH": str(site), "IMPORTED_BY": str(imported_by)}, imported_by


SLOW_LIBRARY = """\
import os, time
with open(os.environ["IMPORTED_BY"], "a") as log:
    log.write(f"{os.getpid()}\\n")
time.sleep(1.0)  # a heavy framework: the zygote rebuild is still under way at the first save
"""


@pytest.mark.skipif(not FORKED, reason="workers are spawned: there is no zygote")
def test_the_first_save_after_a_cold_start_forks_from_the_rebuilt_zygote(
    app_dir: Path, tmp_path: Path, servers: list[Server]
) -> None:
    # No module list learned yet: the first zygote has none of the app's libraries. The first
    # worker reports them as soon as the app is imported; a save made during the rebuild that
    # follows waits for it, instead of importing the libraries all over again.
    env, imported_by = plant_library(tmp_path, "slow_library", SLOW_LIBRARY)
    (app_dir / "version.py").write_text("import slow_library\nVERSION = 'v1'\n")
    server = Server(app_dir, "--reload", env=env)
    servers.append(server)
    first = server.get()["pid"]
    (app_dir / "version.py").write_text("import slow_library\nVERSION = 'v2'\n")
    second = server.wait_version("v2", timeout=20)["pid"]
    importers = {int(pid) for pid in imported_by.read_text().split()}
    assert first in importers  # the first worker imported the app (spawned, not waiting)
    assert second not in importers  # the reload did not import the library again
    assert parent_of(second) in importers  # but forked from the zygote that had
    assert server.stop() == 143


LAZY_LIBRARY = """\
import os
with open(os.environ["IMPORTED_BY"], "a") as log:
    log.write(f"{os.getpid()}\\n")
"""


@pytest.mark.skipif(not FORKED, reason="workers are spawned: there is no zygote")
def test_a_library_first_imported_by_a_request_is_preloaded_for_later_workers(
    app_dir: Path, tmp_path: Path, servers: list[Server]
) -> None:
    # Frameworks import some modules only at the first request (anyio's thread pool behind
    # FastAPI's plain `def` routes, for one). A worker reports them, at the latest when it is
    # replaced, so that the zygote preloads them and later workers' first requests are quick.
    env, imported_by = plant_library(tmp_path, "lazy_library", LAZY_LIBRARY)
    main = app_dir / "main.py"
    main.write_text(
        main.read_text().replace(
            '    body = b""\n',
            '    if scope["path"] == "/lazy":\n        import lazy_library\n    body = b""\n',
            1,
        )
    )
    server = Server(app_dir, "--reload", env=env)
    servers.append(server)
    first = server.get("/lazy")["pid"]
    assert imported_by.read_text().split() == [str(first)]  # the request imported it
    cache = next((tmp_path / "pycache").glob("hotmode-*.json"))
    assert "lazy_library" not in json.loads(cache.read_text())
    write_version(app_dir, "v2")
    server.wait_version("v2")
    wait_until(lambda: "lazy_library" in json.loads(cache.read_text()), timeout=20)

    def served_by_a_worker_that_had_it() -> bool:
        write_version(app_dir, f"v{time.monotonic_ns()}")  # a save: a worker from the zygote
        pid = server.get("/lazy")["pid"]
        return str(pid) not in imported_by.read_text().split()

    wait_until(served_by_a_worker_that_had_it, timeout=30, interval=0.5)
    assert server.stop() == 143


@pytest.mark.skipif(
    compat.handover_problem() is None, reason="run by `nox -s uvicorn_too_old` (noxfile.py)"
)
def test_an_uvicorn_older_than_the_range_is_named_and_reloads_without_handover(
    app_dir: Path, servers: list[Server]
) -> None:
    server = Server(app_dir, "--reload")
    servers.append(server)
    version = metadata.version("uvicorn")
    line = server.wait_for(rf"uvicorn {re.escape(version)} is older than {compat.OLDEST}")
    assert f"install uvicorn>={compat.OLDEST}" in line.string
    write_version(app_dir, "v2")
    server.wait_version("v2")
    assert server.stop() == 143
