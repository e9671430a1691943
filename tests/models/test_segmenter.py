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


def test_image_level_context_lets_a_pixel_read_a_far_corner() -> None:
    # the far corner's logits depend on the first corner's pixels only through the context branch (the plain
    # U-Net's receptive field is a few pixels per stage): an exact zero gradient without it, none with it
    for context in (False, True):
        torch.manual_seed(0)
        model = UNetSegmenter(num_classes=3, channels=(4, 8), context=context).eval()
        x = torch.rand(1, 3, 32, 32, requires_grad=True)
        model(x)[..., -4:, -4:].sum().backward()
        assert x.grad is not None
        assert (float(x.grad[..., :4, :4].abs().max()) > 0) is context


def test_cam_layer_sets_the_explained_layer_and_a_wrong_name_is_refused() -> None:
    model = UNetSegmenter(num_classes=3, channels=(4, 8), context=True, cam_layer="encoder.stages.1")
    assert model.cam_layer() == "encoder.stages.1"
    assert choose_target_layer(model.eval(), torch.rand(1, 3, 16, 16)).name == "decoder"  # the rule, when unset
    with pytest.raises(ValueError, match=r"names no module of this U-Net.*encoder\.stages\.1"):
        UNetSegmenter(num_classes=3, channels=(4, 8), cam_layer="bottleneck")
