"""Progress lines: quiet, always or after a delay; rate-limited."""

from __future__ import annotations

import logging

import pytest

from lightning_cam.callbacks.progress import Progress


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("[lightning_cam]")]


def test_enabled_true_prints_every_step_and_the_summary(caplog: pytest.LogCaptureFixture) -> None:
    p = Progress(enabled=True)
    with caplog.at_level(logging.INFO):
        p.step("one")
        p.step("two")
        p.done("all")
    got = lines(caplog)
    assert len(got) == 3 and got[0].startswith("[lightning_cam] one (") and got[2].startswith("[lightning_cam] all in ")


def test_enabled_false_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    p = Progress(enabled=False, after=0.0, interval=0.0)
    with caplog.at_level(logging.INFO):
        p.step("one")
        p.done("all")
    assert lines(caplog) == []


def test_auto_waits_for_slow_work_then_rate_limits(caplog: pytest.LogCaptureFixture) -> None:
    p = Progress(enabled=None, after=5.0, interval=30.0)
    with caplog.at_level(logging.INFO):
        p.step("fast")  # under 5 s: quiet
        p.start -= 10.0  # the work has now taken 10 s
        p.last = p.start
        p.step("slow")  # over 5 s and 10 s since the last line... but under the 30 s interval
        p.last -= 31.0
        p.step("slower")
        p.done("all")
    assert [m.split(" (")[0].split(" in ")[0] for m in lines(caplog)] == [
        "[lightning_cam] slower", "[lightning_cam] all"]


def test_auto_reports_the_time_of_every_run_even_a_short_one(caplog: pytest.LogCaptureFixture) -> None:
    """The summary line of each epoch's CAM work appears at every CAM run, not only after the slow ones."""
    p = Progress(enabled=None, after=3600.0)
    with caplog.at_level(logging.INFO):
        for epoch in range(3):
            p.restart()
            p.step("working")  # a short run: no line during it
            p.done(f"CAM work of epoch {epoch}")
    assert [m.split(" in ")[0] for m in lines(caplog)] == [f"[lightning_cam] CAM work of epoch {e}" for e in range(3)]
