"""utilities/stopwatch.py: exclusive seconds per part, charged to the running stopwatch only."""

from __future__ import annotations

import time

from lightning_cam.utilities.stopwatch import Stopwatch, timed


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_parts_are_exclusive_and_add_up_to_the_running_time() -> None:
    watch = Stopwatch()
    start = time.perf_counter()
    with watch.running("hook"):
        _busy(0.01)
        with timed("outer"):
            _busy(0.01)
            with timed("inner"):
                _busy(0.02)
        with timed("inner"):  # opened again: summed, counted
            _busy(0.01)
    wall = time.perf_counter() - start
    assert set(watch.seconds) == {"hook", "outer", "inner"}
    assert watch.calls == {"hook": 1, "outer": 1, "inner": 2}
    # exclusive: the inner part's time is not also charged to the outer one (no timing bound: only orderings
    # that hold however loaded the machine is, since each part's busy-wait lasts at least its own time)
    assert watch.seconds["inner"] >= 0.03 and watch.seconds["outer"] >= 0.01 and watch.seconds["hook"] >= 0.01
    assert watch.total <= wall and abs(watch.total - sum(watch.seconds.values())) < 1e-12
    watch.reset()
    assert watch.seconds == {} and watch.calls == {}


def test_nothing_is_recorded_without_a_running_stopwatch() -> None:
    watch = Stopwatch()
    with timed("orphan"):
        pass
    with watch.running():
        pass
    with timed("after"):  # the stopwatch stopped running
        pass
    assert set(watch.seconds) == {"other"}


def test_a_synchronizing_stopwatch_calls_its_sync_at_every_boundary() -> None:
    watch = Stopwatch(sync=True)
    calls: list[int] = []
    watch.sync = lambda: calls.append(1)
    with watch.running(), timed("part"):
        pass
    assert len(calls) == 4  # in and out of "other" and of "part"
