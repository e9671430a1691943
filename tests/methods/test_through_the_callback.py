"""The methods pytorch-grad-cam ships beyond the classic ones, through the callback: what TensorBoard stored."""

from __future__ import annotations

import math
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torchvision.models import VisionTransformer

from lightning_cam import CAMCallback
from lightning_cam.data import ShapesDataModule
from lightning_cam.models import GAPClassifier
from lightning_cam.models.base import ImageClassifier

NEW = ("ablationcam", "gradcam_elementwise", "eigengradcam", "fem", "finercam", "kpcacam", "randomcam", "segeigencam",
       "fullgrad", "shapleycam", "refinecam", "sscam", "iscam")
#: the costly ones made small; Refine-CAM over both conv blocks of the GAP classifier
METHOD_KWARGS = {"sscam": {"num_samples": 2}, "iscam": {"num_samples": 2},
                 "refinecam": {"target_layers": ["features.0", "features.1"]}}
METRICS = ("average_drop", "adcc", "pointing_game", "insertion")


def test_each_new_method_logs_curves_grids_and_views(tmp_path: Path) -> None:
    dm = ShapesDataModule(num_train=64, num_val=32, image_size=32, batch_size=16, seed=0)
    torch.manual_seed(0)
    model = GAPClassifier(num_classes=5, channels=(8, 16), class_names=dm.class_names, mean=dm.hparams.mean,
                          std=dm.hparams.std)
    cb = CAMCallback(methods=NEW, metrics=METRICS, metric_kwargs={"steps": 4}, method_kwargs=METHOD_KWARGS,
                     num_images=4, on_error="raise", progress=False)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=TensorBoardLogger(tmp_path), callbacks=[cb],
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         num_sanity_val_steps=0)
    trainer.fit(model, dm)
    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0, "scalars": 0})  # type: ignore[union-attr]
    acc.Reload()
    for method in NEW:
        for metric in METRICS:
            (value,) = acc.Scalars(f"cam/{method}/{metric}")
            assert math.isfinite(value.value), (method, metric)
        for image in ("grid", "worst", "evolution"):  # the strategies view needs more samples than these
            assert len(acc.Images(f"cam/{method}/{image}")) == 1, (method, image)


class TinyViT(ImageClassifier):
    """A torchvision VisionTransformer on 32 px Shapes (its zeroed head given random weights)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(lr=0.01)
        self.net = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                     mlp_dim=32, num_classes=num_classes)
        nn.init.normal_(self.net.heads.head.weight, std=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_legrad_through_the_callback_on_a_torchvision_vit(tmp_path: Path) -> None:
    dm = ShapesDataModule(num_train=32, num_val=16, image_size=32, batch_size=16, seed=0)
    torch.manual_seed(0)
    cb = CAMCallback(methods=("legrad",), metrics=METRICS, metric_kwargs={"steps": 4}, num_images=4,
                     on_error="raise", progress=False)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=TensorBoardLogger(tmp_path), callbacks=[cb],
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         num_sanity_val_steps=0)
    trainer.fit(TinyViT(dm.num_classes), dm)
    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0, "scalars": 0})  # type: ignore[union-attr]
    acc.Reload()
    for metric in METRICS:
        (value,) = acc.Scalars(f"cam/legrad/{metric}")
        assert math.isfinite(value.value), metric
    assert len(acc.Images("cam/legrad/grid")) == 1
