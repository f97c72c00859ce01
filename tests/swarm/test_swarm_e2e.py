"""`hotmode deploy --swarm` on a real single-node swarm, loopback only.

The engine is tests/swarm_support's: a dockerd of the test's own in a network namespace that
has only `lo`, the gateway's images loaded into it, the database's too. One test walks the
whole story: deploy v1 with its database; check, hardening and verify on both services; an
out-of-band env change that verify names; update to v2 while a client measures the outage (and
compares hotmode's own account); rotate the password as a normal deploy; a broken v3 rolled
back with exit 1 and its last log line while v2 still serves. Its clean-up removes the stack,
leaves the swarm and stops the dockerd by its PID.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import commit, free_port, git, wait_until
from swarm_support import (
    PROBE,
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

STACK = "hmswarm"
# How long a client may be refused during an update; Swarm's stop-first update with host
# networking measured about 1.1 s here, so this is a loose bound for a loaded machine.
MAX_OUTAGE = 12.0
NEW_PASSWORD = "swarm-test-password-2"  # noqa: S105 - a test database's, inside a namespace


@pytest.fixture
def engine() -> Iterator[Engine]:
    skip_unless_ready()
    with swarm_lock(), engine_folder() as folder:
        engine = Engine(folder)
        try:
            engine.start()
            engine.swarm()
            yield engine
        finally:
            try:
                if engine.process is not None and engine.process.poll() is None:
                    engine.remove_stack(STACK)
                    engine.docker("swarm", "leave", "--force", check=False)
            finally:
                engine.stop()


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
    root = gateway(tmp_path / "gateway", port, engine)
    v1 = git(root, "rev-parse", "HEAD")
    result = hotmode(root, engine, "deploy", "--swarm", "--stack", STACK, "--host-network")
    assert result.returncode == 0, result.stderr
    assert f"serves {v1}" in result.stdout
    assert f"{STACK}_postgres: created" in result.stderr
    assert served(engine, port)["revision"] == v1

    # The stack file says what Swarm would have lost, its names follow the stack, and its
    # secret is named by its content; check --swarm passes on it.
    stack_file = (root / "deployment" / "docker-stack.yml").read_text()
    assert "no-new-privileges has no per-service form on Swarm" in stack_file
    assert "type: tmpfs" in stack_file and "\n    tmpfs:" not in stack_file
    assert f"name: {STACK}_pgdata" in stack_file and "type: bind" not in stack_file
    secrets = engine.docker("secret", "ls", "--format", "{{.Name}}").stdout.split()
    assert len(secrets) == 1 and secrets[0].startswith(f"{STACK}_db_password_"), secrets
    checked = hotmode(root, engine, "check", "--swarm")
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
    verified = hotmode(root, engine, "verify", "--swarm", "--stack", STACK)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "(2 task(s) read inside)" in verified.stdout
    status = hotmode(root, engine, "status", "--swarm", "--stack", STACK)
    assert f"{STACK}_postgres: update" in status.stdout, status.stdout

    # An out-of-band change to the environment is drift, named by verify.
    engine.docker("service", "update", "--detach=false", "--env-add", "LOG_LEVEL=DEBUG",
                  f"{STACK}_backend")  # fmt: skip
    drifted = hotmode(root, engine, "verify", "--swarm", "--stack", STACK)
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
        wait_until(lambda: served(engine, port), timeout=30)
        started = time.monotonic()
        result = hotmode(root, engine, "deploy", "--swarm", "--stack", STACK, "--host-network")
        took = time.monotonic() - started
    finally:
        stop.touch()
        probe.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert served(engine, port)["revision"] == v2
    samples = json.loads(samples_file.read_text())
    gaps = outages(samples)
    refused = sum(1 for _, ok in samples if not ok)
    worst = max(gaps, default=0.0)
    said = re.search(r"host network: this update was stop-first.*; total ([\d.]+)s", result.stderr)
    assert said, result.stderr
    print(f"swarm stop-first update (host network): {len(gaps)} outage(s), worst "
          f"{worst:.2f}s, {refused} refused of {len(samples)} requests; hotmode said "
          f"{said.group(1)}s; deploy took {took:.1f}s")  # fmt: skip
    assert worst < MAX_OUTAGE, f"the update refused requests for {worst:.1f}s"
    assert len(gaps) <= 1, gaps
    assert float(said.group(1)) < MAX_OUTAGE

    # The password rotates: changed in the database, then in the file; a normal deploy moves
    # both services onto a secret with a new name.
    database = _task(engine, "postgres")
    altered = engine.docker("exec", database, "psql", "--username=gateway", "--dbname=gateway",
        "--command", f"ALTER USER gateway PASSWORD '{NEW_PASSWORD}'", check=False)  # fmt: skip
    assert altered.returncode == 0, altered.stderr
    (root / "deployment" / "secrets" / "db_password").write_text(NEW_PASSWORD)
    result = hotmode(root, engine, "deploy", "--swarm", "--stack", STACK, "--host-network")
    assert result.returncode == 0, result.stderr
    read = engine.docker("exec", _task(engine, "backend"), "cat", "/run/secrets/db_password")
    assert read.stdout == NEW_PASSWORD
    verified = hotmode(root, engine, "verify", "--swarm", "--stack", STACK)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # v3 cannot start: Swarm rolls back, `stack deploy` exits 0, hotmode says so with exit 1,
    # the task's error and its last log line.
    (root / "backend" / "main.py").write_text(
        (root / "backend" / "main.py").read_text() + '\nraise RuntimeError("broken v3")\n'
    )
    commit(root, "v3")
    started = time.monotonic()
    result = hotmode(root, engine, "deploy", "--swarm", "--stack", STACK, "--host-network")
    print(f"broken v3: deploy returned after {time.monotonic() - started:.1f}s")
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("hotmode: error: rolled back: task "), last
    assert "last log line: RuntimeError: broken v3" in last and f"serves {v2}" in last
    assert served(engine, port)["revision"] == v2
    status = hotmode(root, engine, "status", "--swarm", "--stack", STACK)
    assert "rollback_completed" in status.stdout and f"serving {v2}" in status.stdout
