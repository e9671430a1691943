"""Faults: the on_error policy, the counts, the report text, warn-once."""

from __future__ import annotations

import warnings

import pytest

from lightning_cam.callbacks.faults import FAULT_KINDS, Faults, WarnOnce, fault_report


def test_warn_counts_by_kind_and_keeps_the_first_message() -> None:
    faults = Faults("warn")
    faults.record("nonfinite", "first")
    faults.record("error", "second", RuntimeError("boom"))
    faults.record("nonfinite", "third")
    assert faults.counts == {"error": 1, "nonfinite": 2, "blank": 0, "logger": 0}
    assert faults.first == "first" and faults.total == 3 and faults.tally() == [1, 2, 0, 0]
    faults.reset()
    assert faults.total == 0 and faults.first is None


def test_raise_reraises_the_error_or_raises_a_runtime_error_naming_the_detail() -> None:
    faults = Faults("raise")
    with pytest.raises(ValueError, match="the original"):
        faults.record("error", "detail", ValueError("the original"))
    with pytest.raises(RuntimeError, match="CAMCallback: 2 sample"):
        faults.record("nonfinite", "2 sample(s) with a non-finite map")
    assert faults.total == 0  # nothing counted under raise


def test_bad_policy_or_kind_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"`on_error` must be 'warn' \(count, .*\) or 'raise', got 'ignore'"):
        Faults("ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown fault kind 'oops'.*'error', 'nonfinite', 'blank', 'logger'"):
        Faults("warn").record("oops", "x")  # type: ignore[arg-type]


def test_totals_from_other_ranks_replace_the_counts_but_not_the_first_message() -> None:
    faults = Faults("warn")
    faults.record("error", "on rank 0")
    faults.set_totals(dict(zip(FAULT_KINDS, [3.0, 1.0, 0.0, 0.0])))
    assert faults.counts == {"error": 3, "nonfinite": 1, "blank": 0, "logger": 0} and faults.first == "on rank 0"


def test_report_lists_only_the_kinds_that_happened() -> None:
    text = fault_report({"error": 0, "nonfinite": 4, "logger": 1}, None, "in CAM work at epoch 2")
    assert text == (
        "CAMCallback: 5 fault(s) in CAM work at epoch 2 (4 nonfinite, 1 logger). The affected samples/images "
        "were skipped; pass on_error='raise' to stop at the first one."
    )
    assert Faults("warn").report("anywhere") is None


def test_warn_once_per_key() -> None:
    once = WarnOnce()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert once.warn("a", "message a") is True
        assert once.warn("a", "message a again") is False
        assert once.warn("b", "message b") is True
    assert [str(w.message) for w in record] == ["message a", "message b"]


def test_a_message_ending_in_a_period_gets_no_second_one() -> None:
    from lightning_cam.callbacks.faults import fault_report

    report = fault_report({"blank": 1}, "GradCAM: blank (constant) map, samples [0]: no explanation.", "at epoch 0",
                          [(0, "blank", "GradCAM: blank (constant) map, samples [0]: no explanation.")])
    assert report is not None and ".." not in report and "no explanation. The affected" in report
