"""models/segmenter.py: the U-Net's output, loss and accuracy per pixel, its CAM task and its layer by the rule."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.data import ShapesDataModule
from lightning_cam.methods.choose import choose_target_layer
from lightning_cam.models import UNetSegmenter


def test_the_segmenter_trains_per_pixel_and_is_explained_at_its_decoder() -> None:
    dm = ShapesDataModule(num_train=8, num_val=8, image_size=32, batch_size=4, num_classes=6, task="segmentation")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    model = UNetSegmenter(num_classes=dm.num_classes, channels=(8, 16, 32), class_names=dm.class_names)
    assert model(batch["image"]).shape == (4, 6, 32, 32)
    logits = torch.full((4, 6, 32, 32), -5.0).scatter(1, batch["label"][:, None], 5.0)  # a perfect prediction
    loss, acc = model._loss_and_accuracy(logits, batch["label"])
    assert float(acc) == 1.0 and float(loss) < 1e-3
    assert model.training_step(batch, 0).ndim == 0
    assert model.cam_task.kind == "segmentation" and model.cam_task.ignore_index == 0
    assert choose_target_layer(model.eval(), batch["image"]).name == "decoder"


def test_a_classifier_task_is_refused() -> None:
    with pytest.raises(ValueError, match="task must be 'segmentation'"):
        UNetSegmenter(task="multiclass")
