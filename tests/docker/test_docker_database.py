"""The gateway with its PostgreSQL on a real engine: each mode's own data, kept by every lifecycle
command (switch, a failed switch's rollback, down and up), deleted only when asked by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docker_support import FAILING_HEALTH, Gateway, require_engine
from helpers import add_key, get_json, run_hotmode
from hotmode.compose import docker
from hotmode.errors import StateError
from hotmode.modes import Selection

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

require_engine()

DEV_DATA = "linkedin-gateway-dev_pgdata"
PROD_DATA = "linkedin-gateway_pgdata"


def selection(mode: str) -> Selection:
    return Selection(mode, "core", "test", "test")


def keys(port: int) -> list[str]:
    document = get_json(port, "/api/v1/api-keys")
    assert document is not None, "the gateway does not answer"
    return [str(k["name"]) for k in document["keys"]]  # type: ignore[union-attr]


def volumes() -> set[str]:
    listed = docker.docker("volume", "ls", "--quiet", "--filter", "name=linkedin-gateway")
    return set(listed.stdout.split())


def test_each_mode_keeps_its_own_data_through_every_lifecycle_command(
    deployed: Gateway, tmp_path: Path
) -> None:
    docker.up(deployed.config, selection("dev"))
    info = get_json(deployed.port)
    assert info is not None and info["database"] == {"backend": "postgresql", "reachable": True}
    add_key(deployed.port, "written in dev")

    # Prod has its own database: it never sees the dev row.
    docker.switch(deployed.config, selection("prod"))
    assert (get_json(deployed.port) or {}).get("mode") == "prod"
    assert keys(deployed.port) == []
    add_key(deployed.port, "written in prod")

    # A switch that fails rolls back the whole mode, database included, data intact.
    failing = tmp_path / "failing.yml"
    failing.write_text(FAILING_HEALTH)
    with pytest.raises(StateError, match="rolled back"):
        docker.switch(deployed.config, selection("dev"), overlays=(failing,))
    assert keys(deployed.port) == ["written in prod"]

    docker.switch(deployed.config, selection("dev"))
    assert keys(deployed.port) == ["written in dev"]

    # status shows the database's state, health and data volume.
    status = run_hotmode(deployed.root, "status", "--json")
    rows = [r for r in json.loads(status.stdout)["modes"] if r["running"]]
    services = {s["service"]: s for s in rows[0]["running"]["services"]}
    assert services["postgres"]["health"] == "healthy"
    assert services["postgres"]["volumes"] == [DEV_DATA]
    logs = run_hotmode(deployed.root, "logs", "--no-follow", "--service", "postgres")
    assert "database system is ready to accept connections" in logs.stdout + logs.stderr

    # down keeps the data; up finds it again.
    down = run_hotmode(deployed.root, "down")
    assert down.returncode == 0, down.stderr
    assert {DEV_DATA, PROD_DATA} <= volumes()
    # Someone watching sees the steps, and Compose's own progress between them, as they come.
    steps: list[str] = []
    docker.up(deployed.config, selection("dev"), progress=steps.append)
    assert keys(deployed.port) == ["written in dev"]
    assert steps[0] == "building dev core (Compose's own progress follows)"
    starting = steps.index("starting dev core")
    assert any("linkedin-gateway-dev-postgres" in line for line in steps[starting + 1 :])
    assert steps[-1].startswith("waiting until ") and steps[-1].endswith(" is healthy")

    # Only --volumes deletes data: it names the volumes, and needs --yes without a terminal.
    refused = run_hotmode(deployed.root, "down", "--volumes")
    assert refused.returncode == 2, refused.stderr
    assert f"volume {PROD_DATA}, volume {DEV_DATA}" in refused.stdout
    assert docker.running(deployed.config) is not None
    assert {DEV_DATA, PROD_DATA} <= volumes()
    deleted = run_hotmode(deployed.root, "down", "--volumes", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert f"hotmode: deleted {DEV_DATA}" in deleted.stdout
    assert not {DEV_DATA, PROD_DATA} & volumes()
    # The app's own volumes of every mode go too: dev's cache and prod's logs.
    app_volumes = {"linkedin-gateway-dev_cache", "linkedin-gateway_logs"}
    assert all(f"hotmode: deleted {name}" in deleted.stdout for name in app_volumes), deleted.stdout
    assert not app_volumes & volumes()


def test_a_native_app_gets_its_database_in_docker_when_an_engine_answers(
    deployed: Gateway,
) -> None:
    try:
        up = run_hotmode(deployed.root, "up", "--native", "--dev", "--detach", "--port",
                         str(deployed.port))  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        assert "hotmode: postgres in Docker on 127.0.0.1:5432:5432, data " + DEV_DATA in up.stdout
        info = get_json(deployed.port)
        assert info is not None and info["database"] == {"backend": "postgresql", "reachable": True}
        status = json.loads(run_hotmode(deployed.root, "status", "--json").stdout)
        running = [r["running"] for r in status["modes"] if r["running"]]
        assert running[0]["runner"] == "native"
        assert [s["how"] for s in running[0]["services"]] == ["docker"]
        # `down` acts on this project's labels, never on a name its record holds.
        labelled = docker.docker("ps", "--quiet", "--filter",
                                 f"label=hotmode.project={deployed.root}")  # fmt: skip
        assert len(labelled.stdout.split()) == 1
        # Its log natively by its name: its container's.
        log = run_hotmode(deployed.root, "logs", "--no-follow", "--service", "postgres")
        assert log.returncode == 0, log.stderr
        assert "database system is ready to accept connections" in log.stdout + log.stderr
        record = deployed.root / ".hotmode" / "companions.json"
        record.write_text(record.read_text().replace('"docker"', '"docker", "project": "x"'))
    finally:
        down = run_hotmode(deployed.root, "down")
    assert down.returncode == 0, down.stderr
    assert "hotmode: stopped postgres in Docker" in down.stdout
    left = docker.docker("ps", "--all", "--quiet", "--filter", "name=linkedin-gateway-dev-postgres")
    assert left.stdout.strip() == ""
    assert DEV_DATA in volumes()
