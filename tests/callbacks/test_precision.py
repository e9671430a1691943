"""Every Lightning precision gives the CAM metrics, the grids and the evolution image."""

from __future__ import annotations

import math
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_cam import CAMCallback
from lightning_cam.data import ShapesDataModule
from tests.helpers import tiny_classifier

CPU = ["32-true", "bf16-mixed", "16-true", "bf16-true", "64-true"]


def run(tmp_path: Any, precision: str, accelerator: str = "cpu") -> tuple[pl.Trainer, CAMCallback]:
    dm = ShapesDataModule(num_train=32, num_val=32, image_size=32, batch_size=16, seed=0)
    torch.manual_seed(0)
    # plain SGD: Adam's eps=1e-8 underflows in float16, so a 16-true Adam model diverges by itself (NaN loss)
    model = tiny_classifier(pl.LightningModule)(mean=dm.hparams.mean, std=dm.hparams.std)
    cb = CAMCallback(metrics=("average_drop", "coherency", "complexity", "adcc", "pointing_game"), num_images=2,
                     on_error="raise")
    trainer = pl.Trainer(accelerator=accelerator, devices=1, precision=precision, max_epochs=2, callbacks=[cb],
                         logger=TensorBoardLogger(str(tmp_path), name="tb"), enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                         default_root_dir=str(tmp_path))
    trainer.fit(model, dm)
    return trainer, cb


def check(trainer: pl.Trainer, cb: CAMCallback) -> None:
    for metric in ("average_drop", "coherency", "complexity", "adcc", "pointing_game"):
        assert math.isfinite(float(trainer.callback_metrics[f"cam/gradcam/{metric}"])), metric
    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0})  # type: ignore[union-attr]
    acc.Reload()
    assert [e.step for e in acc.Images("cam/gradcam/grid")] == [1, 3]
    assert [e.step for e in acc.Images("cam/gradcam/evolution")] == [3]
    assert cb.probe.images is not None and cb.probe.images.dtype == torch.float32  # kept in float32
    assert cb.history.maps["gradcam"][1].float().max() > 0  # real maps, not blank ones
    assert all(torch.isfinite(p).all() for p in trainer.lightning_module.parameters())


@pytest.mark.parametrize("precision", CPU)
def test_each_cpu_precision_gives_metrics_grids_and_evolution(precision: str, tmp_path: Any) -> None:
    trainer, cb = run(tmp_path, precision)
    check(trainer, cb)


def test_16_mixed_on_cpu_is_lightnings_choice(tmp_path: Any) -> None:
    """Lightning decides what ``16-mixed`` means on CPU (2.6: it falls back to ``bf16-mixed`` with a warning);
    whatever runs, the callback works in it. Real float16 autocast is covered by the GPU test below."""
    try:
        trainer, cb = run(tmp_path, "16-mixed")
    except Exception as err:  # noqa: BLE001 - Lightning's own refusal, not the callback's
        assert "CAMCallback" not in str(err) and "lightning_cam" not in repr(err.__traceback__)
        pytest.skip(f"Lightning refuses 16-mixed on CPU: {err}")
    check(trainer, cb)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed", "16-true", "32-true"])
def test_gpu_precisions(precision: str, tmp_path: Any) -> None:
    trainer, cb = run(tmp_path, precision, accelerator="gpu")
    check(trainer, cb)
