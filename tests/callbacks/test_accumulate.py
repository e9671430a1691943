"""Accumulation without a Trainer: quota, NaN filter, the one reduce, what gets logged."""

from __future__ import annotations

import math
import re

import pytest
import torch

from lightning_cam.callbacks.accumulate import MetricAccumulator
from lightning_cam.callbacks.faults import Faults

CPU = torch.device("cpu")


def accumulator(metrics: tuple[str, ...] = ("complexity",), max_samples: int | None = None,
                on_error: str = "warn") -> MetricAccumulator:
    acc = MetricAccumulator(["m"], metrics, max_samples, Faults(on_error))  # type: ignore[arg-type]
    acc.start(CPU, world_size=1)
    return acc


def logged(acc: MetricAccumulator) -> dict[str, float]:
    out: dict[str, float] = {}
    acc.log(lambda key, value: out.update({key: float(value)}))
    return out


@pytest.mark.parametrize(("max_samples", "world", "quota"), [(None, 4, math.inf), (10, 3, 4), (8, 2, 4), (0, 1, 0)])
def test_quota_per_rank(max_samples: int | None, world: int, quota: float) -> None:
    acc = MetricAccumulator(["m"], ["complexity"], max_samples, Faults("warn"))
    acc.start(CPU, world_size=world)
    assert acc.quota == quota
    taken = [acc.take(3) for _ in range(3)]
    assert sum(taken) == min(9, quota) and acc.remaining == max(0.0, quota - sum(taken))


def test_non_finite_values_are_left_out_and_counted_separately_per_metric() -> None:
    acc = accumulator(("complexity", "adcc"))
    bad, per_metric = acc.update("m", {"complexity": torch.tensor([0.1, float("nan"), 0.3]),
                                       "adcc": torch.tensor([0.5, 0.5, float("inf")])})
    assert bad == 2 and per_metric.tolist() == [1, 1] and acc.counts == {("m", "complexity"): 2, ("m", "adcc"): 2}
    acc.reduce(lambda t: t, CPU)
    assert logged(acc) == pytest.approx({"cam/m/complexity": 0.2, "cam/m/adcc": 0.5})


def test_one_reduce_carries_counts_and_extra_and_decides_what_is_logged() -> None:
    acc = accumulator(("complexity", "adcc"))
    acc.update("m", {"complexity": torch.tensor([0.4])})  # adcc had no sample on this rank
    seen: list[torch.Tensor] = []

    def other_rank_adds_one_adcc(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.clone())
        return t + torch.tensor([0.0, 1.0, 2.0], dtype=t.dtype)

    assert acc.reduce(other_rank_adds_one_adcc, CPU, extra=[3]) == [5.0]
    assert len(seen) == 1 and seen[0].tolist() == [1.0, 0.0, 3.0] and seen[0].dtype == torch.float64
    # adcc has a sample on some rank, so every rank calls compute() (a collective) for it
    assert set(logged(acc)) == {"cam/m/complexity", "cam/m/adcc"}
    acc.reduce(lambda t: t, CPU)
    assert logged(acc) == {}  # reset after logging: nothing carried into the next epoch


def test_observing_a_record_adds_only_the_kept_samples_and_counts_non_finite_kept_values() -> None:
    from lightning_cam.methods import CAMResult
    from lightning_cam.record import BatchRecord, CAMBatch, MethodRecord

    acc = accumulator(("complexity",))
    values = {"complexity": torch.tensor([0.2, float("inf"), float("nan")])}  # row 2 was left out: NaN
    kept = torch.tensor([True, True, False])
    result = CAMResult(torch.rand(3, 4, 4), torch.rand(3, 2, 2), torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    parts = CAMBatch(torch.rand(3, 3, 4, 4))
    acc.observe(BatchRecord(parts, {"m": MethodRecord("m", parts, result, values, kept, torch.arange(3))}))
    assert acc.counts[("m", "complexity")] == 1 and acc.faults.counts["nonfinite"] == 1  # the inf, not the NaN
    acc.reduce(lambda t: t, CPU)
    assert logged(acc) == pytest.approx({"cam/m/complexity": 0.2})


@pytest.mark.parametrize("on_error", ["warn", "raise"])
def test_the_non_finite_fault_names_the_metrics_that_had_it(on_error: str) -> None:
    from lightning_cam.methods import CAMResult
    from lightning_cam.record import BatchRecord, CAMBatch, MethodRecord

    acc = MetricAccumulator(["m"], ["complexity", "adcc", "increase"], None, Faults(on_error))  # type: ignore[arg-type]
    acc.start(CPU, world_size=1)
    nan = float("nan")
    values = {"complexity": torch.tensor([0.2, 0.1, 0.3]), "adcc": torch.tensor([nan, 0.5, nan]),
              "increase": torch.tensor([1.0, float("inf"), 0.0])}
    result = CAMResult(torch.rand(3, 4, 4), torch.rand(3, 2, 2), torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    parts = CAMBatch(torch.rand(3, 3, 4, 4))
    record = BatchRecord(parts, {"m": MethodRecord("m", parts, result, values, torch.ones(3, dtype=torch.bool),
                                                   torch.arange(3))})
    expected = "m: 3 sample(s) with a non-finite metric value (adcc 2, increase 1)"
    if on_error == "raise":
        with pytest.raises(RuntimeError, match=re.escape(expected)):
            acc.observe(record)
        return
    acc.observe(record)
    assert acc.faults.counts["nonfinite"] == 1 and acc.faults.first == expected
