"""The zygote: a process that has imported the app's third-party and standard-library modules
and forks a fresh worker on request, so that a reload imports only the app's own code.

It never imports the app's code (the supervisor sends only modules whose files lie outside the
watched folders), never runs an event loop, and reports whether it is single-threaded after
preloading: forking a multi-threaded process can deadlock the child, so the supervisor then
spawns workers instead. It talks to the supervisor over a SOCK_SEQPACKET socket: a `preload`
message at start, answered by `ready`; then `fork` requests, each carrying the worker's status
pipe and handover channel as passed descriptors, answered by the child's pid. End of file on that
socket means "retire": fork no more, exit once the last child has exited. A dead supervisor kills it
(parent-death signal), and its children follow (theirs).

Started as `python -m hotmode.reload.entry zygote CONTROL_FD LISTEN_FD` (see entry.py).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import signal
import socket
import sys
import threading
import traceback
from typing import Any

from hotmode.reload import pycache, worker
from hotmode.reload.frameworks import ZYGOTE_HIDDEN_ENV
from hotmode.reload.lifeline import bind_to_parent
from hotmode.reload.protocol import StatusWriter, WorkerSpec

MAX_MESSAGE = 1 << 20


def thread_count() -> int:
    """Native threads in this process (not only those the threading module knows)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def preload(modules: list[str]) -> tuple[list[str], str | None]:
    """Import each module, in order. Return those that failed (skipped, not fatal) and the first
    one that left a thread running: forking is unsafe from then on, so preloading stops there."""
    failed = []
    for name in modules:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except BaseException:  # one that cannot preload is just not preloaded
            failed.append(name)
        if thread_count() > 1:
            return failed, name
    return failed, None


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    # The supervisor may have retired us (or died) before the answer: nothing to report to.
    with contextlib.suppress(OSError):
        control.send(json.dumps(message).encode())


def _reap(_signum: int, _frame: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(spec: WorkerSpec, fds: list[int], control: socket.socket, listen: socket.socket) -> None:
    """Runs in the forked worker; never returns into the zygote's loop."""
    code = 70
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        bind_to_parent(signal.SIGTERM, spec.parent_pid)
        os.environ.clear()
        os.environ.update(spec.env)
        channel = socket.socket(fileno=fds[1]) if len(fds) > 1 else None
        code = worker.serve(spec, listen, StatusWriter(fds[0]), channel, forked=True)
    except BaseException:  # report anything, then leave through os._exit
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[1]))
    listen = socket.socket(fileno=int(argv[2]))
    bind_to_parent(signal.SIGKILL, os.getppid())
    try:
        request = json.loads(control.recv(MAX_MESSAGE) or b"{}")
    except OSError:
        return 0
    if not request:
        return 0
    app_dir = request["app_dir"]
    sys.path.insert(0, app_dir)
    # Imported but not set up: a framework module that reads the project's settings on import
    # would bring the app's own code into the zygote (see frameworks.py).
    hidden = {name: os.environ.pop(name) for name in ZYGOTE_HIDDEN_ENV if name in os.environ}
    failed, threaded_by = preload(list(request.get("modules", [])))
    os.environ.update(hidden)
    ready = {"op": "ready", "modules": sorted(sys.modules), "failed": failed}
    _send(control, {**ready, "threads": thread_count(), "threaded_by": threaded_by})
    signal.signal(signal.SIGCHLD, _reap)
    return _serve(control, listen)


def _freeze() -> None:
    """What is imported now is shared with every child: out of the garbage collector's sight,
    so that a child's collections do not write to (and so copy) the pages it is shared on."""
    gc.collect()
    gc.freeze()


def _serve(control: socket.socket, listen: socket.socket) -> int:
    """Fork workers (and app zygotes) on request until retired, then wait for the children."""
    _freeze()
    me = os.getpid()
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, MAX_MESSAGE, 2)
        except OSError:
            data, fds = b"", []
        if not data:
            break
        message = json.loads(data)
        pid = os.fork()
        if pid == 0 and message.get("op") == "app":
            os._exit(_app_zygote(message, fds[0], control, listen))
        if pid == 0:
            spec = WorkerSpec.from_json(message["spec"])
            _child(WorkerSpec(**{**spec.__dict__, "parent_pid": me}), fds, control, listen)
        for fd in fds:
            os.close(fd)
        _send(control, {"op": "forked", "pid": pid})
    # Retired: wait for the children still draining, then leave.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    listen.close()
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return 0


def socket_count() -> int:
    """Open sockets in this process (from /proc/self/fd)."""
    count = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def _app_zygote(
    message: dict[str, Any], fd: int, parent: socket.socket, listen: socket.socket
) -> int:
    """Runs in a fork: import the app's modules that did not change, in the workers'
    environment, then fork workers like the zygote does. It is unsafe to fork from if importing
    them started a thread or opened a connection (a socket a worker would share)."""
    code = 70
    try:
        parent.close()
        control = socket.socket(fileno=fd)
        bind_to_parent(signal.SIGKILL, os.getppid())
        os.environ.clear()
        os.environ.update(message["env"])
        pycache.install(tuple(message["roots"]))
        sockets = socket_count()
        loaded, failed = [], []
        for name in message["modules"]:
            try:
                importlib.import_module(name)
                loaded.append(name)
            except BaseException:  # left to the workers, which report it properly
                failed.append(name)
        unsafe = None
        if thread_count() > 1:
            unsafe = "importing the app starts a thread"
        elif socket_count() > sockets:
            unsafe = "importing the app opens a connection"
        _send(control, {"op": "ready", "modules": loaded, "failed": failed, "unsafe": unsafe,
                        "threads": thread_count()})  # fmt: skip
        code = _serve(control, listen)
    except BaseException:
        traceback.print_exc()
    return code
