"""The launcher's choices that need no process: when a save waits for a zygote being built."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from hotmode.reload.launcher import WAIT_FOR_MODULES, Launcher


def test_a_save_waits_for_a_zygote_build_only_when_it_brings_much() -> None:
    with socket.socket() as listen:
        launcher = Launcher(listen, "/app", {}, use_zygote=True)
        assert not launcher.pending  # nothing being built
        names = [f"module{i}" for i in range(WAIT_FOR_MODULES + 10)]
        launcher.building = SimpleNamespace(requested=names)  # type: ignore[assignment]
        assert launcher.pending  # the first one: nothing to fork from meanwhile
        launcher.active = SimpleNamespace(modules=set(names[:10]))  # type: ignore[assignment]
        assert launcher.pending  # after a cold start: the framework is still to come
        launcher.active = SimpleNamespace(modules=set(names[:-5]))  # type: ignore[assignment]
        assert not launcher.pending  # a few lazily imported modules: not worth the wait
        launcher.cold = True  # but while the first zygote, built with nothing learned, serves
        assert launcher.pending
        assert not Launcher(listen, "/app", {}, use_zygote=False).pending
