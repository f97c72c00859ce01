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

On that cluster: a declared job runs to completion before the app; a v2 is measured under a
paced client on both nodes and hotmode reports the outage of each slot and the total; a v3 that
crashes at import and a v4 whose health fails, each on the worker only (the task's environment
names its node through Swarm's `{{.Node.ID}}` template), are reported with the cause read from
the worker's task, once the rollback has completed; a job that fails stops the deploy; and seven
hand changes to the live services are each named by `verify`.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from helpers import commit, free_port, git, wait_until
from swarm_support import (
    PROBE,
    REPO,
    Engine,
    engine_folder,
    gateway,
    hotmode,
    outages,
    served,
    skip_unless_ready,
    swarm_lock,
)

pytestmark = pytest.mark.swarm

STACK = "hmtwo"
REGISTRY_PORT = 5000
MIGRATE = '\n[jobs.migrate]\ncommand = ["python", "-c", "print(\'migrated\')"]\n'
FAILING = '["python", "-c", "raise SystemExit(\'migration failed: no such table\')"]'
# A v4 whose health check fails on the worker only; the rest of the app serves.
SICK = """
import os
from starlette.responses import PlainTextResponse
if os.environ.get("HOTMODE_NODE") == "{node}":
    @app.middleware("http")
    async def sick(request, call_next):
        if request.url.path == "/health":
            return PlainTextResponse("sick on the worker", status_code=503)
        return await call_next(request)
"""


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
                             "        max_replicas_per_node: 1\n"
                             "    environment:\n      HOTMODE_NODE: '{{.Node.ID}}'\n"),
        ),
        declaration=MIGRATE,
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
    # With the worker's engine given, its task's NoNewPrivs is read there too.
    verified = hotmode(root, manager, "verify", "--swarm", "--stack", STACK, "--node-engine",
                       f"{worker_id}={cluster.worker.env['DOCKER_HOST']}")  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "(2 task(s) read inside; 1 through other nodes' engines)" in verified.stdout
    assert f"not read: {STACK}_backend task" in verified.stdout
    # The job ran to completion, before the app, and said what it did.
    assert f"{STACK}_migrate: completed" in result.stderr, result.stderr
    states = manager.docker("service", "ps", "--format", "{{.CurrentState}}", f"{STACK}_migrate")
    assert states.stdout.startswith("Complete"), states.stdout
    logs = manager.docker("service", "logs", "--raw", f"{STACK}_migrate").stdout
    assert "migrated" in logs

    # v2 under a paced client on each node: the outage of each slot, and the total.
    v2 = _change(root, "\n# v2\n", "v2")
    probes = [_probe(engine, port, tmp_path / name)
              for name, engine in (("manager", manager), ("worker", cluster.worker))]  # fmt: skip
    try:
        for engine in (manager, cluster.worker):
            wait_until(lambda engine=engine: served(engine, port), timeout=30)
        result = _deploy(root, cluster)
    finally:
        for probe, stop, _ in probes:
            stop.touch()
            probe.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    said = re.findall(r"slot (\d+) on node (\w+) ([\d.]+)s", result.stderr)
    total = re.search(r"total ([\d.]+)s", result.stderr)
    assert len(said) == 2 and total, result.stderr
    assert {node for _, node, _ in said} == {manager_id[:12], worker_id[:12]}
    assert abs(sum(float(s) for _, _, s in said) - float(total.group(1))) < 0.02
    for (_, _, samples), name in zip(probes, ("manager", "worker"), strict=True):
        gaps = outages(json.loads(samples.read_text()))
        print(f"two nodes, v2 (stop-first, host network): {name}'s client saw {len(gaps)} "
              f"outage(s), worst {max(gaps, default=0.0):.2f}s")  # fmt: skip
    print(f"two nodes, v2: hotmode said {', '.join(f'slot {a} {c}s' for a, _, c in said)}, "
          f"total {total.group(1)}s")  # fmt: skip
    for engine in (manager, cluster.worker):
        assert served(engine, port)["revision"] == v2

    # v3 crashes at import on the worker only: the cause is read from the worker's task.
    main = root / "backend" / "main.py"
    served_v2 = main.read_text()
    _change(root, f'\nimport os\nif os.environ.get("HOTMODE_NODE") == "{worker_id}":\n'
                  '    raise RuntimeError("broken v3 on the worker")\n', "v3")  # fmt: skip
    _rolled_back(
        root, cluster, worker_id, v2, "last log line: RuntimeError: broken v3 on the worker", port
    )
    # v4's health fails on the worker: exit 1 once the rollback is over, never "no suitable
    # node". Its cause is not found yet: the task is stopped by the rollback without an error
    # of its own, and hotmode says only `rolled back: rollback_completed` (README: left).
    main.write_text(served_v2)
    _change(root, SICK.format(node=worker_id), "v4")
    _rolled_back(root, cluster, worker_id, v2, "", port, named=False)

    # A job that fails stops the deploy, named; the app is not updated.
    toml = root / "hotmode.toml"
    toml.write_text(toml.read_text().replace('["python", "-c", "print(\'migrated\')"]', FAILING))
    assert hotmode(root, manager, "render", "--force").returncode == 0
    commit(root, "v5: a failing migration")
    result = _deploy(root, cluster)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "job migrate failed: task " in last and "migration failed: no such table" in last, last
    assert "the app was not updated" in last
    for engine in (manager, cluster.worker):
        assert served(engine, port)["revision"] == v2

    # Seven hand changes, each named by verify.
    backend, database = f"{STACK}_backend", f"{STACK}_postgres"
    spec = json.loads(manager.docker("service", "inspect", backend).stdout)[0]["Spec"]
    args = " ".join(spec["TaskTemplate"]["ContainerSpec"]["Args"]) + " --timeout-keep-alive 7"
    manager.docker("service", "update", "--detach", "--no-resolve-image", "--args", args,
                   "--health-cmd", "true", "--limit-memory", "300M", "--limit-cpu", "0.7",
                   "--update-failure-action", "pause", "--replicas", "3", backend)  # fmt: skip
    placed = json.loads(manager.docker("service", "inspect", database).stdout)[0]["Spec"]
    constraint = placed["TaskTemplate"]["Placement"]["Constraints"][0]
    manager.docker("service", "update", "--detach", "--no-resolve-image", "--constraint-rm",
                   constraint, database)  # fmt: skip
    drifted = hotmode(root, manager, "verify", "--swarm", "--stack", STACK)
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    for named in (
        f"{backend}: ContainerSpec.Args is", f"{backend}: ContainerSpec.Healthcheck.Test is",
        f"{backend}: Resources.Limits.MemoryBytes is 314572800",
        f"{backend}: Resources.Limits.NanoCPUs is 700000000",
        f"{backend}: UpdateConfig.FailureAction is pause, not the rendered rollback",
        f"{backend}: Mode is {{'Replicated': {{'Replicas': 3}}}}",
        f"{database}: Placement.Constraints is unset",
    ):  # fmt: skip
        assert named in drifted.stdout, (named, drifted.stdout)


def _change(root: Path, code: str, message: str) -> str:
    main = root / "backend" / "main.py"
    main.write_text(main.read_text() + code)
    return commit(root, message)


def _deploy(root: Path, cluster: Cluster) -> subprocess.CompletedProcess[str]:
    return hotmode(root, cluster.manager, "deploy", "--swarm", "--stack", STACK, "--host-network",
                   "--registry", cluster.registry)  # fmt: skip


def _probe(engine: Engine, port: int, folder: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    folder.mkdir()
    stop, samples = folder / "stop-probe", folder / "samples.json"
    argv = [*engine.in_namespace(), sys.executable, "-c", PROBE, str(port), str(samples), str(stop)]
    return subprocess.Popen(argv), stop, samples


def _moment(text: str) -> float:
    head, _, rest = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}+00:00").timestamp()


def _rolled_back(
    root: Path,
    cluster: Cluster,
    worker_id: str,
    serving: str,
    cause: str,
    port: int,
    *,
    named: bool = True,
) -> None:
    """A broken update whose failing task ran on the worker: exit 1 once Swarm has rolled it
    back, the cause read from that task, and both nodes serving `serving` again."""
    result = _deploy(root, cluster)
    returned = time.time()
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    inspected = json.loads(cluster.manager.docker("service", "inspect", f"{STACK}_backend").stdout)
    update = inspected[0]["UpdateStatus"]
    # hotmode returned once the rollback was over (Swarm's verdict, and the old tasks running
    # healthy again, which under load can take much longer), and within seconds of that.
    assert update["State"] == "rollback_completed", update
    ids = cluster.manager.docker(
        "service", "ps", "--quiet", "--filter", "desired-state=running", f"{STACK}_backend"
    ).stdout.split()
    running = json.loads(cluster.manager.docker("inspect", "--type", "task", *ids).stdout)
    over = max([_moment(update["CompletedAt"]),
                *(_moment(t["Status"]["Timestamp"]) for t in running)])  # fmt: skip
    late = returned - over
    print(f"two nodes, broken update on the worker: exit 1 {late:.2f}s after the rollback was "
          f"over ({returned - _moment(update['CompletedAt']):.2f}s after Swarm's "
          f"rollback_completed); {last}")  # fmt: skip
    assert late < 5.0, late
    assert f"on node {worker_id[:12]}" in last or not named, last
    assert "No such container" not in last, last
    assert "no suitable node" not in last, last
    assert cause in last, last
    for engine in (cluster.manager, cluster.worker):
        wait_until(lambda engine=engine: _serving(engine, port) == serving, timeout=60)


def _serving(engine: Engine, port: int) -> str | None:
    """The revision the node's port serves, or None while nothing answers there."""
    try:
        return served(engine, port)["revision"]
    except AssertionError:
        return None
