"""The runtime around the supervisor: one loop over the socket, pipes, signals and the watcher.

It binds the listening socket once, starts the zygote, and dispatches everything from a single
selector loop: worker status pipes, zygote control sockets, the install command's end (a pidfd on
Linux), the watcher's wake-up pipe, and a self-pipe that signal handlers write to (they do nothing
else). It is the supervisor's `Host`: it launches workers, reads the env file, runs the install
command.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from hotmode.envfile import read_env_file
from hotmode.proctable import chosen
from hotmode.reload import compat, listen, spawning
from hotmode.reload.graph import ImportGraph, Plan, read_nodes
from hotmode.reload.launcher import Launcher, WorkerProcess, pycache_prefix
from hotmode.reload.options import RunOptions
from hotmode.reload.protocol import StatusReader, WorkerSpec, receive_message
from hotmode.reload.rules import CODE
from hotmode.reload.supervisor import Change, Supervisor, Timing
from hotmode.reload.watcher import Watcher, needs_polling
from hotmode.reload.zygotes import Zygote

log = logging.getLogger("hotmode.reload")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The app zygote is built (and the workers moved onto it) once saves have paused this long: a
# series of saves pays for its reloads only, not for rebuilds that the next save makes stale.
APP_ZYGOTE_QUIET = 1.5


class Runtime:
    """Serves `options` until a signal stops it; `run` returns the exit code."""

    def __init__(self, options: RunOptions, environ: Mapping[str, str]) -> None:
        self.options = options
        self.base_env = dict(environ)
        # Given or default, the prefix is proven before use: its byte-code is run (issue 26).
        # The supervisor's own later imports go there too; what this interpreter read at its
        # start, before any of hotmode ran, was Python's doing.
        self.base_env["PYTHONPYCACHEPREFIX"] = pycache_prefix(environ)
        if sys.pycache_prefix is not None:
            sys.pycache_prefix = self.base_env["PYTHONPYCACHEPREFIX"]
        self.app_dir = str(options.app_dir)
        self.handover_problem = compat.handover_problem() if options.reload else None
        self.selector = selectors.DefaultSelector()
        self.workers = spawning.choose(environ)
        self.sock = listen.bind(options.host, options.port)
        self.launcher = Launcher(
            self.sock,
            self.app_dir,
            self.base_env,
            use_zygote=options.reload and self.workers.fork,
            watch=self._watch_zygote,
            unwatch=self._unwatch_zygote,
        )
        self.supervisor = Supervisor(
            self,
            target=options.target,
            url=listen.url(self.sock),
            workers=options.workers,
            reload=options.reload,
            handover=self.handover_problem is None,
            drain_timeout=options.drain_timeout,
            ready_timeout=options.ready_timeout,
        )
        self.processes: dict[int, WorkerProcess] = {}
        self.graph = ImportGraph()
        self.app_zygote_due: float | None = None  # when to see whether to build one
        self.last_change = 0.0
        self.plans: dict[int, Plan | None] = {}  # per worker: which part of the app it imports
        # Modules whose partial import failed, until the whole app is imported again: if that
        # works, they are not to be imported partly any more (see _failed).
        self.suspects: set[str] = set()
        # The whole app's own import time: measured by the last worker that imported all of it,
        # forked from a zygote that has the framework.
        self.measuring: set[int] = set()
        self.app_import_ms: float | None = None
        self.said_not_worth = False
        self.said: set[str] = set()  # what workers found about the app, said once
        self.retries: dict[int, set[str]] = {}
        self.install: subprocess.Popen[bytes] | None = None
        self._batches: queue.SimpleQueue[tuple[list[Change], float]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._signal_r, self._signal_w = os.pipe()
        for fd in (self._wake_r, self._wake_w, self._signal_r, self._signal_w):
            os.set_blocking(fd, False)
        self.watcher: Watcher | None = None
        digest = hashlib.sha1(self.app_dir.encode()).hexdigest()[:12]  # noqa: S324 -- a name
        self.module_cache = Path(self.base_env["PYTHONPYCACHEPREFIX"]) / f"hotmode-{digest}.json"
        self.saved_modules: list[str] | None = None  # the list as last read or written

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> int:
        previous = {sig: signal.signal(sig, _ignore) for sig in HANDLED_SIGNALS}
        previous_fd = signal.set_wakeup_fd(self._signal_w, warn_on_full_buffer=False)
        self._register(self._signal_r, self._signals_readable)
        self._register(self._wake_r, self._changes_readable)
        if self.handover_problem is not None:
            log.warning("%s", self.handover_problem)
        try:
            # Workers first: the first one imports the app while the watcher sets up. It accepts
            # only once told to, from this loop, so the watcher is watching by then.
            self.saved_modules = self._cached_modules()
            self.launcher.start(self.saved_modules, then=self._zygote_rebuilt)
            self.supervisor.start()
            if self.options.reload:
                log.info("%s", self.workers.describe())
                self._start_watcher()
            while not self.supervisor.done:
                deadlines = [self.supervisor.next_deadline(), self.app_zygote_due]
                deadline = min((d for d in deadlines if d is not None), default=None)
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                for key, _events in self.selector.select(timeout):
                    key.data()
                self.supervisor.tick()
                self.launcher.collect()
                self._app_zygote_when_quiet()
            return self.supervisor.exit_code
        finally:
            self._close()
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        for process in self.processes.values():
            process.kill()
            process.reap()
        if self.install is not None and self.install.poll() is None:
            self.install.kill()
            self.install.wait(timeout=5)
        self.launcher.close(timeout=5)
        self.sock.close()
        self.selector.close()
        for fd in (self._wake_r, self._wake_w, self._signal_r, self._signal_w):
            os.close(fd)

    def _register(self, fileobj: int, callback: Callable[[], None]) -> None:
        self.selector.register(fileobj, selectors.EVENT_READ, callback)

    def _signals_readable(self) -> None:
        try:
            data = os.read(self._signal_r, 512)
        except BlockingIOError:
            return
        for signum in data:
            self.supervisor.on_signal(signum)

    def _start_watcher(self) -> None:
        rules = self.options.rules
        why = needs_polling(rules.roots, self.base_env)
        if why:
            log.info("watching by polling: %s", why)
        self.watcher = Watcher(rules, self._deliver, polling=why is not None)
        self.watcher.start()

    def _deliver(self, batch: list[Change], seen: float) -> None:
        """Called in the watcher's thread: queue the batch and wake the loop."""
        self._batches.put((batch, seen))
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def _changes_readable(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        merged: list[Change] = []
        first: float | None = None
        while not self._batches.empty():
            batch, seen = self._batches.get_nowait()
            merged.extend(batch)
            first = seen if first is None else min(first, seen)
        for change in merged:
            if change.kind == CODE:
                self.launcher.app_changed(change.file or change.path)
        self.last_change = time.monotonic()
        if merged:
            self.supervisor.changes(merged, first)

    # --- zygotes and workers ------------------------------------------------------------------

    def _watch_zygote(self, zygote: Zygote) -> None:
        self._register(zygote.control.fileno(), lambda: self.launcher.zygote_readable(zygote))

    def _unwatch_zygote(self, zygote: Zygote) -> None:
        self.selector.unregister(zygote.control)

    def launch(
        self, worker_id: int, env: Mapping[str, str], error: str | None, full: bool = False
    ) -> WorkerProcess:
        plan = None if error is not None else self._plan(env, full)
        self.plans[worker_id] = plan
        if full:
            self.retries[worker_id], self.suspects = self.suspects, set()
        spec = WorkerSpec(
            target=self.options.target,
            app_dir=self.app_dir,
            roots=tuple(str(r) for r in self.options.roots),
            env=dict(env),
            log_level=self.options.log_level,
            drain_timeout=self.options.drain_timeout,
            parent_pid=os.getpid(),
            handover=self.supervisor.handover,
            error=error,
            fresh=tuple(sorted(plan.fresh)) if plan and plan.fresh is not None else None,
            factory=self.options.factory,
            reload=self.options.reload,
        )
        process = self.launcher.launch(spec)
        if (
            plan is not None
            and plan.fresh is None
            and process.popen is None
            and not self.launcher.cold
        ):
            self.measuring.add(worker_id)
        reader = StatusReader(process.status_fd)
        self.processes[worker_id] = process
        self._register(process.status_fd, lambda: self._worker_readable(worker_id, reader))
        self._register(process.channel.fileno(), lambda: self._channel_readable(worker_id))
        return process

    def _channel_readable(self, worker_id: int) -> None:
        """Connections a stopping worker hands over: to the worker replacing it, or closed."""
        process = self.processes.get(worker_id)
        if process is None:  # exited in this same round of the loop
            return
        while True:
            received = receive_message(process.channel)
            if not received:  # end of file: the status pipe's will follow
                self.selector.unregister(process.channel.fileno())
                return
            message, fds = received
            if not message and not fds:
                return
            target = self.supervisor.adopter(worker_id)
            try:
                adopting = self.processes.get(target.id) if target is not None else None
                if fds and adopting is not None:
                    adopting.send({"op": "adopt"}, fds)
            finally:
                for fd in fds:
                    os.close(fd)
            if message.get("op") == "released":
                self.supervisor.worker_released(worker_id)

    def _worker_readable(self, worker_id: int, reader: StatusReader) -> None:
        messages = reader.read()
        if messages is None:
            process = self.processes[worker_id]
            with contextlib.suppress(KeyError, ValueError):
                self._channel_readable(worker_id)  # what it handed over before exiting
                self.selector.unregister(process.channel.fileno())
            del self.processes[worker_id]
            self.plans.pop(worker_id, None)
            self.retries.pop(worker_id, None)
            self.selector.unregister(process.status_fd)
            os.close(process.status_fd)
            process.channel.close()
            self.supervisor.worker_exited(worker_id, process.reap())
            return
        for message in messages:
            event = message.get("event")
            if event == "ready":
                plan = self.plans.get(worker_id)
                how = "" if plan is None else plan.why
                if plan is not None and plan.fresh is None:
                    how = f"the whole app: {plan.why}"
                timing = Timing(float(message["import_ms"]), float(message["ready_ms"]), how)
                if worker_id in self.measuring:
                    self._measured(timing.import_ms)
                # The whole app works where part of it did not: the graph missed something.
                self.graph.distrusted.update(self.retries.pop(worker_id, set()))
                self.supervisor.worker_ready(worker_id, timing)
            elif event == "failed":
                self._failed(worker_id, str(message["error"]))
            elif event == "graph":
                loaded = {
                    str(name): (str(file), bool(package), bool(fresh))
                    for name, (file, package, fresh) in message["modules"].items()
                }
                self.graph.update(read_nodes(loaded))
                self.app_zygote_due = max(time.monotonic(), self.last_change + APP_ZYGOTE_QUIET)
            elif event == "app":
                self._app_said(message)
            elif event == "modules":
                modules = [str(m) for m in message["modules"]]
                if not self.supervisor.stopping:  # a worker stopping with us: no new zygote
                    self.launcher.learn(modules, then=self._zygote_rebuilt)
                self._save_modules(modules)

    def _app_said(self, message: dict[str, object]) -> None:
        """What a worker found about the app: each note said once in the run, and partial
        reloads turned off (and said so, once) where its framework does not allow them."""
        notes = message.get("notes")
        for note in notes if isinstance(notes, list) else []:
            if str(note) not in self.said:
                self.said.add(str(note))
                log.info("%s", note)
        problem = message.get("partial_problem")
        if problem and self.options.partial and not self.launcher.incremental_off:
            self.launcher.incremental_off = str(problem)
            self.launcher.retire_apps()
            log.info(
                "saves import the whole app, over the zygote that holds %s imported: %s",
                message.get("framework") or "the framework", problem,
            )  # fmt: skip

    # --- importing only what changed (graph.py) ----------------------------------------------

    def _plan(self, env: Mapping[str, str], full: bool) -> Plan:
        """Which part of the app the next worker imports, and why."""
        app = self.launcher.app
        if full:
            return Plan(None, "after a partial import failed")
        if not self.options.partial:
            return Plan(None, "HOTMODE_PARTIAL_RELOAD is off")
        if self.launcher.incremental_off:
            return Plan(None, self.launcher.incremental_off)
        if app is None and self.app_import_ms is not None and not self._app_zygote_worth():
            return Plan(None, f"it imports in {self.app_import_ms:.0f} ms")
        if app is None or not app.ready:
            return Plan(None, "no app zygote yet")
        if self.launcher.app_outdated:  # it holds the replaced zygote (and its memory) alive
            return Plan(None, "the zygote was rebuilt")
        if dict(env) != app.env:
            return Plan(None, "the environment changed")
        return self.graph.plan(app.stale)

    def _failed(self, worker_id: int, error: str) -> None:
        plan = self.plans.get(worker_id)
        partial = plan is not None and plan.fresh is not None
        app = self.launcher.app
        if partial and app is not None:
            # What changed may register itself somewhere the graph cannot see (a table on a
            # shared metadata, say): suspected until the whole app, imported again, tells.
            changed = {self.graph.module_of(path) for path in app.stale}
            self.suspects = {name for name in changed if name is not None}
        self.supervisor.worker_failed(worker_id, error, partial)

    def _app_zygote_when_quiet(self) -> None:
        now = time.monotonic()
        if self.app_zygote_due is None or now < self.app_zygote_due:
            return
        if now - self.last_change < APP_ZYGOTE_QUIET:  # saved again meanwhile
            self.app_zygote_due = self.last_change + APP_ZYGOTE_QUIET
            return
        self.app_zygote_due = None
        self._build_app_zygote()

    def _build_app_zygote(self) -> None:
        """Once a worker serves: an app zygote with the app's current modules, unless the one
        there still serves. Saves since it was built are imported again over it (its `stale`
        files) until they make most of the app stale: only then is it built again. The workers
        do not move onto it (that would close held WebSockets once more): the next save's
        worker is forked from it."""
        app = self.launcher.app
        if not self.options.partial or self.launcher.building is not None:
            return  # built from the zygote being built, once it is ready (_zygote_rebuilt)
        if not self._app_zygote_worth():
            if self.app_import_ms is not None and not self.said_not_worth:
                self.said_not_worth = True
                log.info(
                    "saves import the whole app: it imports in %.0f ms, under the %.0f ms that "
                    "an app zygote (a process holding the app) is kept for; "
                    "HOTMODE_PARTIAL_RELOAD=1 keeps one anyway",
                    self.app_import_ms, self.options.partial_from_ms,
                )  # fmt: skip
            return
        if (
            app is not None
            and app.env == self.supervisor.env
            and not self.launcher.app_outdated
            and self.graph.plan(app.stale).fresh is not None
        ):
            return
        env = self.supervisor.env
        target = self.options.target.partition(":")[0]
        modules = [name for name, node in self.graph.nodes.items()
                   if name != target and not node.dynamic]  # fmt: skip
        roots = [str(root) for root in self.options.roots]
        self.launcher.build_app(modules, env, roots)

    def _measured(self, import_ms: float) -> None:
        """The whole app's import time, again (the app grows and shrinks as it is edited): when
        that changes whether an app zygote is worth keeping, it is decided again."""
        was = None if self.app_import_ms is None else self._app_zygote_worth()
        self.app_import_ms = import_ms
        if self._app_zygote_worth() != was:
            self.said_not_worth = False
            if self.graph.nodes:
                self.app_zygote_due = max(time.monotonic(), self.last_change + APP_ZYGOTE_QUIET)

    def _app_zygote_worth(self) -> bool:
        """Whether keeping the unchanged part of the app preloaded saves enough to be worth the
        memory of a process holding it: the whole app takes `partial_from_ms` or more to import
        (not known until a worker forked from the framework zygote has imported it)."""
        threshold = self.options.partial_from_ms
        if threshold <= 0:
            return True
        return self.app_import_ms is not None and self.app_import_ms >= threshold

    # --- the rest of the Host -----------------------------------------------------------------

    def read_env(self) -> dict[str, str]:
        """The workers' environment: ours, then the env file's values (re-read each time)."""
        env = dict(self.base_env)
        if self.options.env_file is not None:
            env.update(read_env_file(self.options.env_file))
        if self.options.reload:
            env["HOTMODE_RELOAD"] = "true"
        return env

    def start_install(self) -> bool:
        command = self.options.install
        if not command:
            return False
        log.info("dependencies changed: running %s", command)
        self.install = subprocess.Popen(  # noqa: S603 -- the user's own --install command
            [sys.executable, "-m", "hotmode.reload.lifeline", str(os.getpid()),
             "/bin/sh", "-c", command],
            cwd=self.app_dir,
            stdin=subprocess.DEVNULL,
            env=self.base_env,
        )  # fmt: skip
        self._watch_install(self.install)
        return True

    def _watch_install(self, install: subprocess.Popen[bytes]) -> None:
        """Wake the loop when the install command ends: its pidfd on Linux; elsewhere (and with
        the portable process layer forced) a thread that waits for it and writes to a pipe."""
        if chosen() == "linux":
            pidfd = os.pidfd_open(install.pid)
            self._register(pidfd, lambda: self._install_finished(pidfd))
            return
        ended, tell = os.pipe()

        def wait() -> None:
            install.wait()
            os.write(tell, b"x")
            os.close(tell)

        threading.Thread(target=wait, name="install-wait", daemon=True).start()
        self._register(ended, lambda: self._install_finished(ended))

    def _install_finished(self, fd: int) -> None:
        self.selector.unregister(fd)
        os.close(fd)
        install, self.install = self.install, None
        code = install.wait(timeout=5) if install is not None else 0
        self.supervisor.install_finished(code)

    def rebuild_zygote(self) -> bool:
        """Dependencies changed: the app zygote has the old ones, and goes at once."""
        self.launcher.retire_apps()
        return self.launcher.rebuild(then=self._zygote_rebuilt)

    def zygote_pending(self) -> bool:
        return self.launcher.pending

    def _zygote_rebuilt(self) -> None:
        if self.graph.nodes:
            self.app_zygote_due = max(time.monotonic(), self.last_change + APP_ZYGOTE_QUIET)
        self.supervisor.zygote_rebuilt(forking=self.launcher.active is not None)

    # --- the module list, kept between runs so that the first zygote is already warm ----------

    def _cached_modules(self) -> list[str]:
        if not self.options.reload:
            return []
        try:
            data = json.loads(self.module_cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [str(m) for m in data] if isinstance(data, list) else []

    def _save_modules(self, modules: list[str]) -> None:
        """Add a worker's new modules to the list (a forked worker reports only those its zygote
        lacked). Written only when it grows: a write at each reload would be churn in a folder
        the user may be cleaning."""
        if not self.options.reload:
            return
        if self.saved_modules is None:
            self.saved_modules = self._cached_modules()
        have = set(self.saved_modules) | self.launcher.excluded
        new = [m for m in dict.fromkeys(modules) if m not in have]
        if not new:
            return
        self.saved_modules = [*self.saved_modules, *new]
        from hotmode.atomic import write_atomic

        try:
            write_atomic(self.module_cache, json.dumps(self.saved_modules))
        except OSError:
            log.debug("cannot write %s", self.module_cache, exc_info=True)


def _ignore(_signum: int, _frame: object) -> None:
    """The wake-up fd carries the signal; the handler itself does nothing."""


def run(options: RunOptions, environ: Mapping[str, str]) -> int:
    """Serve until stopped; return the exit code (130 on SIGINT, 143 on SIGTERM)."""
    return Runtime(options, environ).run()
