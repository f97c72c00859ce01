"""The supervisor's logic, driven by scripted events, fake workers and a fake clock."""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping

import pytest

from hotmode.errors import ConfigError
from hotmode.reload.supervisor import Change, Supervisor, Timing, backoff_delay

CODE = [Change("code", "app/routes.py")]


class FakeWorker:
    def __init__(self, pid: int, env: Mapping[str, str], error: str | None = None) -> None:
        self.pid = pid
        self.env = dict(env)
        self.error = error
        self.signals: list[str] = []
        self.served = 0
        self.full = False

    def terminate(self) -> None:
        self.signals.append("TERM")

    def kill(self) -> None:
        self.signals.append("KILL")

    def serve(self) -> None:
        self.served += 1


class FakeHost:
    def __init__(self, *, install: bool = False, zygote: bool = True) -> None:
        self.launched: dict[int, FakeWorker] = {}
        self.env = {"A": "1"}
        self.env_error: str | None = None
        self.install = install
        self.zygote = zygote
        self.installs = 0
        self.rebuilds = 0
        self.building = False

    def launch(
        self, worker_id: int, env: Mapping[str, str], error: str | None, full: bool = False
    ) -> FakeWorker:
        worker = FakeWorker(1000 + worker_id, env, error)
        worker.full = full
        self.launched[worker_id] = worker
        return worker

    def read_env(self) -> dict[str, str]:
        if self.env_error:
            raise ConfigError(self.env_error)
        return dict(self.env)

    def start_install(self) -> bool:
        self.installs += self.install
        return self.install

    def rebuild_zygote(self) -> bool:
        self.rebuilds += self.zygote
        self.building = self.zygote
        return self.zygote

    def zygote_pending(self) -> bool:
        return self.building


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(workers: int = 1, reload: bool = True, **host_options: bool):
    host = FakeHost(**host_options)
    clock = Clock()
    sup = Supervisor(
        host, target="main:app", url="http://127.0.0.1:1", workers=workers, reload=reload,
        drain_timeout=3.0, ready_timeout=20.0, clock=clock,
    )  # fmt: skip
    sup.start()
    return sup, host, clock


def ready(sup: Supervisor, worker_id: int) -> None:
    sup.worker_ready(worker_id, Timing(import_ms=40, ready_ms=50))


def rebuilt(sup: Supervisor, host: FakeHost, forking: bool = True) -> None:
    host.building = False
    sup.zygote_rebuilt(forking=forking)


def test_start_serves_then_a_change_swaps_only_once_the_new_worker_is_ready(caplog):
    caplog.set_level(logging.INFO, "hotmode")
    sup, host, clock = make()
    assert list(host.launched) == [1]
    ready(sup, 1)
    assert "serving main:app on http://127.0.0.1:1 (pid 1001)" in caplog.text

    clock.now += 5
    sup.changes(CODE, at=clock.now)
    assert list(host.launched) == [1, 2]
    assert host.launched[1].signals == []  # the old one serves while the new one starts

    clock.now += 0.08
    ready(sup, 2)
    assert host.launched[1].signals == ["TERM"]
    assert [w.id for w in sup.serving()] == [2]
    assert "reloaded (app/routes.py changed): import 40 ms, ready 50 ms after start" in caplog.text
    assert "80 ms after the change; pid 1002 serving" in caplog.text


def test_the_new_worker_accepts_once_the_old_one_has_released():
    sup, host, _ = make()
    ready(sup, 1)
    assert host.launched[1].served == 1  # nothing to wait for
    sup.changes(CODE)
    ready(sup, 2)
    assert host.launched[1].signals == ["TERM"]
    assert host.launched[2].served == 0
    assert sup.adopter(1) is sup.workers[2]  # its connections go to the new one
    assert sup.adopter(2) is None
    sup.worker_released(1)
    assert host.launched[2].served == 1
    sup.worker_exited(1, 0)
    assert host.launched[2].served == 1


def test_a_worker_that_never_releases_delays_the_new_one_by_a_bound_only(caplog):
    sup, host, clock = make()
    ready(sup, 1)
    sup.changes(CODE)
    ready(sup, 2)
    clock.now += 1.0
    sup.tick()
    assert host.launched[2].served == 1
    assert host.launched[2].signals == []  # never killed for it
    assert "pid 1001 did not release its connections in time" in caplog.text


def test_an_old_worker_that_dies_lets_the_new_one_accept():
    sup, host, _ = make()
    ready(sup, 1)
    sup.changes(CODE)
    ready(sup, 2)
    sup.worker_exited(1, -9)
    assert host.launched[2].served == 1


def test_while_stopping_connections_are_closed_not_adopted():
    sup, _host, _ = make()
    ready(sup, 1)
    sup.stop(143)
    assert sup.adopter(1) is None


def test_a_draining_worker_is_killed_past_the_bound():
    sup, host, clock = make()
    ready(sup, 1)
    sup.changes(CODE)
    ready(sup, 2)
    sup.worker_released(1)
    assert sup.next_deadline() == clock.now + 4.0
    clock.now += 3.9
    sup.tick()
    assert host.launched[1].signals == ["TERM"]
    clock.now += 0.2
    sup.tick()
    assert host.launched[1].signals == ["TERM", "KILL"]
    sup.worker_exited(1, -9)
    assert sup.next_deadline() is None


def test_a_broken_edit_keeps_the_old_worker_and_the_fix_reloads_at_once(caplog):
    sup, host, _ = make()
    ready(sup, 1)
    sup.changes(CODE)
    sup.worker_failed(2, "app/routes.py:3: SyntaxError: invalid syntax")
    assert (
        "app/routes.py:3: SyntaxError: invalid syntax -- still serving the last good" in caplog.text
    )
    assert "(pid 1001)" in caplog.text
    sup.worker_exited(2, 1)
    assert list(host.launched) == [1, 2]  # no retry without a change
    assert host.launched[1].signals == []

    sup.changes(CODE)  # the fix
    assert list(host.launched) == [1, 2, 3]
    ready(sup, 3)
    assert [w.id for w in sup.serving()] == [3]
    assert host.launched[1].signals == ["TERM"]


def test_a_worker_dying_before_ready_without_a_report_counts_as_a_failure(caplog):
    sup, host, _ = make()
    ready(sup, 1)
    sup.changes(CODE)
    sup.worker_exited(2, -11)
    assert "the worker exited with code -11 before it was ready" in caplog.text
    assert list(host.launched) == [1, 2]


def test_a_broken_start_serves_an_error_page_until_a_fix(caplog):
    caplog.set_level(logging.INFO, "hotmode")
    sup, host, _ = make()
    error = "main.py:1: NameError: name 'x' is not defined"
    sup.worker_failed(1, error)
    sup.worker_exited(1, 1)
    assert "nothing is serving; waiting for a fix (requests get a 503 naming it)" in caplog.text
    assert list(host.launched) == [1, 2]
    assert host.launched[2].error == error
    ready(sup, 2)
    assert "answering 503 with the error on http://127.0.0.1:1 (pid 1002)" in caplog.text
    assert "serving main:app" not in caplog.text

    sup.changes(CODE)  # still broken, with another error: a new page replaces the old one
    assert host.launched[3].error is None
    sup.worker_failed(3, "main.py:2: SyntaxError")
    assert host.launched[4].error == "main.py:2: SyntaxError"
    ready(sup, 4)
    assert host.launched[2].signals == ["TERM"]

    sup.changes(CODE)  # the fix replaces the page like any swap
    ready(sup, 5)
    assert host.launched[5].error is None
    assert host.launched[4].signals == ["TERM"]
    assert "serving main:app on http://127.0.0.1:1 (pid 1005)" in caplog.text
    assert [w.id for w in sup.serving_good()] == [5]


def test_a_broken_edit_after_a_good_start_shows_no_error_page():
    sup, host, _ = make()
    ready(sup, 1)
    sup.changes(CODE)
    sup.worker_failed(2, "boom")
    assert all(w.error is None for w in host.launched.values())


def test_without_reload_a_failed_start_stops_with_code_1():
    sup, _host, _ = make(reload=False)
    sup.worker_failed(1, "main.py:1: ImportError")
    sup.worker_exited(1, 1)
    assert sup.done and sup.exit_code == 1


def test_a_newer_change_discards_a_worker_still_starting():
    sup, host, clock = make()
    ready(sup, 1)
    sup.changes(CODE)
    sup.changes([Change("code", "app/other.py")])
    assert host.launched[2].signals == ["TERM"]  # it may be accepting already: drain it
    assert list(host.launched) == [1, 2, 3]
    ready(sup, 2)  # too late: discarded
    assert [w.id for w in sup.serving()] == [1]
    ready(sup, 3)
    assert [w.id for w in sup.serving()] == [3]
    clock.now += 4.0
    sup.tick()
    assert host.launched[2].signals == ["TERM", "KILL"]


def test_a_crash_loop_backs_off_and_a_change_resets_it(caplog):
    sup, host, clock = make()
    ready(sup, 1)
    sup.worker_exited(1, 1)
    assert list(host.launched) == [1, 2]  # first death: restart at once
    ready(sup, 2)
    sup.worker_exited(2, 1)
    assert list(host.launched) == [1, 2]  # second: wait
    assert sup.next_deadline() == clock.now + 0.5
    assert "restarting in 0.5 s" in caplog.text
    clock.now += 0.5
    sup.tick()
    assert list(host.launched) == [1, 2, 3]
    ready(sup, 3)
    sup.worker_exited(3, 1)
    assert sup.next_deadline() == clock.now + 1.0
    sup.changes(CODE)  # a change: no more waiting
    assert list(host.launched) == [1, 2, 3, 4]


def test_backoff_delays_double_up_to_a_cap():
    assert [backoff_delay(n) for n in range(1, 8)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0]


def test_a_worker_that_served_long_enough_restarts_at_once():
    sup, host, clock = make()
    ready(sup, 1)
    sup.worker_exited(1, 1)
    ready(sup, 2)
    clock.now += 60
    sup.worker_exited(2, 1)
    assert list(host.launched) == [1, 2, 3]


def test_rolling_swap_one_slot_at_a_time():
    sup, host, _ = make(workers=2)
    assert list(host.launched) == [1, 2]  # at start both at once
    ready(sup, 1)
    ready(sup, 2)
    sup.changes(CODE)
    assert list(host.launched) == [1, 2, 3]
    ready(sup, 3)
    assert host.launched[1].signals == ["TERM"]
    assert list(host.launched) == [1, 2, 3, 4]
    assert host.launched[2].signals == []
    ready(sup, 4)
    assert host.launched[2].signals == ["TERM"]
    assert sorted(w.id for w in sup.serving()) == [3, 4]


def test_env_change_rereads_and_a_bad_env_file_keeps_the_old_env(caplog):
    sup, host, _ = make()
    ready(sup, 1)
    host.env = {"A": "2"}
    sup.changes([Change("env", ".env")])
    assert host.launched[2].env == {"A": "2"}
    ready(sup, 2)
    host.env_error = ".env:3: expected NAME=value"
    sup.changes([Change("env", ".env")])
    assert ".env:3: expected NAME=value; keeping the previous environment" in caplog.text
    assert list(host.launched) == [1, 2]


def test_dependency_change_installs_then_rebuilds_the_zygote_then_reloads():
    sup, host, _ = make(install=True)
    ready(sup, 1)
    sup.changes([Change("deps", "requirements/base.txt")])
    assert host.installs == 1 and list(host.launched) == [1]
    sup.changes(CODE)  # still waiting
    assert list(host.launched) == [1]
    sup.install_finished(0)
    assert host.rebuilds == 1 and list(host.launched) == [1]
    rebuilt(sup, host)
    assert list(host.launched) == [1, 2]


def test_dependency_change_without_install_or_zygote_just_reloads():
    sup, host, _ = make(zygote=False)
    ready(sup, 1)
    sup.changes([Change("deps", "pyproject.toml")])
    assert list(host.launched) == [1, 2]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_terminates_then_kills_past_the_bound(signum, code):
    sup, host, clock = make(workers=2)
    ready(sup, 1)
    sup.on_signal(signum)
    assert host.launched[1].signals == ["TERM"]
    assert host.launched[2].signals == ["KILL"]  # still starting: no need to wait for it
    sup.worker_exited(2, -9)
    assert not sup.done
    clock.now += 4.0
    sup.tick()
    assert host.launched[1].signals == ["TERM", "KILL"]
    sup.worker_exited(1, -9)
    assert sup.done and sup.exit_code == code
    assert list(host.launched) == [1, 2]  # no restart while stopping


def test_sighup_forces_a_reload_even_while_broken():
    sup, host, _ = make()
    ready(sup, 1)
    sup.changes(CODE)
    sup.worker_failed(2, "boom")
    sup.on_signal(signal.SIGHUP)
    assert list(host.launched) == [1, 2, 3]


def test_a_worker_never_ready_is_killed_and_reported(caplog):
    sup, host, clock = make()
    ready(sup, 1)
    sup.changes(CODE)
    clock.now += 20
    sup.tick()
    assert host.launched[2].signals == ["KILL"]
    assert "not ready after 20 s -- still serving" in caplog.text


def test_a_refreshed_zygote_moves_the_workers_unless_broken_or_busy():
    sup, host, _ = make()
    sup.refresh()  # nothing serves yet
    assert list(host.launched) == [1]
    ready(sup, 1)
    sup.refresh()
    assert list(host.launched) == [1, 2]
    sup.refresh()  # one is starting already
    assert list(host.launched) == [1, 2]
    ready(sup, 2)
    sup.changes(CODE)
    sup.worker_failed(3, "boom")
    sup.refresh()  # broken: a refresh would only fail again
    assert list(host.launched) == [1, 2, 3]


def test_a_worker_replaced_before_it_could_accept_is_never_told_to():
    sup, host, _ = make()
    ready(sup, 1)
    sup.changes(CODE)
    ready(sup, 2)  # waits for 1 to release
    sup.changes(CODE)
    ready(sup, 3)  # 2 is replaced already
    sup.worker_released(1)
    assert host.launched[2].served == 0  # it would accept while stopping
    sup.worker_released(2)
    assert host.launched[3].served == 1


def test_a_save_during_a_zygote_build_forks_from_the_new_zygote_once_ready(caplog):
    sup, host, clock = make()
    ready(sup, 1)
    host.building = True  # the first worker's modules arrived: a fuller zygote is being built
    sup.changes(CODE, at=clock.now)
    assert list(host.launched) == [1]  # not from the old zygote: it would import it all itself
    clock.now += 0.3
    rebuilt(sup, host)
    assert list(host.launched) == [1, 2]
    ready(sup, 2)
    assert [w.id for w in sup.serving()] == [2]


def test_a_zygote_that_never_comes_delays_a_reload_by_a_bound_only(caplog):
    sup, host, clock = make()
    ready(sup, 1)
    host.building = True
    sup.changes(CODE)
    assert sup.next_deadline() == clock.now + 20.0
    clock.now += 20.0
    sup.tick()
    assert list(host.launched) == [1, 2]
    assert "the zygote is not ready after 20 s; reloading without it" in caplog.text
    host.building = False
    sup.zygote_rebuilt()  # late: the workers move to it, as after any rebuild
    ready(sup, 2)
    assert list(host.launched) == [1, 2, 3]


def test_a_zygote_ready_while_the_first_worker_starts_takes_it_over_once_it_serves():
    sup, host, _ = make()
    rebuilt(sup, host)  # the first zygote: the first worker was spawned meanwhile
    assert list(host.launched) == [1]
    ready(sup, 1)
    assert list(host.launched) == [1, 2]  # moved onto the zygote (its memory is shared)
    ready(sup, 2)
    assert [w.id for w in sup.serving()] == [2]
    assert not sup.refresh_due


def test_without_a_zygote_to_fork_from_nothing_moves():
    sup, host, _ = make()
    ready(sup, 1)
    rebuilt(sup, host, forking=False)
    assert list(host.launched) == [1]


def test_without_handover_the_new_worker_accepts_at_once():
    host = FakeHost()
    sup = Supervisor(
        host, target="main:app", url="http://127.0.0.1:1", handover=False, clock=Clock()
    )  # fmt: skip
    sup.start()
    ready(sup, 1)
    sup.changes(CODE)
    ready(sup, 2)
    assert host.launched[1].signals == ["TERM"]
    assert host.launched[2].served == 1  # nothing to wait for: uvicorn's own shutdown


def test_a_failed_partial_import_is_retried_whole_and_only_that_failure_is_reported(caplog):
    caplog.set_level(logging.INFO, "hotmode")
    sup, host, _ = make()
    ready(sup, 1)
    sup.changes(CODE)
    sup.worker_failed(2, "models.py:3: InvalidRequestError: Table 'hero' is already defined", True)
    assert list(host.launched) == [1, 2, 3] and host.launched[3].full
    assert "the partial import failed" in caplog.text and "still serving" not in caplog.text
    sup.worker_failed(3, "models.py:3: SyntaxError")
    assert "models.py:3: SyntaxError -- still serving the last good version" in caplog.text
    assert list(host.launched) == [1, 2, 3]
    sup.changes(CODE)
    sup.worker_ready(4, Timing(12, 40, how="2 of 40 app modules re-imported"))
    assert "import 12 ms (2 of 40 app modules re-imported), ready 40 ms" in caplog.text
