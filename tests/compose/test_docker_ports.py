"""Where a merged service will listen on the host, read before anything starts."""

from __future__ import annotations

from hotmode.compose.docker import listen_addresses


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
