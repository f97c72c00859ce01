"""What clients see across a reload: keep-alive connections (GET and POST), a WebSocket, an SSE
stream. Real `hotmode run --reload`, real sockets on 127.0.0.1, assertions on what each received."""

from __future__ import annotations

import http.client
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from reload.reload_support import Poller, Server, stale_answers, write_version

pytestmark = pytest.mark.e2e


def test_keep_alive_clients_keep_their_connection_and_never_go_back(
    app_dir: Path, servers: list[Server]
) -> None:
    server = Server(app_dir, "--reload")
    servers.append(server)
    order = ["v1", "v2", "v3", "v4", "v5"]
    getter, poster = Poller(server.port, "GET"), Poller(server.port, "POST")
    fresh = Poller(server.port, "GET", fresh=True)
    with getter, poster, fresh:
        for version in order:
            if version != "v1":
                write_version(app_dir, version)
            for poller in (getter, poster, fresh):
                poller.wait_version(version)
    for poller in (getter, poster, fresh):
        assert poller.errors == []
        versions = poller.versions()
        assert versions == sorted(versions, key=order.index)
        assert set(versions) == set(order)
    for poller in (getter, poster):
        assert len(poller.ports) == 1  # one connection, handed from worker to worker
    assert stale_answers([getter, poster, fresh], order) == []
    assert server.stop() == 143


def test_a_held_websocket_closes_with_1012_and_delays_nothing(
    app_dir: Path, servers: list[Server]
) -> None:
    server = Server(app_dir, "--reload", env={"HOTMODE_DRAIN_TIMEOUT": "2"})
    servers.append(server)
    url = f"ws://127.0.0.1:{server.port}/ws"
    with connect(url, open_timeout=5) as socket:
        assert socket.recv(timeout=5) == "hello from v1"
        socket.send("ping")
        assert socket.recv(timeout=5) == "v1: ping"
        saved = time.monotonic()
        write_version(app_dir, "v2")
        server.wait_version("v2", timeout=5)  # new code served while the socket is held
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=5)
        assert time.monotonic() - saved < 2
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    with connect(url, open_timeout=5) as again:  # the client reconnects to the new code
        assert again.recv(timeout=5) == "hello from v2"
    assert server.stop() == 143


def test_an_sse_stream_ends_properly_and_its_connection_moves_on(
    app_dir: Path, servers: list[Server]
) -> None:
    server = Server(app_dir, "--reload", env={"HOTMODE_DRAIN_TIMEOUT": "2"})
    servers.append(server)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/events", headers={"Accept": "text/event-stream"})
    response = connection.getresponse()
    assert response.getheader("content-type") == "text/event-stream"
    assert response.readline() == b"data: v1\n"
    port = connection.sock.getsockname()[1]
    saved = time.monotonic()
    write_version(app_dir, "v2")
    server.wait_version("v2", timeout=5)
    rest = response.read()  # raises IncompleteRead if the stream were cut, not ended
    assert time.monotonic() - saved < 2
    assert set(rest.decode().split()) <= {"data:", "v1"}  # whole v1 events, then the end
    connection.request("GET", "/")  # the same connection, now served by the new code
    again = connection.getresponse()
    assert b'"version": "v2"' in again.read()
    assert connection.sock.getsockname()[1] == port
    connection.close()
    assert server.stop() == 143
