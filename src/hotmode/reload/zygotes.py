"""The supervisor's view of the zygotes: the framework zygote (a process of its own, see
zygote.py) and the app zygotes it forks.

An app zygote has also imported the app's own modules, in the workers' environment: a worker
forked from it imports again only what a save made stale (graph.py). It is the framework
zygote's child, so the supervisor reaches it over a socket only: closing that socket retires it,
and the framework zygote reaps it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Mapping

from hotmode.reload import pycache
from hotmode.reload.protocol import WorkerSpec

FORK_REPLY_TIMEOUT = 5.0


class Zygote:
    """One zygote process, seen from the supervisor."""

    requested: list[str]
    control: socket.socket
    ready: bool
    alive: bool

    def __init__(
        self, listen: socket.socket, modules: list[str], app_dir: str, env: Mapping[str, str]
    ) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control = ours
        argv = ["-m", "hotmode.reload.entry", "zygote", str(theirs.fileno()), str(listen.fileno())]
        self.process = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
            [sys.executable, *argv],
            pass_fds=(theirs.fileno(), listen.fileno()),
            env=pycache.interpreter_env(env),
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
        theirs.close()
        self.requested = list(modules)
        self.modules: set[str] = set()
        self.failed: set[str] = set()
        self.threads = 0
        self.threaded_by: str | None = None
        self.unsafe: str | None = None
        self.ready = False
        self.alive = True
        ours.send(json.dumps({"modules": modules, "app_dir": app_dir}).encode())

    def read(self) -> bool:
        """Handle what the zygote sent; False once it has closed (died or exited)."""
        try:
            data = self.control.recv(1 << 22)
        except OSError:
            data = b""
        if not data:
            self.alive = False
            return False
        message = json.loads(data)
        if message.get("op") == "ready":
            self.ready = True
            self.modules = set(message["modules"])
            self.failed = set(message["failed"])
            self.threads = int(message["threads"])
            self.threaded_by = message.get("threaded_by")
            self.unsafe = message.get("unsafe")  # an app zygote's: see zygote._app_zygote
        return True

    def fork(self, spec: WorkerSpec, fds: list[int]) -> int:
        """Ask for a worker; return its pid. Raises OSError if the zygote is gone or silent."""
        socket.send_fds(self.control, [json.dumps({"spec": spec.to_json()}).encode()], fds)
        self.control.settimeout(FORK_REPLY_TIMEOUT)
        try:
            data = self.control.recv(1 << 16)
        finally:
            self.control.settimeout(None)
        if not data:
            self.alive = False
            raise OSError("the zygote exited")
        return int(json.loads(data)["pid"])

    def app_zygote(self, modules: list[str], env: Mapping[str, str], roots: list[str]) -> AppZygote:
        """Fork an app zygote; raises OSError if this zygote is gone or silent."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            request = {"op": "app", "modules": modules, "env": dict(env), "roots": roots}
            socket.send_fds(self.control, [json.dumps(request).encode()], [theirs.fileno()])
            self.control.settimeout(FORK_REPLY_TIMEOUT)
            try:
                data = self.control.recv(1 << 16)
            finally:
                self.control.settimeout(None)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        if not data:
            ours.close()
            self.alive = False
            raise OSError("the zygote exited")
        return AppZygote(ours, int(json.loads(data)["pid"]), modules, env, self)

    def retire(self) -> None:
        """Fork no more; the process exits once its last worker has exited."""
        self.alive = False
        self.control.close()

    def finish(self, timeout: float) -> None:
        """Wait for the process to exit, killing it past the bound."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class AppZygote(Zygote):
    """An app zygote: its socket, its pid, the app modules it has, the environment it imported
    them in, and the files changed since it started importing them (`stale`)."""

    def __init__(
        self,
        control: socket.socket,
        pid: int,
        modules: list[str],
        env: Mapping[str, str],
        parent: Zygote,
    ) -> None:
        self.control = control
        self.parent = parent  # the zygote it was forked from
        self.pid = pid
        self.requested = list(modules)
        self.env = dict(env)
        self.stale: set[str] = set()
        self.modules: set[str] = set()
        self.failed: set[str] = set()
        self.unsafe: str | None = None
        self.threads = 0
        self.threaded_by: str | None = None
        self.ready = False
        self.alive = True

    def finish(self, timeout: float) -> None:
        """Nothing to wait for: its parent, the framework zygote, reaps it."""
