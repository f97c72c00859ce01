"""Moving clients' connections from an old worker to the new one, so that a reload is invisible.

The old worker, told to stop, *releases* its connections: it stops accepting, and hands each idle
keep-alive HTTP connection (no request in progress, nothing buffered, nothing left to write) to
the supervisor as a file descriptor (SCM_RIGHTS), which passes it on to the new worker. Bytes the
client sends meanwhile wait in the kernel and are read by the new code. A connection in the middle
of a request stops reading once its request is in, finishes it on the old code, and is handed
over once idle. An event stream (SSE) is ended properly (its last chunk) so the client
reconnects; WebSockets get uvicorn's own shutdown, a close with 1012 ("service restart").

The new worker *adopts* what it is given: asyncio's `connect_accepted_socket` with uvicorn's own
HTTP protocol, in a fresh request cycle. It accepts new connections only once the old worker has
released (the supervisor says `serve`), so no request is ever read by the old code after the new
code has answered one.

Only uvicorn's h11 protocol is handed over (hotmode selects it for reload); anything else is left
to uvicorn's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from hotmode.reload.protocol import send_message

log = logging.getLogger("hotmode.reload")

POLL = 0.005  # how often a releasing worker looks at its busy connections again
# asyncio sets up a connection accepted just before the server closed in a task of its own: it
# joins the connections a few loop turns later, and must be handed over too.
LATE_ACCEPT = 0.05
MAX_FDS = 200  # descriptors per message (the kernel's limit is 253)

Scope = MutableMapping[str, Any]


class Stream:
    """One HTTP request in progress, seen through its `send`: is its response a stream?"""

    def __init__(self, send: Callable[[Any], Any]) -> None:
        self._send = send
        self.started = False
        self.sized = False
        self.events = False
        self.complete = False

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            headers = {bytes(name).lower(): bytes(value) for name, value in message["headers"]}
            self.sized = b"content-length" in headers
            self.events = headers.get(b"content-type", b"").lower().startswith(b"text/event-stream")
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.complete = True
        await self._send(message)

    @property
    def endable(self) -> bool:
        """An event stream under way: ending it now is a valid response that its client (an
        EventSource) reconnects from, to the new code. Any other response (a streamed download)
        is a request in flight: it finishes on the old worker within the drain bound, and is
        never cut short into a response that looks complete."""
        return self.started and self.events and not self.sized and not self.complete

    async def end(self) -> None:
        """Send the last chunk, then tell the app its client is gone (its sends are dropped)."""
        cycle = getattr(self._send, "__self__", None)
        with contextlib.suppress(Exception):
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        if cycle is not None and hasattr(cycle, "message_event"):
            cycle.disconnected = True
            cycle.message_event.set()


def _idle(protocol: H11Protocol) -> bool:
    """No request in progress, nothing received unprocessed, nothing left to write."""
    cycle = protocol.cycle
    if cycle is not None and not cycle.response_complete:
        return False
    conn = protocol.conn
    if conn.their_state is not h11.IDLE or conn.our_state is not h11.IDLE:
        return False
    data, closed = conn.trailing_data
    transport = protocol.transport
    return not (data or closed or transport.is_closing() or transport.get_write_buffer_size())


def _request_in(protocol: H11Protocol) -> bool:
    return protocol.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)


class Release:
    """The old worker's side: hand connections over through `channel`, end streams."""

    def __init__(self, channel: socket.socket, streams: set[Stream]) -> None:
        self.channel = channel
        self.streams = streams
        self.pending: set[H11Protocol] = set()
        self.seen: set[int] = set()

    def start(self, connections: set[Any]) -> None:
        """Called once the worker has stopped accepting: release what can go now."""
        self._send("released", self._sort(connections))
        for stream in list(self.streams):
            if stream.endable:
                asyncio.get_running_loop().create_task(stream.end())

    def _sort(self, connections: set[Any]) -> list[int]:
        """Detach the idle connections not seen yet (their descriptors), hold the busy ones."""
        ready: list[int] = []
        for connection in list(connections):
            if id(connection) in self.seen:
                continue
            self.seen.add(id(connection))
            if not isinstance(connection, H11Protocol):
                connection.shutdown()  # a WebSocket: close 1012, uvicorn's way
            elif _idle(connection):
                ready.append(self._detach(connection, connections))
            else:
                self._hold(connection)
                self.pending.add(connection)
        return ready

    async def finish(self, connections: set[Any], timeout: float) -> None:
        """Hand over the busy connections as they become idle, and those accepted at the last
        moment, for at most `timeout` seconds."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if not self.pending and time.monotonic() - started >= LATE_ACCEPT:
                return
            await asyncio.sleep(POLL)
            ready = self._sort(connections)
            for connection in list(self.pending):
                if connection.transport.is_closing():
                    self.pending.discard(connection)
                elif _idle(connection):
                    self.pending.discard(connection)
                    ready.append(self._detach(connection, connections))
                elif _request_in(connection):
                    connection.transport.pause_reading()
            if ready:
                self._send("connections", ready)

    def _hold(self, protocol: H11Protocol) -> None:
        """Read no further request on this connection once the current one is in."""
        if _request_in(protocol):
            protocol.transport.pause_reading()
            return
        received = protocol.data_received

        def data_received(data: bytes) -> None:
            received(data)
            if _request_in(protocol) and not protocol.transport.is_closing():
                protocol.transport.pause_reading()

        protocol.data_received = data_received  # type: ignore[method-assign]

    def _detach(self, protocol: H11Protocol, connections: set[Any]) -> int:
        """Our duplicate of the connection's descriptor; the transport is closed without any
        shutdown, so the connection lives on in the duplicate."""
        transport = protocol.transport
        transport.pause_reading()
        protocol._unset_keepalive_if_required()
        sock = transport.get_extra_info("socket")
        fd = os.dup(sock.fileno())
        connections.discard(protocol)
        transport.close()
        return fd

    def _send(self, op: str, fds: list[int]) -> None:
        try:
            for start in range(0, max(len(fds), 1), MAX_FDS):
                send_message(self.channel, {"op": op}, fds[start : start + MAX_FDS])
        except OSError:
            log.debug("cannot hand connections over", exc_info=True)
        finally:
            for fd in fds:
                os.close(fd)


async def adopt(
    fds: list[int], make_protocol: Callable[[], asyncio.Protocol], loop: asyncio.AbstractEventLoop
) -> None:
    """Serve connections handed over by an old worker, as if just accepted."""
    for fd in fds:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        try:
            _transport, protocol = await loop.connect_accepted_socket(make_protocol, sock)
        except OSError:
            sock.close()
            continue
        if isinstance(protocol, H11Protocol):  # idle: its keep-alive timer runs again
            protocol.timeout_keep_alive_task = loop.call_later(
                protocol.timeout_keep_alive, protocol.timeout_keep_alive_handler
            )
