"""graphevent.utils.timing: the fastest of several calls, on a clock the test drives."""

from __future__ import annotations

from graphevent.utils import timing


def test_best_of_is_the_fastest_timed_call_after_an_untimed_warm_up(monkeypatch):
    now = [0.0]
    durations = iter([9.0, 5.0, 2.0, 3.0])  # the warm-up is the slowest and is not counted
    calls = []

    def fn():
        now[0] += next(durations)

    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    assert timing.best_of(fn, 3, warm_up=True, sync=lambda: calls.append(now[0])) == 2.0
    assert len(calls) == 6  # before and after each timed call


def test_best_of_without_warm_up_times_every_call(monkeypatch):
    now = [0.0]
    durations = iter([1.5, 4.0])

    def fn():
        now[0] += next(durations)

    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    assert timing.best_of(fn, 2) == 1.5
