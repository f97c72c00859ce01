"""The Docker driver's pure parts: where a service will listen, what runs as plain values."""

from __future__ import annotations

import json
from pathlib import Path

from hotmode.compose.docker import Running, listen_addresses


def test_published_ports_with_and_without_an_address() -> None:
    service = {
        "ports": [
            {"target": 7778, "published": "7778", "host_ip": "127.0.0.1"},
            {"target": 9000, "published": "9001"},
            {"target": 9100},
        ]
    }
    assert list(listen_addresses(service)) == [("127.0.0.1", 7778), ("0.0.0.0", 9001)]


def test_host_network_listens_where_the_command_binds() -> None:
    service = {
        "network_mode": "host",
        "command": ["uvicorn", "main:app", "--host", "127.0.0.1", "--port", "7790"],
        "environment": {"PORT": "1234"},
    }
    assert list(listen_addresses(service)) == [("127.0.0.1", 7790)]


def test_host_network_without_flags_falls_back_to_port_and_every_address() -> None:
    service = {"network_mode": "host", "command": ["serve"], "environment": {"PORT": "8000"}}
    assert list(listen_addresses(service)) == [("0.0.0.0", 8000)]
    assert list(listen_addresses({"network_mode": "host", "command": ["serve"]})) == []


def test_running_as_plain_values_for_json() -> None:
    running = Running(
        project="gw", mode="prod", edition="core", config_files=(Path("/d/docker-compose.yml"),),
        config_hash="h", container="gw", port=7778, revision="r", health="healthy", image="gw:prod",
    )  # fmt: skip
    values = json.loads(json.dumps(running.as_dict()))
    assert values["config_files"] == ["/d/docker-compose.yml"]
    assert (values["mode"], values["port"], values["health"]) == ("prod", 7778, "healthy")


def test_a_failed_pull_names_the_setting_that_gives_a_local_base_image(tmp_path: Path) -> None:
    from hotmode.compose.offline import pull_hint
    from hotmode.config import load_config

    (tmp_path / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "hotmode.toml").write_text('name = "offline"\n')
    config = load_config(tmp_path / "hotmode.toml")
    offline = (
        "failed to solve: python:3.11-slim: failed to resolve source metadata for "
        "docker.io/library/python:3.11-slim: dial tcp: lookup registry-1.docker.io: no such host"
    )
    hint = pull_hint(offline, config)
    assert "set base_image in hotmode.toml (or BASE_IMAGE in deployment/.env)" in hint
    assert "python:3.11-slim could not be pulled" in hint
    assert pull_hint("failed to solve: process '/bin/sh -c pip install' exit code 1", config) == ""
