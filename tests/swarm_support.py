"""A Docker Swarm of the swarm tests' own: dockerds in network namespaces they create.

Follows shared/notes/swarm-on-one-machine.md: each dockerd (data root, socket, exec root and
pidfile in a temporary folder) runs in a fresh network namespace that has only `lo` (and, for a
second node, one end of a veth pair with a private address), so nothing it runs can reach
another address; `ingress` and `docker_gwbridge` are removed after `swarm init`;
`DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1` and a proxy on 127.0.0.1:9 that refuses, so no pull can
slip out (except from the test's own registry). It never touches another engine. The base
image is loaded from the tarball `.ci/base-image` caches, with a wheelhouse on top (the build
has no network), and the database image from `.ci/postgres-image`'s. The engines run with
`--no-new-privileges`, the daemon-wide setting hotmode points to.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import EXAMPLE, cli_environment
from helpers import commit, git, run_hotmode, wait_until

REPO = Path(__file__).resolve().parents[1]
BASE_TARBALL = Path(os.environ.get("HOTMODE_CACHE_DIR", "/var/cache/hotmode")) / (
    "hotmode-base-bookworm.tar"
)
BASE_TAG = "hotmode-base:bookworm"
# The dev stage is built too by an engine without BuildKit: its tools come from the wheelhouse.
DEV_TOOLS = ["uvicorn>=0.30", "watchfiles>=0.21", "click>=8.1", "rich>=13", "PyYAML>=6"]
PASSWORD = "swarm-test-password-1"  # noqa: S105 - a test database's, inside a namespace
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


def missing() -> str | None:
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

    def __init__(self, folder: Path, registry: str | None = None, *, offline: bool = True) -> None:
        self.folder = folder
        # Offline, Swarm never pulls (not even a missing image): a worker that pulls from the
        # registry is not offline; its other pulls meet the refusing proxy.
        self.offline = offline
        # An insecure (plain HTTP) registry on an address inside the test's namespaces.
        self.registry = registry
        self.socket = folder / "d.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for name in ("data", "exec"):
            (self.folder / name).mkdir()
        env = {
            **os.environ,
            "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1" if self.offline else "0",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            # The registry is reached directly; anything else meets the refusing proxy.
            "NO_PROXY": self.registry.split(":")[0] if self.registry else "",
        }
        insecure = f"--insecure-registry {self.registry} " if self.registry else ""
        dockerd = (
            f"ip link set lo up && exec dockerd --bridge=none --iptables=false "
            f"--ip-forward=false --ip-masq=false --no-new-privileges {insecure}"
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

    def swarm(self, address: str = "127.0.0.1") -> None:
        self.docker("swarm", "init", "--advertise-addr", address,
                    "--listen-addr", f"{address}:2377")  # fmt: skip
        # Ingress first, once the bridge exists: the other order can leave the bridge behind.
        wait_until(lambda: "docker_gwbridge" in self.networks(), timeout=30)
        # It asks before removing the routing mesh; the answer is yes.
        self.docker("network", "rm", "ingress", answer="y\n")
        wait_until(lambda: "ingress" not in self.networks(), timeout=30)
        self.docker("network", "rm", "docker_gwbridge")

    def join(self, manager: Engine, manager_address: str, address: str) -> None:
        """Join `manager`'s swarm as a worker, on `address`."""
        token = manager.docker("swarm", "join-token", "--quiet", "worker").stdout.strip()
        self.docker("swarm", "join", "--token", token, "--advertise-addr", address,
                    "--listen-addr", f"{address}:2377", f"{manager_address}:2377")  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def remove_stack(self, stack: str, *others: Engine) -> None:
        """`docker stack rm`, then wait until no container of it is left on any node."""
        self.docker("stack", "rm", stack, check=False)
        label = f"label=com.docker.stack.namespace={stack}"
        for node in (self, *others):
            if node.process is not None and node.process.poll() is None:
                wait_until(lambda n=node: node_is_clear(n, label, prune=True), timeout=90)

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


def gateway(
    root: Path,
    port: int,
    engine: Engine,
    *,
    site: tuple[tuple[str, str], ...] = (),
    env: str = "",
    with_database: bool = True,
    declaration: str = "",
) -> Path:
    """A committed copy of the gateway for `engine`: its images loaded, its site overlay and
    `.env` for host networking on loopback (`site`: replacements in the overlay's text; `env`:
    lines for the `.env`; `declaration`: text added to hotmode.toml), a database password."""
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", "logs", ".env", "*.local.yml")
    )
    deployment = root / "deployment"
    if declaration:
        toml = root / "hotmode.toml"
        toml.write_text(toml.read_text() + declaration)
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
    if with_database:
        # The database image, loaded from the cache .ci/postgres-image keeps, into this engine.
        database = subprocess.run(
            [str(REPO / ".ci" / "postgres-image")], env=engine.env,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert database.returncode == 0, database.stderr[-2000:]
    # The CI site overlay (host networking, the database on 127.0.0.1 by its service name), with
    # health checked every second so that Swarm's verdicts come fast.
    overlay = (REPO / ".ci" / "docker-compose.site.yml").read_text()
    for old, new in (("start_period: 30s", "start_period: 5s"), *site):
        assert old in overlay, f"the CI site overlay has no {old!r}"
        overlay = overlay.replace(old, new)
    (deployment / "docker-compose.local.yml").write_text(overlay + "      start_period: 5s\n")
    (deployment / ".env").write_text(
        f"PORT={port}\nHOTMODE_HOST=127.0.0.1\nBASE_IMAGE=hotmode-swarm-base:test\n{env}"
    )
    (deployment / "secrets").mkdir()
    (deployment / "secrets" / "db_password").write_text(PASSWORD)
    git(root, "init", "-q")
    commit(root, "v1")
    return root


def hotmode(root: Path, engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_environment({"DOCKER_HOST": engine.env["DOCKER_HOST"]})
    return subprocess.run(
        [sys.executable, "-m", "hotmode", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def served(engine: Engine, port: int) -> dict[str, str]:
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


def outages(samples: list[tuple[float, bool]]) -> list[float]:
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


def node_is_clear(node: Engine, label: str, *, prune: bool = False) -> bool:
    """No container of the stack is left on the node; with `prune`, exited ones are removed
    first (`stack rm` leaves a finished job's container behind)."""
    if prune:
        exited = node.docker("ps", "-aq", "--filter", label, "--filter", "status=exited")
        for container in exited.stdout.split():
            node.docker("rm", container, check=False)
    return not node.docker("ps", "-aq", "--filter", label).stdout.strip()


def skip_unless_ready(*tools: str) -> None:
    """Skip (fail under CI=true) when the swarm tests cannot run here."""
    reason = missing()
    for tool in tools:
        if reason is None and shutil.which(tool) is None:
            reason = f"{tool} is not installed"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the swarm test cannot run: {reason}", pytrace=False)
        pytest.skip(f"swarm test skipped: {reason}")


@contextlib.contextmanager
def swarm_lock() -> Iterator[None]:
    with open(SWARM_LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def engine_folder() -> Iterator[Path]:
    """A temporary folder for one dockerd, unmounted and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="hms.", dir="/tmp"))
    try:
        yield folder
    finally:
        # dockerd leaves its namespace's bind mount behind; only ours, under our folder.
        for line in Path("/proc/mounts").read_text().splitlines():
            target = line.split()[1]
            if target.startswith(f"{folder}/"):
                subprocess.run(["umount", target], check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
