"""Extending as a user does, end to end: a method, a metric and a target kind written and registered in the user's
own file (here, this test), used by name through a real fit; and two callbacks with the same method on two
validation dataloaders (in-distribution and shifted), through fit, checkpoint and resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn

from lightning_cam import CAMCallback, CAMMixin, evaluate_batch
from lightning_cam.data import ShapesDataModule
from lightning_cam.functional import gradcam_weights
from lightning_cam.methods import Capture, GradCAM, get_method, register_method
from lightning_cam.methods.registry import METHOD_REGISTRY
from lightning_cam.metrics import MetricInputs, PerSampleMean, register_metric
from lightning_cam.metrics.registry import METRIC_REGISTRY
from lightning_cam.targets import TARGET_REGISTRY, TargetKind, register_target
from tests.callbacks.test_cam import make_data, make_model, make_trainer


@pytest.fixture
def user_extensions() -> Iterator[None]:
    """What a user's own module defines: registered when it runs, after `import lightning_cam`."""

    @register_method
    class SquaredGradCAM(GradCAM):
        """Grad-CAM with squared channel weights (signed evidence counts as evidence)."""

        name = "squared_gradcam"

        def weights(self, cap: Capture) -> Tensor:
            assert cap.grads is not None
            return gradcam_weights(cap.grads) ** 2

    def peak_gain(m: MetricInputs) -> Tensor:  # O_c - Y_c
        return m.need("masked_probs") - m.probs

    @register_metric("peak_gain", compute=peak_gain, needs={"masked"})
    class PeakGain(PerSampleMean):
        higher_is_better = True

    @register_target
    class TemperedSoftmax(TargetKind):
        """A softmax classifier read at temperature 2 (what a calibrated model reports)."""

        name = "tempered_softmax"

        def probability(self, logits: Tensor, targets: Tensor) -> Tensor:
            return torch.softmax(logits.float() / 2, dim=1).gather(1, targets.long().view(-1, 1)).squeeze(1)

    try:
        yield
    finally:
        METHOD_REGISTRY.remove("squared_gradcam")
        METRIC_REGISTRY.remove("peak_gain")
        TARGET_REGISTRY.remove("tempered_softmax")


class Net(CAMMixin, pl.LightningModule):
    """A user's own module: its own training step, a target kind of its own."""

    cam_target_layer = "features"
    cam_task = "tempered_softmax"

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                                      nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return nn.functional.cross_entropy(self(batch["image"]), batch["label"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val_loss", nn.functional.cross_entropy(self(batch["image"]), batch["label"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.slow
def test_a_users_method_metric_and_target_kind_work_by_name_through_a_real_fit(tmp_path: Path,
                                                                             user_extensions: None) -> None:
    dm = ShapesDataModule(num_train=64, num_val=32, image_size=32, batch_size=16, seed=0)
    torch.manual_seed(0)
    model = Net()
    cb = CAMCallback(methods=("Squared-GradCAM", "gradcam"), metrics=("peak_gain", "average_drop"), num_images=2,
                     max_samples=None, on_error="raise", views=("worst", "summary"))
    trainer = make_trainer(tmp_path, [cb], max_epochs=1)
    trainer.fit(model, dm)
    assert cb.methods == ("squared_gradcam", "gradcam")
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("cam/")}
    # the logged value is the metric of the user's method on every validation image, under the user's kind
    model.eval()
    dm.setup("validate")
    values = []
    for batch in dm.val_dataloader():
        cam = get_method("squared_gradcam")(model, target_layer="features", task="tempered_softmax")
        values.append(evaluate_batch(cam, batch["image"], metrics=("peak_gain",))["peak_gain"])
    expected = torch.cat(values)
    assert logged["cam/squared_gradcam/peak_gain"] == pytest.approx(float(expected.nanmean()), abs=1e-4)
    assert set(logged) >= {"cam/gradcam/peak_gain", "cam/squared_gradcam/average_drop"}


def _two_loaders() -> tuple[ShapesDataModule, Any, list[Any]]:
    """In-distribution validation images and a shifted set (another seed, smaller objects, more clutter)."""
    dm, shifted = make_data(num_val=32), ShapesDataModule(num_train=16, num_val=32, image_size=32, batch_size=16,
                                                          seed=7, min_scale=0.15, max_scale=0.3, max_distractors=3)
    for d in (dm, shifted):
        d.setup("fit")
    return dm, dm.train_dataloader(), [dm.val_dataloader(), shifted.val_dataloader()]


def _callbacks() -> list[CAMCallback]:
    return [CAMCallback(methods=("gradcam",), metrics=("complexity",), num_images=2, dataloader_idx=i,
                        on_error="raise", views={"drift": {}, "summary": {"figure": True}}) for i in (0, 1)]


@pytest.mark.slow
def test_two_callbacks_on_two_validation_dataloaders_fit_checkpoint_and_resume(tmp_path: Path) -> None:
    dm, train, val = _two_loaders()
    first = _callbacks()
    assert first[0].state_key != first[1].state_key
    ckpt = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    trainer = make_trainer(tmp_path, [*first, ckpt], max_epochs=1, enable_checkpointing=True)
    trainer.fit(make_model(dm), train, val)
    metrics = trainer.callback_metrics
    assert {"cam/gradcam/complexity", "cam_dl1/gradcam/complexity"} <= set(metrics)
    assert float(metrics["cam/gradcam/complexity"]) != float(metrics["cam_dl1/gradcam/complexity"])
    assert not torch.equal(first[0].probe.images, first[1].probe.images)  # each its own loader's probe images
    states = torch.load(ckpt.last_model_path, weights_only=False)["callbacks"]
    assert first[0].state_key in states and first[1].state_key in states

    again = _callbacks()
    resumed = make_trainer(tmp_path, [*again, ModelCheckpoint(dirpath=str(tmp_path / "ckpt2"))], max_epochs=2,
                           enable_checkpointing=True)
    resumed.fit(make_model(dm), train, val, ckpt_path=ckpt.last_model_path)
    for before, after in zip(first, again):
        assert torch.equal(after.probe.images, before.probe.images)  # each restored its own state
        assert after.history.rows("gradcam") == [0, 1]
    # what TensorBoard stored: both callbacks' curves and grids, none overwriting the other
    events = EventAccumulator(str(Path(resumed.logger.log_dir)), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"cam/gradcam/complexity", "cam_dl1/gradcam/complexity", "cam_dl1/gradcam/drift"} <= set(tags["scalars"])
    assert {"cam/gradcam/grid", "cam_dl1/gradcam/grid", "cam/gradcam/evolution",
            "cam_dl1/gradcam/evolution", "cam/summary", "cam_dl1/summary"} <= set(tags["images"])
