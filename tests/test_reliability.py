"""The catalogue of bad inputs and faults met by CAMCallback: each gets a clear error (configuration at
``setup``, shapes at the first call) or, with ``on_error="warn"``, one warning per epoch with its count
while training completes. Library-level checks of the same inputs live in tests/methods/test_engine.py,
tests/methods/test_scorecam.py, tests/test_evaluate.py and tests/test_mixin.py; the DDP fault test in
tests/test_e2e.py.

A tiny model (two 8-channel convs, GAP -> Linear, 3 classes) on 16x16 random images keeps every run short.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_cam import CAMBatch, CAMCallback, CAMMixin
from lightning_cam.methods import GradCAM, ScoreCAM
from lightning_cam.methods.result import CAMResult
from tests.helpers import FailingTB

NUM_CLASSES = 3
METRICS = ("average_drop", "coherency", "complexity")


class Pair(nn.Module):
    """A layer whose output is a tuple, not a tensor."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


class Tiny(CAMMixin, pl.LightningModule):
    """features -> head (GAP -> Linear, or max pooling -> Linear with ``head="max"``)."""

    def __init__(self, head: str = "gap", target: str | None = None, pair: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.pair = Pair() if pair else nn.Identity()
        pool = nn.AdaptiveAvgPool2d(1) if head == "gap" else nn.AdaptiveMaxPool2d(1)
        self.head = nn.Sequential(pool, nn.Flatten(), nn.Linear(8, NUM_CLASSES))
        self.cam_target_layer = target
        self.train_steps = 0
        self.val_batches = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pair(self.features(x))
        if isinstance(h, tuple):
            h = h[0]
        return self.head(h)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.train_steps += 1
        x, y = batch
        return nn.functional.cross_entropy(self(x), y.clamp(max=NUM_CLASSES - 1))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.val_batches += 1
        self(batch[0] if isinstance(batch, (tuple, list)) else batch["pixels"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loader(n: int = 16, batch_size: int = 8, label: int | None = None, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 16, 16, generator=g)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=g) if label is None else torch.full((n,), label)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def trainer(tmp_path: Any, cb: CAMCallback, logger: Any = False, epochs: int = 1) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, limit_train_batches=1, callbacks=[cb], logger=logger,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        num_sanity_val_steps=0, default_root_dir=str(tmp_path),
    )


def fit(tmp_path: Any, model: Tiny, cb: CAMCallback, epochs: int = 1, logger: Any = False,
        val: DataLoader | None = None) -> tuple[pl.Trainer, list[str]]:
    """Fit and return the trainer and the messages of every warning raised."""
    t = trainer(tmp_path, cb, logger, epochs)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        t.fit(model, loader(), val if val is not None else loader(seed=1))
    return t, [str(w.message) for w in record]


def fault_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if "fault(s) in CAM work" in m]


def completed(t: pl.Trainer, model: Tiny, epochs: int = 1) -> bool:
    return t.current_epoch == epochs and model.train_steps == epochs and model.val_batches == 2 * epochs


# ----------------------------------------------------------------------------- configuration: at setup
@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("feature.2", r"unknown target_layer 'feature.2' in Tiny. Closest module names: \['features.2'"),
        ("0", r"target_layer '0' is ambiguous in Tiny: it matches \['features.0', 'head.0'\].*full dotted name"),
    ],
)
def test_unknown_or_ambiguous_layer_fails_at_setup(tmp_path: Any, target: str, match: str) -> None:
    model = Tiny(target=target)
    t = trainer(tmp_path, CAMCallback(methods=("gradcam",)))
    with pytest.raises(ValueError, match=match):
        t.fit(model, loader(), loader(seed=1))
    assert model.train_steps == 0 and model.val_batches == 0  # raised before any training or validation


def test_cam_on_a_model_without_linear_fails_at_setup(tmp_path: Any) -> None:
    model = Tiny()
    model.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # 8 "logits", no nn.Linear
    with pytest.raises(ValueError, match="CAM needs a global-average-pooling -> nn.Linear.*use GradCAM"):
        trainer(tmp_path, CAMCallback(methods=("cam",))).validate(model, loader(), verbose=False)
    assert model.val_batches == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"methods": ("gradkam",)}, ValueError, r"unknown CAM method 'gradkam'.*gradcam"),
        ({"metric_kwargs": {"steps": 0}}, ValueError, r"`steps` must be an integer >= 1, got 0"),
        ({"metric_kwargs": {"threshold": 1.5}}, ValueError, r"`threshold` must lie in \(0, 1\)"),
        ({"metric_kwargs": {"stpes": 4}}, TypeError, r"unknown option\(s\) \['stpes'\].*valid options"),
        ({"alpha": 2.0}, ValueError, r"`alpha`.*\[0, 1\], got 2.0"),
        ({"max_samples": -1}, ValueError, "`max_samples` must be None"),
        ({"num_images": -2}, ValueError, "`num_images` must be an int >= 0"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        CAMCallback(**kwargs)


# ----------------------------------------------------------------------------- shapes: at the first call
def test_cam_on_a_non_gap_head_is_reported_and_training_completes(tmp_path: Any) -> None:
    model = Tiny(head="max")
    t, messages = fit(tmp_path, model, CAMCallback(methods=("cam", "gradcam"), metrics=METRICS, num_images=0))
    (msg,) = fault_warnings(messages)
    assert "2 fault(s)" in msg and "2 error" in msg and "no GAP->Linear head" in msg and "Use GradCAM" in msg
    assert completed(t, model)
    assert "cam/gradcam/complexity" in t.callback_metrics and "cam/cam/complexity" not in t.callback_metrics
    with pytest.raises(ValueError, match="no GAP->Linear head"):  # on_error="raise": at the first batch
        trainer(tmp_path, CAMCallback(methods=("cam",), on_error="raise")).validate(model, loader(), verbose=False)


def test_layer_output_not_a_tensor_is_reported_and_training_completes(tmp_path: Any) -> None:
    model = Tiny(target="pair", pair=True)
    t, messages = fit(tmp_path, model, CAMCallback(metrics=METRICS, num_images=0))
    (msg,) = fault_warnings(messages)
    assert "2 error" in msg and "target layer 'pair' (Pair) returned tuple, not a tensor" in msg
    assert completed(t, model)
    with pytest.raises(TypeError, match="returned tuple, not a tensor"):
        trainer(tmp_path, CAMCallback(on_error="raise")).validate(model, loader(), verbose=False)


class Unpack(Tiny):
    """``cam_inputs`` transformed by ``fn`` (to inject bad images, targets or batches)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def cam_inputs(self, batch: Any) -> CAMBatch:
        return super().cam_inputs(self.fn(batch))


@pytest.mark.parametrize(
    ("fn", "target", "match"),
    [
        (lambda b: {"pixels": b[0]}, "pred", r"cannot find images in a batch dict with keys \['pixels'\]"),
        (lambda b: "not a batch", "pred", "cannot unpack a batch of type str.*override `cam_inputs"),
        (lambda b: (b[0][0], b[1]), "pred", r"images must be 4-D \(B, C, H, W\), got shape \(3, 16, 16\)"),
        (lambda b: ((b[0] * 50).to(torch.uint8), b[1]), "pred", r"floating-point tensor, got dtype torch.uint8"),
        (lambda b: (b[0], b[1] + NUM_CLASSES), "label", r"targets out of range for a model with 3 classes"),
        (lambda b: (b[0], b[1][:-1]), "label", r"targets has 7 entries but the batch has 8 images"),
    ],
    ids=["dict-without-images", "unknown-type", "rank-3-images", "uint8-images", "label-out-of-range",
         "labels-wrong-length"],
)
def test_bad_batches_are_reported_and_training_completes(
    tmp_path: Any, fn: Callable[[Any], Any], target: str, match: str
) -> None:
    model = Unpack(fn)
    cb = CAMCallback(metrics=METRICS, num_images=2, target=target)  # type: ignore[arg-type]
    t, messages = fit(tmp_path, model, cb)
    (msg,) = fault_warnings(messages)
    assert "error" in msg
    assert re.search(match, msg), msg
    assert completed(t, model)
    strict = CAMCallback(metrics=METRICS, target=target, on_error="raise")  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError), match=match):
        trainer(tmp_path, strict).validate(model, loader(), verbose=False)


# ----------------------------------------------------------------------------- probe set larger than the data
def test_more_probe_images_than_the_validation_set_warns_and_uses_what_exists(tmp_path: Any) -> None:
    cb = CAMCallback(metrics=METRICS, num_images=40, on_error="raise")
    model = Tiny()
    t, messages = fit(tmp_path, model, cb, epochs=2, logger=TensorBoardLogger(str(tmp_path), name="tb"))
    short = [m for m in messages if "num_images=40" in m]
    assert short == [
        "CAMCallback(num_images=40) but rank zero's validation data held only 16 image(s); the grids show those "
        "16. Lower `num_images` (or raise `limit_val_batches`) to silence this warning."
    ]  # once, not every epoch
    assert cb.probe.size == 16 and cb.history.maps["gradcam"][1].shape[0] == 16
    assert completed(t, model, 2)


# ----------------------------------------------------------------------------- faults: counted, training goes on
class NaNLogits(GradCAM):
    """The first sample of every call gets an infinite logit (its map is fine)."""

    name = "nanlogits"

    def explain(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> CAMResult:
        r = super().explain(images, targets)
        logits = r.logits.clone()
        logits[0, 0] = float("inf")
        return CAMResult(r.maps, r.low_res, logits, r.targets)


class Broken(GradCAM):
    name = "broken"

    def explain(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> CAMResult:
        raise RuntimeError("boom in explain")


def test_non_finite_logits_are_counted_and_left_out(tmp_path: Any) -> None:
    model = Tiny()
    t, messages = fit(tmp_path, model, CAMCallback(methods=(NaNLogits,), metrics=METRICS, num_images=2))
    (msg,) = fault_warnings(messages)
    # per batch: the bad logit of sample 0 (left out of the metrics; the second pass on x * map, which NaNLogits
    # also spoils at its sample 0, spoils that same sample: the batch keeps its order); 2 batches + the probe call
    assert "3 fault(s)" in msg and "3 nonfinite" in msg and "non-finite map or logit" in msg
    assert completed(t, model)
    for metric in METRICS:
        assert torch.isfinite(t.callback_metrics[f"cam/nanlogits/{metric}"])
    with pytest.raises(RuntimeError, match="non-finite map or logit"):
        trainer(tmp_path, CAMCallback(methods=(NaNLogits,), on_error="raise")).validate(model, loader(), verbose=False)


def test_scorecam_oom_retries_with_smaller_chunks(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    original = ScoreCAM.forward_logits

    def limited(self: ScoreCAM, x: torch.Tensor, extra: object = None) -> torch.Tensor:
        sizes.append(int(x.shape[0]))
        if x.shape[0] > 8:
            raise torch.OutOfMemoryError("simulated: more than 8 masked images")
        return original(self, x, extra)

    monkeypatch.setattr(ScoreCAM, "forward_logits", limited)
    model = Tiny()
    cb = CAMCallback(methods=("scorecam",), metrics=METRICS, num_images=2, on_error="raise")  # no fault allowed
    t, messages = fit(tmp_path, model, cb)
    assert not fault_warnings(messages) and completed(t, model)
    failed = [i for i, s in enumerate(sizes) if s > 8]
    assert failed and sizes[-1] <= 8
    assert all(sizes[i + 1] <= sizes[i] // 2 for i in failed)  # every simulated OOM halves the next chunk
    for metric in METRICS:
        assert torch.isfinite(t.callback_metrics[f"cam/scorecam/{metric}"])


def test_scorecam_oom_at_chunk_one_is_skipped_and_counted(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []

    def never(self: ScoreCAM, x: torch.Tensor, extra: object = None) -> torch.Tensor:
        sizes.append(int(x.shape[0]))
        raise torch.OutOfMemoryError("simulated: nothing fits")

    monkeypatch.setattr(ScoreCAM, "forward_logits", never)
    model = Tiny()
    t, messages = fit(tmp_path, model, CAMCallback(methods=("scorecam", "gradcam"), metrics=METRICS, num_images=2))
    (msg,) = fault_warnings(messages)
    assert "3 fault(s)" in msg and "3 error" in msg and "scorecam raised OutOfMemoryError: simulated" in msg
    assert 1 in sizes  # it went down to one masked image before giving up (or failed on the one zero image)
    assert completed(t, model)
    assert "cam/gradcam/complexity" in t.callback_metrics and "cam/scorecam/complexity" not in t.callback_metrics


def test_every_fault_kind_reported_once_per_epoch_with_its_count(tmp_path: Any) -> None:
    model = Tiny()
    cb = CAMCallback(methods=(Broken, NaNLogits, "gradcam"), metrics=METRICS, num_images=2,
                     views=("drift", "agreement", "summary"))
    t, messages = fit(tmp_path, model, cb, epochs=2, logger=FailingTB(str(tmp_path), name="tb"))
    msgs = fault_warnings(messages)
    # per epoch: broken 2 batches + probe = 3 errors; nanlogits 2 batches + probe = 3 nonfinite (see above); the
    # probe grids of the two methods that produced one could not be written = 2 logger faults, counted in the next
    # run's report (images are written in the background), the last run's in the report at teardown
    # the first fault of each kind, each with its text (issue 18: every fault's message reaches the user)
    assert len(msgs) == 2
    for e, msg in enumerate(msgs):
        logger = ", 2 logger" if e else ""
        assert msg.startswith(f"CAMCallback: {6 + 2 * e} fault(s) in CAM work at epoch {e} (3 error, 3 nonfinite"
                              f"{logger}); first error on rank 0: broken raised RuntimeError: boom in explain; first "
                              "nonfinite on rank 0: nanlogits: "), msg
        assert ("; first logger on rank 0: a logger failed to write cam/" in msg) == bool(e)
        assert msg.endswith(". The affected samples/images were skipped; pass on_error='raise' to stop at the first "
                            "one.")
    (last,) = [m for m in messages if "in the background" in m]
    assert "logger" in last and "a logger failed to write cam/" in last
    assert completed(t, model, 2)
    assert torch.isfinite(t.callback_metrics["cam/gradcam/complexity"])


def test_evolution_image_rows_are_bounded() -> None:
    from lightning_cam.callbacks.probe import History

    h = History()
    for e in range(100):
        h.add("gradcam", e, torch.rand(2, 80, 80), torch.zeros(2))
    assert h.maps["gradcam"][0].dtype == torch.uint8 and h.maps["gradcam"][0].shape == (2, 64, 64)
    epochs, maps = h.series("gradcam", max_rows=32)  # type: ignore[misc]
    assert len(epochs) == 32 and epochs[0] == 0 and epochs[-1] == 99 and epochs == sorted(set(epochs))
    assert maps.shape == (32, 2, 64, 64)
    assert h.series("gradcam", max_rows=200)[0] == list(range(100))  # type: ignore[index]
