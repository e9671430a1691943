"""scoring.py: the stateless step (explain, filter, evaluate) and its record, without a Trainer."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from lightning_cam.callbacks.accumulate import MetricAccumulator
from lightning_cam.callbacks.faults import Faults
from lightning_cam.methods import CAMResult, GradCAM
from lightning_cam.record import BatchRecord, CAMBatch
from lightning_cam.scoring import applicable_metrics, finite_samples, score_batch, score_method

CPU = torch.device("cpu")


def accumulator(metrics: tuple[str, ...], on_error: str = "warn") -> MetricAccumulator:
    acc = MetricAccumulator(["m"], metrics, None, Faults(on_error))  # type: ignore[arg-type]
    acc.start(CPU, world_size=1)
    return acc


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
    scored = score_method("m", NaNFirst(Net(), target_layer="conv"), parts, None, ("complexity", "iou"), acc.faults)
    assert scored is not None and scored.skipped == ("iou",) and scored.kept.tolist() == [False, True, True, True]
    assert scored.index.tolist() == [0, 1, 2, 3]  # the batch's order: no copy of the images per method
    assert scored.parts is parts
    acc.observe(BatchRecord(parts, {"m": scored}))
    assert acc.counts[("m", "complexity")] == 3 and acc.counts[("m", "iou")] == 0
    assert acc.faults.counts["nonfinite"] == 1 and "1 sample(s) with a non-finite map" in str(acc.faults.first)
    strict = Faults("raise")
    with pytest.raises(RuntimeError, match="CAMCallback: m: 1 sample"):
        score_method("m", NaNFirst(Net(), target_layer="conv"), parts, None, ("complexity",), strict)


def test_a_scored_batch_leaves_nothing_of_its_maps_behind_until_the_epoch_ends() -> None:
    """The fault tallies of a batch wait for the epoch's end (no host sync per batch), but they must not hold the
    batch's maps: on a GPU, with ``max_samples=None``, that memory would grow with every batch of the epoch."""
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
    record = BatchRecord(parts, {"m": score_method("m", cam, parts, None, ("complexity",), acc.faults, result=result)})
    acc.observe(record)
    del result, record
    gc.collect()
    assert kept() is None  # no pending message holds the maps
    assert acc.faults.counts["blank"] == 1 and "blank (constant) map" in str(acc.faults.first)


def test_score_batch_gives_every_method_one_record_from_one_shared_pass() -> None:
    torch.manual_seed(0)
    net = Net().eval()
    calls: list[int] = []
    net.conv.register_forward_hook(lambda *_: calls.append(1))
    cams = {"gradcam": GradCAM(net, "conv"), "bad": NaNFirst(net, target_layer="conv")}
    parts = CAMBatch(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))
    faults = Faults("warn")
    record = score_batch(cams, parts, None, ("complexity",), faults)
    assert set(record.methods) == {"gradcam", "bad"} and record.shared is not None and record.parts is parts
    alone = GradCAM(net, "conv").explain(parts.images)
    torch.testing.assert_close(record.methods["gradcam"].result.maps, alone.maps, atol=1e-5, rtol=1e-4)
    assert record.methods["bad"].kept.sum() == 3 and faults.counts["nonfinite"] == 1
