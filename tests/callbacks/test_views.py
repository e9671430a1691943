"""The callback's views (issue 12): worst-case gallery, drift, method agreement, per-class curves, the
custom-scalars layout and the summary figure; each part on its own, then read back from TensorBoard."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_cam import CAMCallback
from lightning_cam.callbacks.agreement import MethodAgreement
from lightning_cam.callbacks.drift import probe_drift
from lightning_cam.callbacks.gallery import WorstCases
from lightning_cam.callbacks.per_class import PerClassMetrics
from lightning_cam.callbacks.probe import History
from lightning_cam.callbacks.summary import Curves, summary_figure
from lightning_cam.methods.result import CAMResult
from lightning_cam.mixin import CAMBatch
from tests.callbacks.test_cam import make_data, make_model, make_trainer


def _batch(n: int, seed: int) -> tuple[CAMBatch, CAMResult, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 12, 12, generator=g)
    maps = torch.rand(n, 12, 12, generator=g)
    logits = torch.randn(n, 4, generator=g)
    labels = torch.randint(0, 4, (n,), generator=g)
    values = {"pointing_game": (torch.rand(n, generator=g) > 0.5).float(),  # many ties: content breaks them
              "complexity": torch.rand(n, generator=g)}
    return CAMBatch(images, labels), CAMResult(maps, maps, logits, logits.argmax(1)), values


def _gallery(batches: list[tuple[CAMBatch, CAMResult, dict[str, torch.Tensor]]], k: int) -> WorstCases:
    wc = WorstCases(["gradcam"], k=k, tile_size=16)
    wc.start(torch.device("cpu"), denormalize=lambda x: x)
    for parts, result, values in batches:
        wc.update("gradcam", parts, result, values)
    return wc


def test_gallery_of_two_ranks_equals_one_rank_over_the_same_samples() -> None:
    batches = [_batch(6, s) for s in range(4)]
    (single,) = _gallery(batches, k=5).gather(lambda t: t)
    rank0, rank1 = _gallery(batches[0::2], k=5), _gallery(batches[1::2], k=5)
    # what all_gather does: every rank's packed slots, concatenated
    packed: list[torch.Tensor] = []
    rank1.gather(lambda t: packed.append(t) or t)
    (both,) = rank0.gather(lambda t: torch.cat([t, packed[0]]))
    assert [s.value for s in single[1]] == [s.value for s in both[1]] == [0.0] * 5
    assert all(torch.equal(a.image, b.image) and torch.equal(a.cam, b.cam) for a, b in zip(single[1], both[1]))
    # the worst are the global worst: no pointing-game hit in the gallery while misses remain elsewhere
    misses = sum(int((v["pointing_game"] == 0).sum()) for _, _, v in batches)
    assert misses >= 5


def test_gallery_falls_back_to_average_drop_and_skips_missing_values() -> None:
    parts, result, _ = _batch(4, 0)
    wc = WorstCases(["gradcam"], k=3, tile_size=16)
    wc.start(torch.device("cpu"), denormalize=lambda x: x)
    wc.update("gradcam", parts, result, {"average_drop": torch.tensor([10.0, float("nan"), 90.0, 50.0])})
    ((_, samples),) = wc.gather(lambda t: t)
    assert [(s.score_name, s.value) for s in samples] == [("drop %", 90.0), ("drop %", 50.0), ("drop %", 10.0)]


def test_agreement_and_per_class_states_add_up_like_one_process() -> None:
    x, y = torch.rand(6, 8, 8), torch.rand(6, 8, 8)
    whole, half0, half1 = MethodAgreement(["a", "b"]), MethodAgreement(["a", "b"]), MethodAgreement(["a", "b"])
    for metric, rows in ((whole, slice(0, 6)), (half0, slice(0, 3)), (half1, slice(3, 6))):
        metric.add("a", x[rows])
        metric.add("b", y[rows])
        metric.update()
    half0.total += half1.total  # what the sum-reduce of the states does across ranks
    half0.count += half1.count
    assert half0.values()["cam/agreement/a__b"] == pytest.approx(float(whole.values()["cam/agreement/a__b"]))
    # a sample one method left out (index) drops out of the pair
    left = MethodAgreement(["a", "b"])
    left.add("a", x[[0, 2]], index=torch.tensor([0, 2]), batch_size=3)
    left.add("b", y[:3])
    left.update()
    assert int(left.count[0]) == 2

    pc = PerClassMetrics(["complexity"], ["circle", "square/big"])
    pc.update({"complexity": torch.tensor([0.2, 0.4, 0.9])}, torch.tensor([0, 0, 1]))
    values = {k: round(float(v), 4) for k, v in pc.values("gradcam").items()}
    assert values == {"cam/gradcam/complexity/circle": 0.3, "cam/gradcam/complexity/square_big": 0.9}


def test_drift_and_summary_figure() -> None:
    h = History()
    maps = torch.rand(4, 16, 16)
    h.add("gradcam", 0, maps, torch.zeros(4))
    h.add("gradcam", 2, maps.flip(-1), torch.zeros(4))
    assert probe_drift(h, "gradcam", 0) is None
    assert 0.5 < probe_drift(h, "gradcam", 2) < 1.5  # type: ignore[operator]
    curves = Curves()
    for key in ("cam/gradcam/adcc", "cam/gradcam/drift", "cam/agreement/a__b", "cam/gradcam/iou/circle"):
        curves.add(key, 0, 0.5)
    image = summary_figure(curves)
    assert image is not None and image.shape[0] == 3 and image.shape[2] == 3 * 400  # 4 charts, 3 per row


def test_switches_are_checked() -> None:
    with pytest.raises(ValueError, match="num_worst"):
        CAMCallback(num_worst=-1)
    with pytest.raises(ValueError, match="per_class"):
        CAMCallback(per_class="yes")  # type: ignore[arg-type]


def _events(log_dir: str) -> EventAccumulator:
    acc = EventAccumulator(log_dir, size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_views_read_back_from_tensorboard(tmp_path: Any) -> None:
    dm = make_data()
    model = make_model(dm)
    metrics = ("complexity", "pointing_game", "energy_pointing_game")
    cb = CAMCallback(methods=("gradcam", "eigencam"), metrics=metrics, num_images=4, num_worst=3, per_class=True,
                     on_error="raise", tile_size=32)
    trainer = make_trainer(tmp_path, [cb], max_epochs=2)
    trainer.fit(model, dm)
    log_dir = trainer.logger.log_dir  # type: ignore[union-attr]
    acc = _events(log_dir)
    tags = acc.Tags()
    for method in ("gradcam", "eigencam"):
        worst = acc.Images(f"cam/{method}/worst")
        assert [w.step for w in worst] == [0, 1] and all(w.width > 3 * 32 for w in worst)
        assert len(acc.Scalars(f"cam/{method}/drift")) == 1  # needs a previous epoch: the 2nd one only
        for metric in metrics:
            per_class = [t for t in tags["scalars"] if t.startswith(f"cam/{method}/{metric}/")]
            assert {t.rsplit("/", 1)[1] for t in per_class} <= set(dm.class_names) and per_class
    (agree,) = [t for t in tags["scalars"] if t.startswith("cam/agreement/")]
    assert agree == "cam/agreement/gradcam__eigencam" and len(acc.Scalars(agree)) == 2
    assert -1.0 <= acc.Scalars(agree)[0].value <= 1.0
    assert "custom_scalars__config__" in tags["tensors"]
    assert [s.step for s in acc.Images("cam/summary")] == [1]
    assert os.path.exists(os.path.join(log_dir, "cam_summary.png"))
    assert set(cb.state_dict()["views"]["curves"]) >= {"cam/gradcam/drift", agree, "cam/gradcam/complexity"}


def test_views_off(tmp_path: Any) -> None:
    dm = make_data()
    cb = CAMCallback(methods=("gradcam", "eigencam"), metrics=("complexity",), num_images=2, num_worst=0,
                     log_drift=False, log_agreement=False, log_summary=False, on_error="raise")
    trainer = make_trainer(tmp_path, [cb], max_epochs=2)
    trainer.fit(make_model(dm), dm)
    tags = _events(trainer.logger.log_dir).Tags()  # type: ignore[union-attr]
    assert not [t for t in tags["images"] + tags["scalars"] if "worst" in t or "drift" in t or "agreement" in t]
    assert "cam/summary" not in tags["images"] and "custom_scalars__config__" not in tags["tensors"]
