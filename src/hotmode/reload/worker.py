"""A worker: import the app, run real uvicorn on the inherited socket, report over the pipe.

The same code runs forked from the zygote (`serve`) and spawned as a fresh interpreter
(`python -m hotmode.reload.entry worker SPEC LISTEN_FD STATUS_FD [CHANNEL_FD]`, see entry.py).
A failure to import or to start is reported as one line with the file and line of the user's
code that raised, and the worker exits; the supervisor keeps the last good worker serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from types import FrameType
from typing import Any

import uvicorn

from hotmode.reload import apps, frameworks, pycache
from hotmode.reload.apps import TargetError
from hotmode.reload.handover import Release, Stream, adopt
from hotmode.reload.lifeline import bind_to_parent
from hotmode.reload.protocol import StatusWriter, WorkerSpec, receive_message, send_message
from hotmode.reload.reimport import forget
from hotmode.reload.rules import is_app_file

# uvicorn's own code for a failed lifespan startup.
STARTUP_FAILURE = 3

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Any]


def describe_failure(exc: BaseException, roots: tuple[str, ...], app_dir: str) -> str:
    """One line: `file:line: Type: message`, pointing at the user's code when it is in the trace."""

    def shown(path: str) -> str:
        return os.path.relpath(path, app_dir) if is_app_file(path, roots) else path

    kind = type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{shown(exc.filename)}:{exc.lineno}: {kind}: {exc.msg}"
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if is_app_file(f.filename, roots)]
    if not frames:
        return f"{kind}: {exc}"
    frame = (ours or frames)[-1]
    return f"{shown(frame.filename)}:{frame.lineno}: {kind}: {exc}"


def preloadable_modules(roots: tuple[str, ...]) -> list[str]:
    """Loaded modules the zygote may import: builtins, and those whose file is not app code."""
    names = []
    for name, module in list(sys.modules.items()):
        if name == "__main__" or module is None:
            continue
        filename = getattr(module, "__file__", None)
        if filename is None:
            if name in sys.builtin_module_names:
                names.append(name)
            continue
        if not is_app_file(os.path.abspath(filename), roots):
            names.append(name)
    return names


def app_modules(roots: tuple[str, ...], preloaded: set[str]) -> dict[str, Any]:
    """The app's loaded modules for the import graph: name -> [file, is a package, imported
    since `preloaded`]; the supervisor parses the fresh ones (graph.read_nodes)."""
    found: dict[str, Any] = {}
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        if filename and is_app_file(os.path.abspath(filename), roots):
            found[name] = [
                os.path.abspath(filename),
                hasattr(module, "__path__"),
                name not in preloaded,
            ]
    return found


class _ModuleReport:
    """Tells the supervisor which modules the zygote could preload for the next worker: those
    loaded since the worker started (all of them in a spawned worker), again whenever more are
    loaded. Frameworks import some only on the first request (anyio's thread pool, for one);
    preloaded, they no longer slow down the first request after every reload."""

    def __init__(self, status: StatusWriter, roots: tuple[str, ...], known: set[str]) -> None:
        self.status, self.roots, self.known = status, roots, set(known)
        self.seen = 0  # len(sys.modules) at the last look: nothing to do while it is the same

    def send(self) -> None:
        if len(sys.modules) == self.seen:
            return
        self.seen = len(sys.modules)
        modules = [m for m in preloadable_modules(self.roots) if m not in self.known]
        if modules:
            self.known.update(modules)
            self.status.send("modules", modules=modules)


def error_page(error: str) -> ASGIApp:
    """An app that answers every request with 503 and the error that keeps the app from starting
    (the way framework dev servers show an error page), until a fix replaces it."""
    body = (
        "The app failed to start, and no earlier version of it is running:\n\n"
        f"    {error}\n\nSave a fix: it is served as soon as it starts.\n"
    ).encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"retry-after", b"1"),
    ]

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        else:  # a WebSocket: refused before the handshake (uvicorn answers 403)
            await send({"type": "websocket.close", "code": 1011})

    return app


class _Recorder:
    """Wraps the app to keep the exception a lifespan startup raised (uvicorn only logs it), and
    the HTTP requests in progress (a releasing worker ends their streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.error: BaseException | None = None
        self.streams: set[Stream] = set()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            stream = Stream(send)
            self.streams.add(stream)
            try:
                await self.app(scope, receive, stream.send)
            finally:
                self.streams.discard(stream)
            return
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            self.error = self.error or exc
            raise


class _Server(uvicorn.Server):
    """uvicorn's server, reporting ready (or the startup failure) once startup completes.

    With a handover channel, it accepts only when the supervisor says `serve`, adopts the
    connections it is given, and releases its own when it stops (see handover.py).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[bool], None],
        channel: socket.socket | None = None,
        streams: set[Stream] | None = None,
        release_timeout: float = 1.0,
        on_serving: Callable[[], None] = lambda: None,
        report_modules: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._on_serving = on_serving
        self._report_modules = report_modules
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel = channel
        self._streams = streams if streams is not None else set()
        self._release_timeout = release_timeout
        self._listen: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._releasing = False

    async def main_loop(self) -> None:
        # uvicorn polls for `should_exit` ten times a second; idle, that is most of a worker's
        # CPU. Tick once a second instead (the Date header's own period: on_tick refreshes it
        # when the counter is a multiple of ten) and let the exit signal wake the loop at once.
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            self._report_modules()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self._channel is not None:  # accept later, when told to
            self._listen, sockets = list(sockets or []), []
            asyncio.get_running_loop().add_reader(self._channel.fileno(), self._channel_readable)
        try:
            await super().startup(sockets=sockets)
        except SystemExit:
            self._on_started(False)
            raise
        self._on_started(self.started and not self.should_exit)
        if self._channel is None and self.started:
            self._on_serving()

    def _make_protocol(self) -> asyncio.Protocol:
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
            _loop=asyncio.get_running_loop(),
        )

    def _channel_readable(self) -> None:
        if self._channel is None:
            return
        received = receive_message(self._channel)
        if received is None:  # the supervisor is gone: the parent-death signal follows
            asyncio.get_running_loop().remove_reader(self._channel.fileno())
            return
        message, fds = received
        if message.get("op") == "adopt" and not self.should_exit:
            self._spawn(adopt(fds, self._make_protocol, asyncio.get_running_loop()))
            return
        if fds:  # given while stopping (a newer worker took over): back to the supervisor
            with contextlib.suppress(OSError):
                send_message(self._channel, {"op": "connections"}, fds)
            for fd in fds:
                os.close(fd)
        if message.get("op") == "serve" and not self.should_exit:
            self._spawn(self._accept())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._listen:
            server = await loop.create_server(
                self._make_protocol, sock=sock, backlog=self.config.backlog
            )
            self.servers.append(server)
        self._listen = []
        if self._releasing:  # stopped meanwhile: what it accepted is released with the rest
            self._stop_accepting()
            return
        self._on_serving()

    def _stop_accepting(self) -> None:
        # Not `server.close()`: asyncio sets up a connection accepted a moment ago in a task of
        # its own, which fails on a closed server and leaves the socket open, unserved, until
        # the process exits (the client then sees a reset). Removing the reader stops accepting
        # and lets those connections join the others, to be handed over.
        loop = asyncio.get_running_loop()
        for server in self.servers:
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        release = None
        if self._channel is not None:
            self._releasing = True
            self._listen = []
            self._stop_accepting()
            release = Release(self._channel, self._streams)
            release.start(self.server_state.connections)
        self._report_modules()  # what its requests imported, once the new worker has taken over
        if release is not None:
            await release.finish(self.server_state.connections, self._release_timeout)
        await super().shutdown(sockets=sockets)


def _load(spec: WorkerSpec, status: StatusWriter) -> ASGIApp:
    """The app the target names, as ASGI, with what its framework's dev server adds; what the
    supervisor should say about it goes over the pipe (it says each thing once)."""
    loaded = apps.load_app(spec.target, spec.app_dir, spec.factory)
    kind = apps.interface(loaded)
    loaded, framework = frameworks.around(loaded, kind, spec.reload)
    notes = list(framework.notes)
    if kind == apps.WSGI:
        notes.insert(0, f"{spec.target} is a WSGI app: served through a2wsgi on uvicorn")
    status.send(
        "app",
        kind=kind,
        framework=framework.name,
        notes=notes,
        partial_problem=framework.partial_problem,
    )
    app: ASGIApp = apps.as_asgi(loaded, kind)
    return app


def serve(
    spec: WorkerSpec,
    sock: socket.socket,
    status: StatusWriter,
    channel: socket.socket | None = None,
    *,
    forked: bool = False,
) -> int:
    """Import the app and serve it until told to stop; return the exit code. A worker `forked`
    from a zygote reports only the modules its zygote lacked (the supervisor knows the rest)."""
    began = time.perf_counter()
    inherited = set(sys.modules) if forked else set()
    status.send("started", pid=os.getpid())
    pycache.install(spec.roots)
    if spec.app_dir not in sys.path[:1]:
        sys.path.insert(0, spec.app_dir)
    importlib.invalidate_caches()
    forget(spec.fresh or ())  # changed, or importing what changed: imported again
    preloaded = set(sys.modules)
    try:
        app = error_page(spec.error) if spec.error else _load(spec, status)
    except (TargetError, frameworks.SettingsError) as exc:
        status.send("failed", error=str(exc))
        return 1
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            return 130
        status.send("failed", error=describe_failure(exc, spec.roots, spec.app_dir))
        return 1
    imported = time.perf_counter()
    recorder = _Recorder(app)
    handover = spec.handover and channel is not None
    # Half the drain bound to hand busy connections over, half for uvicorn's own shutdown.
    bound = spec.drain_timeout / 2 if handover else spec.drain_timeout
    options: dict[str, Any] = {}
    if "timeout_graceful_shutdown" in inspect.signature(uvicorn.Config.__init__).parameters:
        options["timeout_graceful_shutdown"] = max(1, round(bound))  # not before uvicorn 0.22
    config = uvicorn.Config(
        recorder,
        log_level=spec.log_level,
        # The protocol whose connections are handed over, on the loop whose readers it stops.
        http="h11" if handover else "auto",
        loop="asyncio" if handover else "auto",
        **options,
    )
    # uvicorn's protocol and lifespan modules (websockets' among them) are imported here, not
    # when the server starts, so that they are in the list and preloaded for the next worker.
    try:
        config.load()
    except SystemExit as exc:  # uvicorn exits on a configuration it cannot load
        status.send("failed", error="uvicorn could not load its configuration (see above)")
        return exc.code if isinstance(exc.code, int) else STARTUP_FAILURE
    reported = _ModuleReport(status, spec.roots, inherited)
    if not spec.error:  # at once, so that the zygote rebuild starts while the app starts up
        reported.send()

    def on_started(ok: bool) -> None:
        if ok:
            status.send(
                "ready",
                pid=os.getpid(),
                import_ms=round((imported - began) * 1000, 1),
                ready_ms=round((time.perf_counter() - began) * 1000, 1),
            )
            return
        error = recorder.error
        text = (
            describe_failure(error, spec.roots, spec.app_dir)
            if error is not None
            else "the application's startup (lifespan) failed"
        )
        status.send("failed", error=f"startup failed: {text}")

    server = _Server(
        config,
        on_started,
        channel if handover else None,
        recorder.streams,
        release_timeout=bound,
        # What it imported itself, for the import graph: parsed once it serves, not while the
        # reload it is part of is still under way.
        on_serving=lambda: (
            None if spec.error else status.send("graph", modules=app_modules(spec.roots, preloaded))
        ),
        report_modules=(lambda: None) if spec.error else reported.send,
    )
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else STARTUP_FAILURE
    return 0


def main(argv: list[str]) -> int:
    """Entry point of a spawned worker (the fallback when the zygote cannot fork)."""
    spec = WorkerSpec.from_json(argv[1])
    bind_to_parent(signal.SIGTERM, spec.parent_pid)
    sock = socket.socket(fileno=int(argv[2]))
    channel = socket.socket(fileno=int(argv[4])) if len(argv) > 4 else None
    return serve(spec, sock, StatusWriter(int(argv[3])), channel)
