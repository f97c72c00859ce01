"""`hotmode deploy --swarm --registry` on a real two-node swarm with a registry of its own.

Two dockerds (tests/swarm_support), each in a network namespace the test creates, joined by a
veth pair whose two ends carry private addresses inside those namespaces only: a manager and a
worker. Debian's `docker-registry` (installed by .ci/registry-setup) serves on the manager's
address, inside its namespace; both engines trust it as an insecure registry, and it is the
only address their refusing proxy lets through. The gateway is built on the manager, pushed as
`<registry>/linkedin-gateway:<sha>` and deployed with two replicas, one per node: the worker
pulls the image from the registry. The database is pinned to the manager, where its volume
lives; its init script and the app's `.env` travel as Swarm configs (no bind mount is left).
Clean-up removes the stack, leaves the swarm on both nodes and stops the registry and both
dockerds by their PIDs; the veth pair goes with the namespaces.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import free_port, git, wait_until
from swarm_support import (
    REPO,
    Engine,
    engine_folder,
    gateway,
    hotmode,
    served,
    skip_unless_ready,
    swarm_lock,
)

pytestmark = pytest.mark.swarm

STACK = "hmtwo"
REGISTRY_PORT = 5000


@dataclass
class Cluster:
    manager: Engine
    worker: Engine
    manager_address: str
    worker_address: str
    registry: str


def _answers(engine: Engine, url: str) -> bool:
    code = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"
    probe = [*engine.in_namespace(), sys.executable, "-c", code]
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


def _ip(engine: Engine, *args: str) -> None:
    subprocess.run([*engine.in_namespace(), "ip", *args], check=True, timeout=30)


def _registry(manager: Engine, address: str) -> subprocess.Popen[bytes]:
    """Debian's docker-registry on `address`, inside the manager's namespace."""
    binary = subprocess.run(
        [str(REPO / ".ci" / "registry-setup")], capture_output=True, text=True, timeout=600
    )
    assert binary.returncode == 0, binary.stderr[-2000:]
    config = manager.folder / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {manager.folder}/registry\n"
        f"http:\n  addr: {address}:{REGISTRY_PORT}\n"
    )
    with open(manager.folder / "registry.log", "wb") as log:
        # nsenter execs the registry: this PID is the registry's own.
        return subprocess.Popen(
            [*manager.in_namespace(), binary.stdout.strip().splitlines()[-1], "serve", str(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    skip_unless_ready()
    net = f"10.231.{secrets.randbelow(250) + 2}"
    manager_address, worker_address = f"{net}.1", f"{net}.2"
    registry = f"{manager_address}:{REGISTRY_PORT}"
    suffix = secrets.token_hex(3)
    ends = (f"hm{suffix}a", f"hm{suffix}b")
    server: subprocess.Popen[bytes] | None = None
    with swarm_lock(), engine_folder() as one, engine_folder() as two:
        manager, worker = Engine(one, registry), Engine(two, registry, offline=False)
        try:
            manager.start()
            worker.start()
            # One veth pair between the two namespaces; its addresses exist only inside them.
            subprocess.run(["ip", "link", "add", ends[0], "type", "veth", "peer", "name",
                            ends[1]], check=True, timeout=30)  # fmt: skip
            for engine, end, address in ((manager, ends[0], manager_address),
                                         (worker, ends[1], worker_address)):  # fmt: skip
                subprocess.run(["ip", "link", "set", end, "netns", str(engine.pid)],
                               check=True, timeout=30)  # fmt: skip
                _ip(engine, "addr", "add", f"{address}/24", "dev", end)
                _ip(engine, "link", "set", end, "up")
            manager.swarm(manager_address)
            worker.join(manager, manager_address, worker_address)
            wait_until(lambda: _ready_nodes(manager) == 2, timeout=60)
            server = _registry(manager, manager_address)
            wait_until(lambda: _answers(manager, f"http://{registry}/v2/"), timeout=60)
            yield Cluster(manager, worker, manager_address, worker_address, registry)
        finally:
            try:
                if manager.process is not None and manager.process.poll() is None:
                    manager.remove_stack(STACK, worker)
                    worker.docker("swarm", "leave", "--force", check=False)
                    manager.docker("swarm", "leave", "--force", check=False)
            finally:
                if server is not None and server.poll() is None:
                    server.send_signal(signal.SIGTERM)
                    server.wait(timeout=30)
                worker.stop()
                manager.stop()
                # Left in this namespace only if the test failed before moving it.
                subprocess.run(["ip", "link", "del", ends[0]], capture_output=True, check=False)


def _ready_nodes(manager: Engine) -> int:
    listed = manager.docker("node", "ls", "--format", "{{.Status}}", check=False).stdout
    return listed.split().count("Ready")


def _running_nodes(engine: Engine, service: str) -> list[str]:
    """The node id of each running task of the service."""
    ids = engine.docker(
        "service", "ps", "--quiet", "--filter", "desired-state=running", service
    ).stdout.split()
    found = json.loads(engine.docker("inspect", "--type", "task", *ids).stdout)
    return [str(t["NodeID"]) for t in found if t["Status"]["State"] == "running"]


@pytest.mark.timeout(1200)
def test_two_nodes_pull_from_the_registry_and_the_database_stays_with_its_volume(
    cluster: Cluster, tmp_path: Path
) -> None:
    port = free_port()
    manager = cluster.manager
    # The app twice, once per node; the database reached by name at the manager's address.
    root = gateway(
        tmp_path / "gateway", port, manager,
        site=(
            ('"postgres:127.0.0.1"', f'"postgres:{cluster.manager_address}"'),
            ("POSTGRES_LISTEN: 127.0.0.1", f"POSTGRES_LISTEN: {cluster.manager_address}"),
            # Compose refuses replicas beside a container name, which Swarm drops anyway.
            ("  backend:\n", "  backend:\n    container_name: !reset null\n    deploy:\n"
                             "      replicas: 2\n      placement:\n"
                             "        max_replicas_per_node: 1\n"),
        ),
    )  # fmt: skip
    head = git(root, "rev-parse", "HEAD")
    result = hotmode(root, manager, "deploy", "--swarm", "--stack", STACK, "--host-network",
                     "--registry", cluster.registry)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"serves {head}" in result.stdout

    stack_file = (root / "deployment" / "docker-stack.yml").read_text()
    assert f"image: {cluster.registry}/linkedin-gateway:{head}" in stack_file
    assert "type: bind" not in stack_file and "configs:" in stack_file
    # The worker pulled the app from the registry; it never had it otherwise.
    images = cluster.worker.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert f"{cluster.registry}/linkedin-gateway:{head}" in images.split()
    manager_id = manager.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    worker_id = cluster.worker.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    assert sorted(_running_nodes(manager, f"{STACK}_backend")) == sorted([manager_id, worker_id])
    assert _running_nodes(manager, f"{STACK}_postgres") == [manager_id]
    # Each node serves the commit, the worker's app through the database on the manager.
    for engine in (manager, cluster.worker):
        assert served(engine, port)["revision"] == head
    status = hotmode(root, manager, "status", "--swarm", "--stack", STACK)
    assert f"{STACK}_postgres: update" in status.stdout, status.stdout
    # verify reads inside the manager's tasks; the worker's is checked by its spec, and said so.
    verified = hotmode(root, manager, "verify", "--swarm", "--stack", STACK)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "(2 task(s) read inside; 1 on other nodes by spec)" in verified.stdout
    assert f"checked by its spec only: {STACK}_backend task" in verified.stdout
