"""Accumulation without a Trainer: quota, NaN filter, the one reduce, what gets logged."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_cam.callbacks.accumulate import (
    MetricAccumulator,
    applicable_metrics,
    finite_samples,
)
from lightning_cam.callbacks.faults import Faults
from lightning_cam.methods import CAMResult, GradCAM
from lightning_cam.mixin import CAMBatch

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
    bad = acc.update("m", {"complexity": torch.tensor([0.1, float("nan"), 0.3]),
                           "adcc": torch.tensor([0.5, 0.5, float("inf")])})
    assert bad == 2 and acc.counts == {("m", "complexity"): 2, ("m", "adcc"): 2}
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


def test_nan_filter_helpers() -> None:
    maps, logits = torch.rand(3, 4, 4), torch.zeros(3, 2)
    maps[1, 0, 0] = float("nan")
    result = CAMResult(maps, maps[:, :2, :2], logits, torch.tensor([0, 1, 0]))
    keep = finite_samples(result)
    assert keep.tolist() == [True, False, True]
    parts = CAMBatch(torch.rand(3, 3, 4, 4), torch.tensor([5, 6, 7]), None, torch.zeros(3, 4))
    index = keep.nonzero().squeeze(1)
    kept, kept_parts = result.take(index), parts.take(index)
    assert kept.targets.tolist() == [0, 0] and kept_parts.labels.tolist() == [5, 7] and kept_parts.masks is None
    assert kept_parts.boxes.shape == (2, 4)
    assert applicable_metrics(("adcc", "iou"), kept_parts) == (("adcc", "iou"), ())  # boxes count as ground truth
    cut = parts.take(torch.arange(2))
    assert cut.images.shape[0] == 2 and cut.images.data_ptr() != parts.images.data_ptr()


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)))


class NaNFirst(GradCAM):
    def explain(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> CAMResult:
        r = super().explain(images, targets)
        maps = r.maps.clone()
        maps[0] = float("nan")
        return CAMResult(maps, r.low_res, r.logits, r.targets)


def test_measure_a_real_method_skips_bad_samples_and_reports_missing_masks() -> None:
    torch.manual_seed(0)
    acc = accumulator(("complexity", "iou"))
    parts = CAMBatch(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))
    skipped = acc.measure("m", NaNFirst(Net(), target_layer="conv"), parts, None)
    assert skipped == ("iou",) and acc.counts[("m", "complexity")] == 3 and acc.counts[("m", "iou")] == 0
    assert acc.faults.counts["nonfinite"] == 1 and "1 sample(s) with a non-finite map" in str(acc.faults.first)
    strict = accumulator(("complexity",), on_error="raise")
    with pytest.raises(RuntimeError, match="CAMCallback: m: 1 sample"):
        strict.measure("m", NaNFirst(Net(), target_layer="conv"), parts, None)


def test_a_scored_batch_leaves_nothing_of_its_maps_behind_until_the_epoch_ends() -> None:
    """The fault tallies of a batch wait for the epoch's end (no host sync per batch), but they must not hold the
    batch's maps: on a GPU, with ``max_samples=None``, that memory would grow with every batch of the epoch."""
    import gc
    import weakref

    torch.manual_seed(0)
    acc = accumulator(("complexity",))
    net = Net()
    with torch.no_grad():
        net.conv.weight.zero_()  # every map blank: the blank fault's message is pending, formatted at the end
        net.conv.bias.zero_()
    cam = GradCAM(net, target_layer="conv")
    parts = CAMBatch(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))
    result = cam.explain(parts.images)
    kept = weakref.ref(result.maps)
    acc.measure("m", cam, parts, None, result)
    del result
    gc.collect()
    assert kept() is None  # no pending message holds the maps
    assert acc.faults.counts["blank"] == 1 and "blank (constant) map" in str(acc.faults.first)
