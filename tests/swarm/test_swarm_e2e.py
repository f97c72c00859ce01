"""`hotmode deploy --swarm` on a real single-node swarm, loopback only.

The set-up follows shared/notes/swarm-on-one-machine.md: a dockerd of the test's own (data root,
socket, exec root and pidfile in a temporary folder) in a fresh network namespace that has only
`lo`, so nothing it runs can reach another address; `ingress` and `docker_gwbridge` removed
after `swarm init`; `DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1` and a proxy on 127.0.0.1:9 that
refuses, so no pull can slip out. It never touches another engine. The base image is loaded
from the tarball `.ci/base-image` caches, with a wheelhouse on top (the build has no network).
The engine is started with `--no-new-privileges`, the daemon-wide setting hotmode points to,
since Swarm has no per-service form of it. The database is the image `.ci/postgres-image`
caches, loaded into this engine. One test walks the whole story: deploy v1 with its database;
check, hardening and verify on both services; an out-of-band env change that verify names;
update to v2 while a client measures the outage (and compares hotmode's own account); rotate the
password as a normal deploy; a broken v3 rolled back with exit 1 and its last log line while v2
still serves. Its clean-up removes the stack, leaves the swarm and stops the dockerd by its PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import EXAMPLE, cli_environment
from helpers import commit, free_port, git, run_hotmode, wait_until

pytestmark = pytest.mark.swarm

REPO = Path(__file__).resolve().parents[2]
BASE_TARBALL = Path(os.environ.get("HOTMODE_CACHE_DIR", "/var/cache/hotmode")) / (
    "hotmode-base-bookworm.tar"
)
BASE_TAG = "hotmode-base:bookworm"
STACK = "hmswarm"
# The dev stage is built too by an engine without BuildKit: its tools come from the wheelhouse.
DEV_TOOLS = ["uvicorn>=0.30", "watchfiles>=0.21", "click>=8.1", "rich>=13", "PyYAML>=6"]
# How long a client may be refused during an update; Swarm's stop-first update with host
# networking measured about 1.4 s on an idle machine (the note), so this is a loose bound.
MAX_OUTAGE = 12.0
PASSWORDS = ("swarm-test-password-1", "swarm-test-password-2")  # a test database's, loopback
# The swarm tests share one lock of their own (not the container tests' docker lock): two runs
# at once would each build and start a swarm on a 2-core machine.
SWARM_LOCK = Path(tempfile.gettempdir()) / "hotmode-swarm.lock"

PROBE = """
import json, sys, time, urllib.request
port, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
import os
samples = []
while not os.path.exists(stop):
    start = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            ok = r.status == 200
    except Exception:
        ok = False
    samples.append((start, ok))
    time.sleep(0.05)
with open(out, "w") as handle:
    json.dump(samples, handle)
"""


def _missing() -> str | None:
    if os.getuid() != 0:
        return "needs root (a dockerd of its own, in its own network namespace)"
    for tool in ("dockerd", "docker", "unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not BASE_TARBALL.is_file():
        return f"{BASE_TARBALL} is missing; run .ci/base-image once"
    return None


class Engine:
    """A dockerd of this test's own, in its own network namespace."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "d.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for name in ("data", "exec"):
            (self.folder / name).mkdir()
        env = {
            **os.environ,
            "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "",
        }
        dockerd = (
            f"ip link set lo up && exec dockerd --bridge=none --iptables=false "
            f"--ip-forward=false --ip-masq=false --no-new-privileges "
            f"--data-root {self.folder}/data --exec-root {self.folder}/exec "
            f"--host unix://{self.socket} --pidfile {self.folder}/d.pid"
        )
        with open(self.folder / "dockerd.log", "wb") as log:
            # `unshare` and `sh` exec: this PID is dockerd's own.
            self.process = subprocess.Popen(
                ["unshare", "--net", "sh", "-c", dockerd],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        wait_until(self._answers, timeout=60)

    def _answers(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log()
        return self.docker("version", check=False).returncode == 0

    def log(self) -> str:
        return (self.folder / "dockerd.log").read_text(errors="replace")[-3000:]

    def docker(
        self, *args: str, check: bool = True, timeout: float = 120, answer: str = ""
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=answer,
        )
        if check:
            assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
        return result

    def networks(self) -> set[str]:
        return set(self.docker("network", "ls", "--format", "{{.Name}}").stdout.split())

    def swarm(self) -> None:
        self.docker("swarm", "init", "--advertise-addr", "127.0.0.1",
                    "--listen-addr", "127.0.0.1:2377")  # fmt: skip
        # Ingress first, once the bridge exists: the other order can leave the bridge behind.
        wait_until(lambda: "docker_gwbridge" in self.networks(), timeout=30)
        # It asks before removing the routing mesh; the answer is yes.
        self.docker("network", "rm", "ingress", answer="y\n")
        wait_until(lambda: "ingress" not in self.networks(), timeout=30)
        self.docker("network", "rm", "docker_gwbridge")

    def in_namespace(self) -> list[str]:
        assert self.process is not None
        return ["nsenter", f"--net=/proc/{self.process.pid}/ns/net"]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def engine() -> Iterator[Engine]:
    with contextlib.ExitStack() as stack:
        yield from _engine(stack)


def _engine(stack: contextlib.ExitStack) -> Iterator[Engine]:
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the swarm test cannot run: {missing}", pytrace=False)
        pytest.skip(f"swarm test skipped: {missing}")
    lock = stack.enter_context(open(SWARM_LOCK, "w"))  # noqa: SIM115 - closed by the stack
    fcntl.flock(lock, fcntl.LOCK_EX)
    folder = Path(tempfile.mkdtemp(prefix="hms.", dir="/tmp"))
    engine = Engine(folder)
    try:
        engine.start()
        engine.swarm()
        yield engine
    finally:
        try:
            if engine.process is not None and engine.process.poll() is None:
                engine.docker("stack", "rm", STACK, check=False)
                label = f"label=com.docker.stack.namespace={STACK}"
                wait_until(
                    lambda: not engine.docker("ps", "-aq", "--filter", label).stdout.strip(),
                    timeout=60,
                )
                engine.docker("swarm", "leave", "--force", check=False)
        finally:
            engine.stop()
            # dockerd leaves its namespace's bind mount behind; only ours, under our folder.
            for line in Path("/proc/mounts").read_text().splitlines():
                target = line.split()[1]
                if target.startswith(f"{folder}/"):
                    subprocess.run(["umount", target], check=False, capture_output=True)
            shutil.rmtree(folder, ignore_errors=True)


def _gateway(root: Path, port: int, engine: Engine) -> Path:
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", "logs", ".env", "*.local.yml")
    )
    deployment = root / "deployment"
    rendered = run_hotmode(root, "render", "--force")
    assert rendered.returncode == 0, rendered.stderr
    wheels = engine.folder / "wheelhouse"
    requirements = root / "backend" / "requirements" / "base.txt"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheels / "wheels"),
         "-r", str(requirements), *DEV_TOOLS],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    (wheels / "Dockerfile").write_text(
        f"FROM {BASE_TAG}\nCOPY wheels /opt/wheels\nENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/opt/wheels\n"
    )
    engine.docker("load", "--quiet", "--input", str(BASE_TARBALL), timeout=300)
    engine.docker("build", "--quiet", "--tag", "hotmode-swarm-base:test", str(wheels), timeout=300)
    # The database image, loaded from the cache .ci/postgres-image keeps, into this engine.
    database = subprocess.run(
        [str(REPO / ".ci" / "postgres-image")], env=engine.env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert database.returncode == 0, database.stderr[-2000:]
    # The CI site overlay (host networking, the database on 127.0.0.1 by its service name), with
    # health checked every second so that Swarm's verdicts come fast.
    site = (REPO / ".ci" / "docker-compose.site.yml").read_text()
    (deployment / "docker-compose.local.yml").write_text(
        site.replace("start_period: 30s", "start_period: 5s") + "      start_period: 5s\n"
    )
    (deployment / ".env").write_text(
        f"PORT={port}\nHOTMODE_HOST=127.0.0.1\nBASE_IMAGE=hotmode-swarm-base:test\n"
    )
    (deployment / "secrets").mkdir()
    (deployment / "secrets" / "db_password").write_text(PASSWORDS[0])
    git(root, "init", "-q")
    commit(root, "v1")
    return root


def _hotmode(root: Path, engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_environment({"DOCKER_HOST": engine.env["DOCKER_HOST"]})
    return subprocess.run(
        [sys.executable, "-m", "hotmode", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _served(engine: Engine, port: int) -> dict[str, str]:
    code = (
        "import json, urllib.request; print(urllib.request.urlopen("
        f"'http://127.0.0.1:{port}/api/v1/server-info', timeout=3).read().decode())"
    )
    result = subprocess.run(
        [*engine.in_namespace(), sys.executable, "-c", code],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    served: dict[str, str] = json.loads(result.stdout)
    return served


def _outages(samples: list[tuple[float, bool]]) -> list[float]:
    """The length of every run of refused requests, from the first failure to the next success."""
    outages, began = [], None
    for moment, ok in samples:
        if not ok and began is None:
            began = moment
        elif ok and began is not None:
            outages.append(moment - began)
            began = None
    assert began is None, "the service never answered again"
    return outages


def _task(engine: Engine, service: str) -> str:
    """The container of the service's running task."""
    label = f"label=com.docker.swarm.service.name={STACK}_{service}"
    found = engine.docker("ps", "-q", "--filter", label).stdout.split()
    assert found, f"no running task of {service}"
    return found[0]


def _probe(engine: Engine, port: int, folder: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    stop, samples = folder / "stop-probe", folder / "samples.json"
    stop.unlink(missing_ok=True)
    argv = [*engine.in_namespace(), sys.executable, "-c", PROBE, str(port), str(samples), str(stop)]
    return subprocess.Popen(argv), stop, samples


@pytest.mark.timeout(1200)
def test_deploy_update_rotate_and_rollback_on_a_real_swarm(engine: Engine, tmp_path: Path) -> None:
    port = free_port()
    root = _gateway(tmp_path / "gateway", port, engine)
    v1 = git(root, "rev-parse", "HEAD")
    result = _hotmode(root, engine, "deploy", "--swarm", "--stack", STACK, "--host-network")
    assert result.returncode == 0, result.stderr
    assert f"serves {v1}" in result.stdout
    assert f"{STACK}_postgres: created" in result.stderr
    assert _served(engine, port)["revision"] == v1

    # The stack file says what Swarm would have lost, its names follow the stack, and its
    # secret is named by its content; check --swarm passes on it.
    stack_file = (root / "deployment" / "docker-stack.yml").read_text()
    assert "no-new-privileges has no per-service form on Swarm" in stack_file
    assert "type: tmpfs" in stack_file and "\n    tmpfs:" not in stack_file
    assert f"name: {STACK}_pgdata" in stack_file and "type: bind" not in stack_file
    secrets = engine.docker("secret", "ls", "--format", "{{.Name}}").stdout.split()
    assert len(secrets) == 1 and secrets[0].startswith(f"{STACK}_db_password_"), secrets
    checked = _hotmode(root, engine, "check", "--swarm")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "HM-S01" in checked.stdout

    # Hardening, inside the running task.
    inside = engine.docker("exec", _task(engine, "backend"), "sh", "-c",
        "id -u; grep -E '^(NoNewPrivs|CapEff)' /proc/1/status; grep ' /tmp ' /proc/mounts; "
        "touch /app/x 2>&1; touch /x 2>&1; touch /tmp/x && echo tmp-writable",
        check=False).stdout  # fmt: skip
    assert inside.splitlines()[0] == "10001"
    assert "NoNewPrivs:\t1" in inside and "CapEff:\t0000000000000000" in inside
    assert "tmpfs /tmp tmpfs" in inside and "tmp-writable" in inside
    assert inside.count("Read-only file system") == 2
    verified = _hotmode(root, engine, "verify", "--swarm", "--stack", STACK)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "(2 task(s))" in verified.stdout
    status = _hotmode(root, engine, "status", "--swarm", "--stack", STACK)
    assert f"{STACK}_postgres: update" in status.stdout, status.stdout

    # An out-of-band change to the environment is drift, named by verify.
    engine.docker("service", "update", "--detach=false", "--env-add", "LOG_LEVEL=DEBUG",
                  f"{STACK}_backend")  # fmt: skip
    drifted = _hotmode(root, engine, "verify", "--swarm", "--stack", STACK)
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "environment LOG_LEVEL is set but not in the rendered file" in drifted.stdout

    # v2: a rolling update (stop-first on the host network), while a client on loopback
    # measures what it is refused; hotmode's own account of the outage is printed beside it.
    (root / "backend" / "main.py").write_text(
        (root / "backend" / "main.py").read_text() + "\n# v2\n"
    )
    v2 = commit(root, "v2")
    probe, stop, samples_file = _probe(engine, port, tmp_path)
    try:
        wait_until(lambda: _served(engine, port), timeout=30)
        started = time.monotonic()
        result = _hotmode(root, engine, "deploy", "--swarm", "--stack", STACK, "--host-network")
        took = time.monotonic() - started
    finally:
        stop.touch()
        probe.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert _served(engine, port)["revision"] == v2
    samples = json.loads(samples_file.read_text())
    outages = _outages(samples)
    refused = sum(1 for _, ok in samples if not ok)
    worst = max(outages, default=0.0)
    said = re.search(r"host network: this update was stop-first, ([\d.]+)s", result.stderr)
    assert said, result.stderr
    print(f"swarm stop-first update (host network): {len(outages)} outage(s), worst "
          f"{worst:.2f}s, {refused} refused of {len(samples)} requests; hotmode said "
          f"{said.group(1)}s; deploy took {took:.1f}s")  # fmt: skip
    assert worst < MAX_OUTAGE, f"the update refused requests for {worst:.1f}s"
    assert len(outages) <= 1, outages
    assert float(said.group(1)) < MAX_OUTAGE

    # The password rotates: changed in the database, then in the file; a normal deploy moves
    # both services onto a secret with a new name.
    database = _task(engine, "postgres")
    altered = engine.docker("exec", database, "psql", "--username=gateway", "--dbname=gateway",
        "--command", f"ALTER USER gateway PASSWORD '{PASSWORDS[1]}'", check=False)  # fmt: skip
    assert altered.returncode == 0, altered.stderr
    (root / "deployment" / "secrets" / "db_password").write_text(PASSWORDS[1])
    result = _hotmode(root, engine, "deploy", "--swarm", "--stack", STACK, "--host-network")
    assert result.returncode == 0, result.stderr
    read = engine.docker("exec", _task(engine, "backend"), "cat", "/run/secrets/db_password")
    assert read.stdout == PASSWORDS[1]
    verified = _hotmode(root, engine, "verify", "--swarm", "--stack", STACK)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # v3 cannot start: Swarm rolls back, `stack deploy` exits 0, hotmode says so with exit 1,
    # the task's error and its last log line.
    (root / "backend" / "main.py").write_text(
        (root / "backend" / "main.py").read_text() + '\nraise RuntimeError("broken v3")\n'
    )
    commit(root, "v3")
    started = time.monotonic()
    result = _hotmode(root, engine, "deploy", "--swarm", "--stack", STACK, "--host-network")
    print(f"broken v3: deploy returned after {time.monotonic() - started:.1f}s")
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("hotmode: error: rolled back: task "), last
    assert "last log line: RuntimeError: broken v3" in last and f"serves {v2}" in last
    assert _served(engine, port)["revision"] == v2
    status = _hotmode(root, engine, "status", "--swarm", "--stack", STACK)
    assert "rollback_completed" in status.stdout and f"serving {v2}" in status.stdout
