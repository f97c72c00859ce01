"""Starting workers: forked from the zygote when it can, spawned as fresh interpreters when not.

The supervisor's side of the zygote lives here too: starting one with a module list, learning a
longer list from a ready worker and rebuilding in the background, retiring the old one (it exits
once its last worker has drained), and falling back to spawning, said once, when the zygote is
not single-threaded or is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from hotmode.reload import pycache, spawning
from hotmode.reload.protocol import WorkerSpec, send_message
from hotmode.reload.zygotes import AppZygote, Zygote

log = logging.getLogger("hotmode.reload")

WAIT_FOR_MODULES = 50  # a save waits for a zygote being built that brings at least this many


class WorkerProcess:
    """A started worker: its pid, its status pipe, its handover channel, how to signal it."""

    def __init__(
        self,
        pid: int,
        status_fd: int,
        channel: socket.socket,
        popen: subprocess.Popen[bytes] | None,
    ) -> None:
        self.pid = pid
        self.status_fd = status_fd
        self.channel = channel
        self.popen = popen
        self.gone = False

    def serve(self) -> None:
        """Start accepting (once the worker it replaces has released its connections)."""
        self.send({"op": "serve"})

    def send(self, message: dict[str, object], fds: list[int] | None = None) -> bool:
        try:
            send_message(self.channel, message, fds or [])
        except OSError:
            return False
        return True

    def signal(self, sig: int) -> None:
        if self.gone:
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            self.gone = True

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def reap(self) -> int | None:
        """The exit code once the status pipe is closed: known for spawned workers only."""
        self.gone = True
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(timeout=2)


class Launcher:
    """Starts workers for the supervisor and keeps the zygote up to date."""

    def __init__(
        self,
        listen: socket.socket,
        app_dir: str,
        env: Mapping[str, str],
        *,
        use_zygote: bool,
        watch: Callable[[Zygote], None] = lambda z: None,
        unwatch: Callable[[Zygote], None] = lambda z: None,
    ) -> None:
        self.listen = listen
        self.app_dir = app_dir
        self.env = dict(env)
        self.use_zygote = use_zygote
        self.watch = watch
        self.unwatch = unwatch
        self.active: Zygote | None = None
        self.building: Zygote | None = None
        self.retired: list[Zygote] = []
        self.known: set[str] = set()
        self.wanted: list[str] = []
        self.excluded: set[str] = set()
        self._said_spawn = False
        self.cold = False
        self.app: AppZygote | None = None  # the app zygote workers fork from
        self.app_building: AppZygote | None = None
        self.incremental_off: str | None = None  # why no app zygote can be used, once found
        self.rebuilt_callback: Callable[[], None] | None = None

    # --- the zygote ---------------------------------------------------------------------------

    def start(self, modules: list[str], then: Callable[[], None] | None = None) -> None:
        """Start building the first zygote, in the background: the first worker is spawned
        meanwhile (it imports the app while the zygote imports the rest), and `then` is called
        once the zygote is ready, so that workers can move to it."""
        if not self.use_zygote:
            return
        self.wanted = list(modules)
        self.cold = not modules  # nothing learned yet: the first zygote has no framework
        self.building = self._new_zygote(self.wanted)
        self.rebuilt_callback = then

    @property
    def pending(self) -> bool:
        """A zygote is being built with much that the active one lacks (the first worker's
        modules, after a cold start): a worker launched now is better off waiting for it than
        importing all that itself. Later, a few more modules are not worth the wait."""
        if not self.use_zygote or self.building is None:
            return False
        if self.active is None or self.cold:
            return True
        return len(set(self.building.requested) - self.active.modules) >= WAIT_FOR_MODULES

    def rebuild(
        self, modules: list[str] | None = None, *, then: Callable[[], None] | None = None
    ) -> bool:
        """Build a new zygote in the background; False (and no call to `then`) without zygotes."""
        if not self.use_zygote:
            return False
        if modules is None:
            modules = self.wanted
        self.wanted = [m for m in modules if m not in self.excluded]
        if self.building is not None:
            self._retire(self.building)
        self.building = self._new_zygote(self.wanted)
        self.rebuilt_callback = then
        return True

    def learn(self, modules: list[str], then: Callable[[], None] | None = None) -> None:
        """A ready worker's preloadable modules: rebuild when they include new ones, then call
        `then` (the workers forked from the old zygote may move to the new one)."""
        if not self.use_zygote or (self.active is None and self.building is None):
            return
        have = set(self.building.requested if self.building is not None else ())
        if self.active is not None:
            have |= self.active.modules
        new = [m for m in modules if m not in have and m not in self.known]
        if not new:
            return
        self.known.update(new)
        # A zygote still building without these is restarted at once: the sooner it starts
        # importing them, the sooner the next reload (or the move onto it) can fork from it.
        log.debug("zygote: %d new modules to preload (%s...); rebuilding", len(new), new[0])
        self.rebuild(list(dict.fromkeys([*self.wanted, *modules])), then=then)

    def zygote_readable(self, zygote: Zygote) -> None:
        """The runtime calls this when a zygote's control socket has something to read."""
        if isinstance(zygote, AppZygote):
            self._app_readable(zygote)
            return
        was_ready = zygote.ready
        alive = zygote.read()
        if alive and zygote is self.building and zygote.ready and not was_ready:
            self.building = None
            self._adopt(zygote)
            if self.building is None:  # not rebuilding again without a thread-starting module
                self._rebuilt()
            return
        if alive:
            return
        code = zygote.process.poll()
        if zygote is self.active:
            log.warning("zygote: exited (code %s); spawning workers until it is rebuilt", code)
            self.active = None
        elif zygote is self.building:
            log.warning("zygote: the rebuild failed (code %s)", code)
            self.building = None
            self._rebuilt()
        self._retire(zygote)

    # --- the app zygote -----------------------------------------------------------------------

    def build_app(self, modules: list[str], env: Mapping[str, str], roots: list[str]) -> None:
        """Fork an app zygote with `modules` imported, in the background, unless one is being
        built already or none can be used."""
        if self.incremental_off or self.app_building is not None:
            return
        if self.active is None or not self.active.alive:
            return
        try:
            self.app_building = self.active.app_zygote(modules, env, roots)
        except OSError as exc:
            log.debug("zygote: cannot fork an app zygote (%s)", exc)
            return
        self.watch(self.app_building)

    @property
    def app_outdated(self) -> bool:
        """No app zygote, or one forked from a zygote that has been replaced since."""
        return self.app is None or self.app.parent is not self.active

    def app_changed(self, path: str) -> None:
        """A file of the app changed: stale in the app zygotes that have (or may have) read it."""
        for zygote in (self.app, self.app_building):
            if zygote is not None:
                zygote.stale.add(path)

    def _app_readable(self, zygote: AppZygote) -> None:
        was_ready = zygote.ready
        if not zygote.read():
            if zygote is self.app:
                self.app = None
            if zygote is self.app_building:
                self.app_building = None
            self._retire_app(zygote)
            return
        if zygote is not self.app_building or not zygote.ready or was_ready:
            return
        self.app_building = None
        if zygote.unsafe is not None:
            log.info(
                "incremental reloads off: %s; every reload imports the whole app", zygote.unsafe
            )
            self.incremental_off = zygote.unsafe
            self._retire_app(zygote)
            return
        if self.app is not None:
            self._retire_app(self.app)
        self.app = zygote
        log.debug("app zygote: pid %d ready with %d modules", zygote.pid, len(zygote.modules))

    def retire_apps(self) -> None:
        """No app zygote until the next is built."""
        for app in (self.app, self.app_building):
            self._retire_app(app)
        self.app = self.app_building = None

    def _retire_app(self, zygote: AppZygote | None) -> None:
        if zygote is not None and zygote.control.fileno() >= 0:
            self.unwatch(zygote)
            zygote.retire()

    def _rebuilt(self) -> None:
        if self.rebuilt_callback is not None:
            callback, self.rebuilt_callback = self.rebuilt_callback, None
            callback()

    def _new_zygote(self, modules: list[str]) -> Zygote:
        zygote = Zygote(self.listen, modules, self.app_dir, self.env)
        self.watch(zygote)
        return zygote

    def _retire(self, zygote: Zygote) -> None:
        if zygote.control.fileno() >= 0:
            self.unwatch(zygote)
        zygote.retire()
        self.retired.append(zygote)

    def _adopt(self, zygote: Zygote) -> None:
        if zygote.threads != 1:
            self._retire(zygote)
            culprit = zygote.threaded_by
            if culprit is None or culprit in self.excluded:
                self._fall_back(f"the zygote runs {zygote.threads} threads after preloading")
                return
            # Leave that module to the workers (they import it after the fork) and rebuild.
            log.info("zygote: importing %s starts a thread; leaving it to the workers", culprit)
            self.excluded.add(culprit)
            self.known.add(culprit)
            self.rebuild(self.wanted, then=self.rebuilt_callback)
            return
        if self.active is not None:
            self._retire(self.active)
        self.active = zygote  # the app zygote forked from the old one serves until rebuilt
        self.cold = self.cold and not zygote.requested
        self.known.update(zygote.modules | zygote.failed)
        log.debug("zygote: pid %d ready with %d modules", zygote.process.pid, len(zygote.modules))

    def _fall_back(self, why: str) -> None:
        if not self._said_spawn:
            log.warning("%s: forking is not safe, so workers are spawned (slower reloads)", why)
            self._said_spawn = True

    # --- workers ------------------------------------------------------------------------------

    def launch(self, spec: WorkerSpec) -> WorkerProcess:
        """Start one worker, forked when possible; its status pipe and its end of the handover
        channel are returned non-blocking."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        ours, theirs = spawning.channel_pair()
        ours.setblocking(False)
        try:
            if spec.fresh is not None and self.app is not None and self.app.alive:
                try:
                    pid = self.app.fork(spec, [write_fd, theirs.fileno()])
                    return WorkerProcess(pid, read_fd, ours, None)
                except OSError as exc:
                    log.debug("app zygote: cannot fork (%s)", exc)
                    self._retire_app(self.app)
                    self.app = None
                spec = WorkerSpec(**{**spec.__dict__, "fresh": None})
            if self.active is not None and self.active.alive:
                try:
                    pid = self.active.fork(spec, [write_fd, theirs.fileno()])
                    return WorkerProcess(pid, read_fd, ours, None)
                except OSError as exc:
                    log.warning("zygote: cannot fork (%s); spawning until it is rebuilt", exc)
                    self._retire(self.active)
                    self.active = None
            popen = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
                [sys.executable, "-m", "hotmode.reload.entry", "worker", spec.to_json(),
                 str(self.listen.fileno()), str(write_fd), str(theirs.fileno())],
                pass_fds=(self.listen.fileno(), write_fd, theirs.fileno()),
                env=pycache.interpreter_env(spec.env),
                stdin=subprocess.DEVNULL,
                process_group=0,
            )  # fmt: skip
            return WorkerProcess(popen.pid, read_fd, ours, popen)
        finally:
            os.close(write_fd)
            theirs.close()

    def close(self, timeout: float) -> None:
        """Retire every zygote and wait for them, bounded."""
        self.retire_apps()
        for zygote in (self.active, self.building):
            if zygote is not None:
                self._retire(zygote)
        self.active = self.building = None
        for zygote in self.retired:
            zygote.finish(timeout)
        self.retired.clear()

    def collect(self) -> None:
        """Forget retired zygotes that have exited."""
        for zygote in list(self.retired):
            if zygote.process.poll() is not None:
                self.retired.remove(zygote)


def pycache_prefix(environ: Mapping[str, str]) -> str:
    """Where bytecode goes, so that no `__pycache__` lands in the source tree: the user's own
    PYTHONPYCACHEPREFIX, else a folder of the user's in the temporary folder. What is in it is
    run (bytecode) or imported (the module lists), and the default's name can be guessed, so a
    prefix, given or default, is used only if it is a real folder owned by this user that no one
    else can write, under folders only root or the user can change (`safefs.trust_problem`).
    A given prefix that is not is replaced by a private folder in it when it is sticky (as
    /tmp), else by the default; one that is not either by a fresh private folder for this run.
    The user is told why in one line."""
    import tempfile

    uid = os.getuid()
    default = Path(tempfile.gettempdir()) / f"hotmode-pycache-{uid}"
    given = environ.get("PYTHONPYCACHEPREFIX")
    # A shared sticky folder given as the prefix (a dev image's cache volume, mode 1777, for
    # whichever user the container runs as) holds a private folder of this user's own.
    candidates = [default]
    if given:
        shared = _sticky(Path(given))
        candidates[:0] = [Path(given), *([shared / f"hotmode-pycache-{uid}"] if shared else [])]
    refused = []
    for folder in candidates:
        problem = _prefix_problem(folder, uid)
        if not problem:
            break
        refused.append(f"{folder} {problem}")
    else:
        folder = Path(tempfile.mkdtemp(prefix=f"hotmode-pycache-{uid}-"))
    if refused and folder.parent != Path(given or "/"):
        log.warning("%s: not used for bytecode; using %s", "; ".join(refused), folder)
    return str(folder)


def _sticky(folder: Path) -> Path | None:
    """`folder` if it is a real folder with the sticky bit (others cannot rename what is ours)."""
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    return folder if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX else None


def _prefix_problem(folder: Path, uid: int) -> str:
    """'' if `folder` (made private if missing) is fit to hold bytecode; else what is wrong."""
    from hotmode.safefs import trust_problem

    with contextlib.suppress(OSError):
        folder.mkdir(mode=0o700)
    try:
        info = os.lstat(folder)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if info.st_uid != uid:
        return f"belongs to another user (uid {info.st_uid})"
    if info.st_mode & 0o022:
        return "can be written by other users"
    above = trust_problem(folder, (0, uid))
    return f"is in a folder others can change ({above})" if above else ""
