"""The supervisor's logic: which worker serves, when to start, swap, drain, back off and stop.

A state machine with no I/O of its own: the runtime feeds it events (a batch of changes, a worker
started, ready, failed or exited, a signal, the clock) and it acts through a `Host` (launch a
worker, read the env file, run the install command, rebuild the zygote) and through worker
handles (terminate, kill). Tests drive it with scripted events and fake handles.

The swap overlaps: a new worker imports the app and runs its startup while the old one serves;
only once the new one is ready is the old one drained (SIGTERM, then SIGKILL past the bound), and
the new one accepts once the old one has released its connections (handed over, see handover.py),
so that no request is read by old code after new code has answered one. A
worker that fails to start is reported and the last good one keeps serving; the next change
tries again at once. With several workers the swap rolls, one slot at a time. When no version
has started yet, an *error page* worker (503 with the error's file:line) holds the slot, so that
requests are answered at once instead of waiting for a fix; the fix replaces it like any swap.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from hotmode.errors import HotmodeError
from hotmode.reload.rules import DEPS, ENV

log = logging.getLogger("hotmode.reload")

# Restart delays after repeated deaths with no change in between (seconds), and the time a worker
# must have served for its death to count as a fresh start of the sequence.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0
# Extra time past uvicorn's own graceful-shutdown bound before SIGKILL.
KILL_GRACE = 1.0
# How long a ready worker waits for the one it replaces to release its connections before it
# accepts anyway (the old one's loop may be stuck in a request).
RELEASE_TIMEOUT = 1.0


def backoff_delay(crashes: int) -> float:
    """No wait for a first death; then 0.5 s, doubling, up to 10 s."""
    if crashes <= 1:
        return 0.0
    return float(min(BACKOFF_FIRST * 2 ** (crashes - 2), BACKOFF_MAX))


class Handle(Protocol):
    """A started worker process as the supervisor sees it."""

    pid: int

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def serve(self) -> None: ...


class Host(Protocol):
    """What the supervisor asks of the world around it."""

    def launch(
        self, worker_id: int, env: Mapping[str, str], error: str | None, full: bool = False
    ) -> Handle: ...

    def read_env(self) -> dict[str, str]: ...

    def start_install(self) -> bool: ...

    def rebuild_zygote(self) -> bool: ...

    def zygote_pending(self) -> bool: ...


@dataclass(frozen=True)
class Change:
    """One file change that matters: its kind (`code`, `env`, `deps`), its path for logs, and
    the file itself (absolute)."""

    kind: str
    path: str
    file: str = field(default="", compare=False)


@dataclass
class Worker:
    id: int
    slot: int
    generation: int
    handle: Handle
    launched_at: float
    state: str = "starting"  # starting -> serving -> draining; or failed, discarded
    ready_at: float | None = None
    deadline: float | None = None
    reason: str = ""
    changed_at: float | None = None
    error: str | None = None  # set for an error page: it answers 503 with this error
    awaiting: int | None = None  # ready, but waits for this worker's release to accept
    zygote: int = 0  # which zygote build was the newest when it was launched


@dataclass(frozen=True)
class Timing:
    """What a ready worker reports: its import time and its start-to-ready time."""

    import_ms: float = 0.0
    ready_ms: float = 0.0
    how: str = ""  # which modules it imported: the whole app, or which part (graph.py)


class Supervisor:
    """Keeps `workers` workers serving the newest code that starts."""

    def __init__(
        self,
        host: Host,
        *,
        target: str,
        url: str,
        workers: int = 1,
        reload: bool = True,
        handover: bool = True,
        drain_timeout: float = 3.0,
        ready_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.target = target
        self.url = url
        self.reload = reload
        self.handover = reload and handover  # connections move from worker to worker
        self.drain_timeout = drain_timeout
        self.ready_timeout = ready_timeout
        self.clock = clock
        self.slots: list[Worker | None] = [None] * workers
        self.workers: dict[int, Worker] = {}
        self.env: dict[str, str] = {}
        self.generation = 1
        self.broken: int | None = None
        self.reason = "start"
        self.changed_at: float | None = None
        self.waiting: set[str] = set()
        self.crashes = 0
        self.backoff_until = 0.0
        self.stopping = False
        self.stop_deadline: float | None = None
        self.exit_code = 0
        self.served_once = False
        self.zygote_deadline: float | None = None  # waiting for a zygote being built, until
        self.refresh_due = False  # a zygote came in while a worker started: move it once ready
        self.zygotes = 0  # zygote builds done
        self._ids = 0

    # --- events -------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the environment and start every slot (an env-file error raises here)."""
        self.env = self.host.read_env()
        self._step()

    def changes(self, batch: Iterable[Change], at: float | None = None) -> None:
        """A batch of changes from the watcher (already filtered and classified)."""
        batch = list(batch)
        if self.stopping or not batch:
            return
        kinds = {c.kind for c in batch}
        if ENV in kinds:
            try:
                self.env = self.host.read_env()
            except HotmodeError as exc:
                log.error("%s; keeping the previous environment", exc)
                if kinds == {ENV}:
                    return
        if DEPS in kinds:
            if self.host.start_install():
                self.waiting.add("install")
            elif self.host.rebuild_zygote():
                self._wait_for_zygote()
        paths = sorted({c.path for c in batch})
        reason = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        self._reload(f"{reason} changed", at)

    def force_reload(self) -> None:
        """SIGHUP: reload now, whatever changed."""
        if not self.stopping:
            self._reload("SIGHUP", self.clock())

    def refresh(self) -> None:
        """The zygote was rebuilt with more modules: move the workers to it, so that the old one
        (and its memory) can go. Connections are handed over, so clients see nothing."""
        if self.stopping or self.waiting or self.broken is not None:
            return
        starting = [w for w in self.workers.values() if w.state == "starting"]
        if starting:  # a reload under way forks from the new zygote, unless launched before it
            self.refresh_due = any(w.zygote < self.zygotes for w in starting)
            return
        if not self.serving_good():
            return
        self._reload("preloaded modules refreshed", None)

    def install_finished(self, code: int) -> None:
        self.waiting.discard("install")
        if code != 0:
            log.error("the install command exited with code %d; reloading anyway", code)
        if self.host.rebuild_zygote():
            self._wait_for_zygote()
        self._step()

    def zygote_rebuilt(self, forking: bool = True) -> None:
        """A zygote was built (or its build gave up): a reload waiting for it starts now; else,
        when workers can fork from it (`forking`), they move to it."""
        if "zygote" in self.waiting:
            self.zygotes += 1
            self.waiting.discard("zygote")
            self.zygote_deadline = None
            self._step()
        elif forking:
            self.zygote_ready()

    def zygote_ready(self) -> None:
        """A zygote (or an app zygote) workers can fork from is ready: they move to it, so that
        they share its memory and the one they came from can go."""
        self.zygotes += 1
        self.refresh()

    def worker_ready(self, worker_id: int, timing: Timing) -> None:
        worker = self.workers.get(worker_id)
        if worker is None or worker.state != "starting":
            return
        now = self.clock()
        worker.state, worker.ready_at, worker.deadline = "serving", now, None
        old = self.slots[worker.slot]
        self.slots[worker.slot] = worker
        if old is not None:
            self._drain(old)
        if old is not None and self.handover:  # else the new one accepts at once
            worker.awaiting, worker.deadline = old.id, now + RELEASE_TIMEOUT
        else:
            worker.handle.serve()
        pid = worker.handle.pid
        if worker.error is not None:
            log.info("answering 503 with the error on %s (pid %d) until a fix", self.url, pid)
        elif not self.served_once:
            self.served_once = True
            log.info("serving %s on %s (pid %d)", self.target, self.url, pid)
        elif worker.reason and worker.reason != "restart":
            since = ""
            if worker.changed_at is not None:
                since = f", {(now - worker.changed_at) * 1000:.0f} ms after the change"
            how = f" ({timing.how})" if timing.how else ""
            log.info(
                "reloaded (%s): import %.0f ms%s, ready %.0f ms after start%s; pid %d serving",
                worker.reason, timing.import_ms, how, timing.ready_ms, since, pid,
            )  # fmt: skip
        else:
            log.info("worker pid %d serving", pid)
        self._step()
        if self.refresh_due and not any(w.state == "starting" for w in self.workers.values()):
            self.refresh_due = False
            self.refresh()

    def worker_failed(self, worker_id: int, error: str, partial: bool = False) -> None:
        """A worker could not start. One that imported only part of the app (`partial`) is
        tried again at once importing all of it: only that failing is reported."""
        worker = self.workers.get(worker_id)
        if worker is None or worker.state != "starting":
            return
        worker.state = "failed"
        worker.deadline = self.clock() + self.drain_timeout + KILL_GRACE
        if partial and not self.stopping:
            log.info("the partial import failed (%s); importing the whole app", error)
            self._launch(worker.slot, worker.reason, full=True)
            return
        self._report_failure(worker, error)

    def worker_released(self, worker_id: int) -> None:
        """A stopping worker accepts no more and has handed its idle connections over."""
        for worker in self.workers.values():
            if worker.awaiting == worker_id:
                worker.awaiting = None
                if worker.state == "serving":  # not if it is being replaced already
                    worker.deadline = None
                    worker.handle.serve()

    def adopter(self, worker_id: int) -> Worker | None:
        """The worker that takes over the connections `worker_id` hands over; None: close them."""
        source = self.workers.get(worker_id)
        if self.stopping or source is None:
            return None
        target = self.slots[source.slot]
        if target is None or target is source or target.state != "serving":
            return None
        return target

    def worker_exited(self, worker_id: int, code: int | None) -> None:
        self.worker_released(worker_id)
        worker = self.workers.pop(worker_id, None)
        if worker is None:
            return
        how = "exited" if code is None else f"exited with code {code}"
        if worker.state == "starting" and not self.stopping:
            self._report_failure(worker, f"the worker {how} before it was ready")
        elif worker.state == "serving":
            self.slots[worker.slot] = None
            if not self.stopping:
                self._crashed(worker, how)
        self._step()

    def on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.force_reload()
        elif signum in (signal.SIGINT, signal.SIGTERM):
            self.stop(128 + signum)

    def stop(self, code: int) -> None:
        """Stop every worker gracefully, within the bound; a second call kills them."""
        if self.stopping:
            for worker in self.workers.values():
                worker.handle.kill()
            return
        self.stopping = True
        self.exit_code = code
        self.stop_deadline = self.clock() + self.drain_timeout + KILL_GRACE
        for worker in self.workers.values():
            if worker.state == "serving":
                worker.handle.terminate()
            elif worker.state == "starting":
                worker.handle.kill()

    def tick(self) -> None:
        """Act on deadlines: ready timeouts, drain bounds, the stop bound, the end of a backoff."""
        now = self.clock()
        for worker in list(self.workers.values()):
            if worker.deadline is None or now < worker.deadline:
                continue
            worker.deadline = None
            if worker.awaiting is not None and worker.state == "serving":
                old = self.workers.get(worker.awaiting)
                if old is not None:
                    pid = old.handle.pid
                    log.warning("pid %d did not release its connections in time", pid)
                self.worker_released(worker.awaiting)
                continue
            worker.handle.kill()
            if worker.state == "starting":
                worker.state = "failed"
                self._report_failure(worker, f"not ready after {self.ready_timeout:.0f} s")
        if self.stopping and self.stop_deadline is not None and now >= self.stop_deadline:
            self.stop_deadline = None
            for worker in self.workers.values():
                worker.handle.kill()
        if self.backoff_until and now >= self.backoff_until:
            self.backoff_until = 0.0
            self._step()
        if self.zygote_deadline is not None and now >= self.zygote_deadline:
            log.warning(
                "the zygote is not ready after %.0f s; reloading without it", self.ready_timeout
            )
            self.zygote_rebuilt(forking=False)

    # --- queries ------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.stopping and not self.workers

    def next_deadline(self) -> float | None:
        times = [w.deadline for w in self.workers.values() if w.deadline is not None]
        if self.stopping and self.stop_deadline is not None:
            times.append(self.stop_deadline)
        if self.backoff_until:
            times.append(self.backoff_until)
        if self.zygote_deadline is not None:
            times.append(self.zygote_deadline)
        return min(times) if times else None

    def serving(self) -> list[Worker]:
        return [w for w in self.slots if w is not None]

    def serving_good(self) -> list[Worker]:
        """Workers serving the app (not an error page)."""
        return [w for w in self.serving() if w.error is None]

    # --- the machinery ------------------------------------------------------------------------

    def _reload(self, reason: str, at: float | None) -> None:
        self.generation += 1
        self.broken = None
        self.reason, self.changed_at = reason, at
        self.crashes, self.backoff_until = 0, 0.0
        now = self.clock()
        for worker in self.workers.values():
            if worker.state == "starting":
                # SIGTERM, not SIGKILL: it may already accept connections; uvicorn drains them.
                worker.state = "discarded"
                worker.deadline = now + self.drain_timeout + KILL_GRACE
                worker.handle.terminate()
        if self.host.zygote_pending():
            # The zygote being built has a head start on the imports this worker would make:
            # forking from it once ready is sooner than importing them all over again.
            self._wait_for_zygote()
        self._step()

    def _wait_for_zygote(self) -> None:
        if "zygote" not in self.waiting:
            self.waiting.add("zygote")
            self.zygote_deadline = self.clock() + self.ready_timeout

    def _step(self) -> None:
        """Launch what is missing: empty slots at once, stale slots one at a time (rolling)."""
        if self.stopping or self.waiting:
            return
        starting = {w.slot for w in self.workers.values() if w.state == "starting"}
        now = self.clock()
        for slot, current in enumerate(self.slots):
            if slot in starting:
                continue
            if current is None:
                if self.broken == self.generation or now < self.backoff_until:
                    continue
                self._launch(slot, "restart" if self.served_once else "")
                starting.add(slot)
            elif current.generation < self.generation and not starting:
                if self.broken == self.generation:
                    return
                self._launch(slot, self.reason)
                return

    def _launch(self, slot: int, reason: str, error: str | None = None, full: bool = False) -> None:
        self._ids += 1
        now = self.clock()
        handle = self.host.launch(self._ids, self.env, error, full)
        self.workers[self._ids] = Worker(
            id=self._ids, slot=slot, generation=self.generation, handle=handle, launched_at=now,
            deadline=now + self.ready_timeout, reason=reason, changed_at=self.changed_at,
            error=error, zygote=self.zygotes,
        )  # fmt: skip

    def _drain(self, worker: Worker) -> None:
        worker.state = "draining"
        worker.deadline = self.clock() + self.drain_timeout + KILL_GRACE
        worker.handle.terminate()

    def _report_failure(self, worker: Worker, error: str) -> None:
        if worker.error is not None:
            log.error("the error page did not start: %s", error)
            return
        if worker.generation == self.generation:
            self.broken = self.generation
        if not self.reload and not self.served_once:
            log.error("%s", error)
            self.stop(1)
            return
        serving = self.serving_good()
        if serving:
            pids = ", ".join(str(w.handle.pid) for w in serving)
            log.error("%s -- still serving the last good version (pid %s)", error, pids)
            return
        # "nothing is serving; waiting for a fix" is what `hotmode up` watches for (native.py).
        log.error(
            "%s -- nothing is serving; waiting for a fix (requests get a 503 naming it)", error
        )
        self._show_error(worker.slot, error)

    def _show_error(self, slot: int, error: str) -> None:
        """Start an error page in `slot`, unless one with this error holds or is taking it."""
        if self.stopping or self.broken != self.generation:
            return
        for other in self.workers.values():
            same_slot = other.slot == slot and other.state in ("starting", "serving")
            if same_slot and other.error == error:
                return
        self._launch(slot, "error page", error)

    def _crashed(self, worker: Worker, how: str) -> None:
        now = self.clock()
        if worker.ready_at is not None and now - worker.ready_at >= STABLE_AFTER:
            self.crashes = 0
        self.crashes += 1
        delay = backoff_delay(self.crashes)
        self.backoff_until = now + delay if delay else 0.0
        when = "now" if not delay else f"in {delay:.1f} s"
        log.warning("worker pid %d %s unexpectedly; restarting %s", worker.handle.pid, how, when)
