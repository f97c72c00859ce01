"""The lifecycle as a careful user tries it: untrusted records, races, interrupted switches,
rollbacks to the revision that ran, and bad input. Real processes, sockets, git and signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import get_json, git, run_hotmode, scrubbed_env, wait_until
from hotmode import procs
from native_support import Project, pid_alive

pytestmark = pytest.mark.e2e

FUZZ = Path(__file__).with_name("state_fuzz.py")


def _removed(folder: Path) -> bool:
    try:
        shutil.rmtree(folder)
    except OSError:
        return False
    return True


def served(project: Project) -> dict[str, object]:
    return get_json(project.port) or {}


def test_untrusted_state_files_never_signal_a_bystander(tmp_path: Path) -> None:
    """Any bytes, any JSON, and records around PIDs -1, 0, 1, 2, true, 1.5 and bystanders'
    own identities: status and down in a PID namespace, with bystanders recording signals."""
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    (root / "hotmode.toml").write_text('name = "fuzzed"\nsource = "app"\n')
    if not sys.platform.startswith("linux"):
        pytest.skip("PID namespaces (unshare) are Linux's; the fuzzed records run there")
    argv = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, str(FUZZ), str(root)]
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and unshare cannot make a PID namespace: {probe.stderr}")
        pytest.skip(f"no PID namespace here: {probe.stderr.strip()}")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "examples passed" in result.stdout
    assert int(result.stdout.split()[-3]) >= 100


@pytest.mark.parametrize("runs", [2, 4])
def test_concurrent_up_starts_exactly_one(project: Project, runs: int) -> None:
    argv = ["up", "--native", "--detach", "--prod", "--port", str(project.port)]
    with ThreadPoolExecutor(runs) as pool:
        results = list(pool.map(lambda _: project.hotmode(*argv), range(runs)))
    codes = sorted(r.returncode for r in results)
    assert codes == [0] + [1] * (runs - 1), [r.stderr for r in results]
    pid = project.server_pid()
    for loser in (r for r in results if r.returncode == 1):
        message = loser.stderr.strip()
        assert len(message.splitlines()) == 1
        assert "prod core is already running" in message or "another hotmode command" in message
    assert served(project).get("mode") == "prod"
    assert [p.pid for p in procs.find_marked(project.root)] == [pid]
    snapshots = project.root / ".hotmode" / "snapshots"
    assert [p.name for p in snapshots.iterdir()] == [git(project.root, "rev-parse", "HEAD")]
    down = project.hotmode("down", "--native")
    assert f"stopped prod core (pid {pid})" in down.stdout
    wait_until(lambda: not pid_alive(pid), 10)


def test_up_against_down_leaves_a_consistent_project(project: Project) -> None:
    with ThreadPoolExecutor(2) as pool:
        started = pool.submit(project.up, "--dev")
        time.sleep(0.3)
        stopped = pool.submit(project.hotmode, "down", "--native")
        results = started.result(), stopped.result()
    assert all(r.returncode in (0, 1) for r in results), [r.stderr for r in results]
    record = project.root / ".hotmode" / "state.json"
    marked = procs.find_marked(project.root)
    # Whatever the order: a server runs exactly when a record names it.
    assert [p.pid for p in marked] == ([project.server_pid()] if record.exists() else [])
    project.hotmode("down", "--native")
    assert not procs.find_marked(project.root)


def test_concurrent_switches_leave_one_mode_running(project: Project) -> None:
    assert project.up("--prod").returncode == 0
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(
                lambda mode: project.hotmode("switch", "--native", mode),
                ["--dev", "--prod"],
            )
        )
    assert sorted(r.returncode for r in results) in ([0, 0], [0, 1]), [r.stderr for r in results]
    for refused in (r for r in results if r.returncode == 1):
        assert "another hotmode command" in refused.stderr
    mode = project.state()["mode"]
    assert served(project).get("mode") == mode
    assert [p.pid for p in procs.find_marked(project.root)] == [project.server_pid()]


def test_switch_keeps_a_custom_port(project: Project) -> None:
    assert project.up("--prod").returncode == 0
    switched = project.hotmode("switch", "--native", "--dev")
    assert switched.returncode == 0, switched.stderr
    assert f":{project.port}" in switched.stdout
    assert served(project).get("mode") == "dev"


def test_failed_switch_rolls_back_to_the_revision_that_ran(project: Project) -> None:
    """Prod on A; a broken B committed and in the tree; switch --dev fails at once and prod is
    back on A (not HEAD), A's snapshot kept until then."""
    assert project.up("--prod").returncode == 0
    a = git(project.root, "rev-parse", "HEAD")
    project.edit("from fastapi import", "from fastapi import NoSuchName,")
    b = project.commit("broken")
    started = time.monotonic()
    switched = project.hotmode("switch", "--native", "--dev")
    elapsed = time.monotonic() - started
    assert switched.returncode == 1
    assert "NoSuchName" in switched.stderr
    assert f"prod core is back (revision {a[:12]})" in switched.stderr
    # The engine reported the failure: no waiting for the readiness deadline (60 s).
    assert elapsed < 45, elapsed
    info = served(project)
    assert info.get("mode") == "prod"
    assert info.get("revision") == a != b
    status = json.loads(project.hotmode("status", "--json", "--native").stdout)["modes"]
    assert [r["stale"] for r in status if r["running"]] == ["HEAD moved"]


def test_ctrl_c_during_switch_brings_prod_back(project: Project) -> None:
    assert project.up("--prod").returncode == 0
    prod = project.server_pid()
    # A dev tree whose import hangs: the switch is in progress for as long as the test wants.
    project.edit("from fastapi import", "import time; time.sleep(120)\nfrom fastapi import")
    switching = subprocess.Popen(
        [sys.executable, "-m", "hotmode", "switch", "--native", "--dev"],
        cwd=project.root,
        env=scrubbed_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: not pid_alive(prod), 30)
        record = project.root / ".hotmode" / "state.json"
        # The record of the dev server being started (the file is briefly absent before).
        wait_until(lambda: record.exists() and project.state().get("mode") == "dev", 30)
        switching.send_signal(signal.SIGINT)
        _, err = switching.communicate(timeout=60)
    finally:
        if switching.poll() is None:
            switching.kill()
            switching.communicate()
    assert switching.returncode == 130, err
    assert "interrupted" in err
    assert "prod core is back" in err
    assert served(project).get("mode") == "prod"
    assert [p.pid for p in procs.find_marked(project.root)] == [project.server_pid()]


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("", "is not an IP address"),
        ("999.1.1.1", "is not an IP address"),
        ("example", "is not an IP address"),
        ("192.0.2.1", "is not an address of this machine"),
    ],
)
def test_bad_host_is_one_line_exit_2(project: Project, host: str, message: str) -> None:
    result = project.hotmode("up", "--native", "--detach", "--dev", "--host", host)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (project.root / ".hotmode" / "state.json").exists()


def test_ipv6_loopback_is_served_and_stopped(project: Project) -> None:
    result = project.up("--prod", "--host", "::1")
    if result.returncode == 2:
        # No IPv6 on this machine: then it must say so in one line.
        assert "::1 is not an address of this machine" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert f"http://::1:{project.port}" in result.stdout
    assert project.hotmode("down", "--native").returncode == 0


def test_state_folder_that_is_a_file_is_one_line(project: Project) -> None:
    (project.root / ".hotmode").write_text("not a folder")
    result = project.up("--dev")
    assert result.returncode == 2
    assert ".hotmode" in result.stderr
    assert "internal error" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    (project.root / ".hotmode").unlink()


def test_deleted_current_folder_is_one_line(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", "import os, sys; from hotmode.cli import main; "
         f"os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); sys.exit(main(['status']))"],
        capture_output=True, text=True, env=scrubbed_env(),
    )  # fmt: skip
    assert result.returncode == 2
    assert "the current folder no longer exists" in result.stderr


def test_a_project_path_near_the_system_limit_is_one_line(tmp_path: Path) -> None:
    """The project itself fits, but `.hotmode/runs/<log>` would pass PATH_MAX (ENAMETOOLONG)."""
    limit = os.pathconf(tmp_path, "PC_PATH_MAX")
    root, part = tmp_path, 0
    while len(str(root)) < limit - 30:
        part += 1
        root = root / (f"{part:02d}" + "d" * min(198, limit - 32 - len(str(root))))
    os.makedirs(root / "app")
    (root / "hotmode.toml").write_text('name = "deep"\nsource = "app"\n')
    (root / "app" / "main.py").write_text("app = None\n")
    result = run_hotmode(root, "up", "--native", "--detach", "--dev")
    assert result.returncode == 2, result.stderr
    assert "longer than the system allows" in result.stderr
    assert "internal error" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("env_file", ["/etc/passwd", "../../../../etc/hostname"])
def test_env_file_outside_the_project_is_refused(project: Project, env_file: str) -> None:
    declaration = project.root / "hotmode.toml"
    declaration.write_text(
        declaration.read_text().replace('env_file = ".env.prod.saas"', f'env_file = "{env_file}"')
    )
    result = project.hotmode("up", "--native", "--detach", "--edition", "saas")
    assert result.returncode == 2
    assert "outside the deployment folder" in result.stderr
    assert "root:" not in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_foreground_up_stops_its_server_on_a_signal(project: Project, signum: int) -> None:
    """A closed terminal (SIGHUP) as well as SIGTERM and Ctrl-C: exit 128 + signal, nothing
    left running; meanwhile `logs` says where the output goes."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hotmode", "up", "--native", "--prod", "--port", str(project.port)],
        cwd=project.root,
        env=scrubbed_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: get_json(project.port, "/health"), 30)
        server = project.server_pid()
        logs = project.hotmode("logs", "--native", "--no-follow")
        assert logs.returncode == 1
        assert f"runs in the foreground and logs to the terminal of `hotmode up` (pid " \
            f"{process.pid})" in logs.stderr  # fmt: skip
        process.send_signal(signum)
        assert process.wait(timeout=20) == 128 + signum
        assert not pid_alive(server)
        assert not (project.root / ".hotmode" / "state.json").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def test_a_server_whose_record_was_deleted_is_found_and_stopped(project: Project) -> None:
    assert project.up("--dev").returncode == 0
    pid = project.server_pid()
    # The running dev server may still be writing there (its zygote's byte-code): retry.
    wait_until(lambda: _removed(project.root / ".hotmode"), 15)
    again = project.up("--dev")
    assert again.returncode == 1
    assert f"a dev core server of this project runs without its record (pid {pid}" in again.stderr
    down = project.hotmode("down", "--native")
    assert down.returncode == 0
    assert f"stopped a dev core server of this project that had no record (pid {pid})" in (
        down.stdout
    )
    wait_until(lambda: not pid_alive(pid), 10)


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_record_that_is_not_a_file_is_refused_in_one_line(project: Project, kind: str) -> None:
    """A FIFO never makes a command hang; a folder is refused before anything starts."""
    record = project.root / ".hotmode" / "state.json"
    record.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(record)
    else:
        record.mkdir()
    what = "a FIFO" if kind == "fifo" else "a folder"
    status = project.hotmode("status", "--native", timeout=30)
    assert status.returncode == 0
    assert f"{record} is {what}, not hotmode's record; move it away" in status.stderr
    for args in (("up", "--native", "--detach", "--dev"), ("down", "--native")):
        result = project.hotmode(*args, timeout=30)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == (
            f"hotmode: error: {record} is {what}, not hotmode's record; move it away"
        )
    assert not procs.find_marked(project.root)
    assert record.is_fifo() if kind == "fifo" else record.is_dir()


def test_a_foreign_listener_on_another_address_does_not_delay_up(project: Project) -> None:
    """Another program on [::1] at the same port: the server bound 127.0.0.1 and answers there."""
    import socket

    try:
        foreign = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        foreign.bind(("::1", project.port))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with foreign:
        foreign.listen()
        started = time.monotonic()
        result = project.up("--prod")
        assert result.returncode == 0, result.stderr
        # Not the readiness deadline (60 s): the server's own 127.0.0.1 socket counted.
        assert time.monotonic() - started < 30
        assert served(project).get("mode") == "prod"


def test_a_planted_data_link_is_refused_and_deletes_nothing(
    project: Project, tmp_path: Path
) -> None:
    """`.hotmode/data/<mode>-<edition>/<name>` may be a link to where the data lives (root in a
    private folder), but only a link hotmode made is followed: one planted to a bystander's
    folder is refused in one line naming it (exit 2), and nothing is deleted (issue 26)."""
    bystander = tmp_path / "bystander" / "dev-core" / "postgres"
    bystander.mkdir(parents=True)
    (bystander / "precious").write_text("keep me\n")
    link = project.root / ".hotmode" / "data" / "dev-core" / "postgres"
    link.parent.mkdir(parents=True)
    link.symlink_to(bystander, target_is_directory=True)

    down = project.hotmode("down", "--native", "--volumes", "--yes")
    assert down.returncode == 2, down.stderr
    assert down.stderr == (
        f"hotmode: error: {link} is a symbolic link (to {bystander}) where hotmode keeps its own "
        "files; remove the link (what it points to is left alone), then run the command again\n"
    )
    assert (bystander / "precious").read_text() == "keep me\n"
    assert link.is_symlink()
