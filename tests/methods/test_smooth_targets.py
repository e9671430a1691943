"""Smooth Grad-CAM++ with given targets runs no clean pass: ``num_samples`` forwards (each with its backward),
the clean logits computed only when read, in eval mode; its maps equal those of the call that picks the
same targets from a clean pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_cam import evaluate_batch
from lightning_cam.methods import GradCAM, MethodGroup, SmoothGradCAMPlusPlus

from .conftest import make_vgg, structured_images

LAYER = "features.9"


class Counter:
    """Images through the model's forward, counted by a forward hook."""

    def __init__(self, model: nn.Module) -> None:
        self.images = 0
        self.handle = model.register_forward_hook(self)

    def __call__(self, module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self.images += int(args[0].shape[0])


def test_given_targets_cost_num_samples_forwards_and_the_logits_come_when_read() -> None:
    model = make_vgg().eval()
    x = structured_images(3, 32, seed=1)
    cam = SmoothGradCAMPlusPlus(model, LAYER, num_samples=4, seed=3)
    picked = cam.explain(x)  # the clean pass picks the predicted class
    counter = Counter(model)
    given = cam.explain(x, picked.targets.clone())
    assert counter.images == 4 * 3 and not given.logits_known  # the noisy copies only
    torch.testing.assert_close(given.maps, picked.maps)
    model.train()  # the deferred clean forward runs in eval mode, whatever the model's mode by then
    logits = given.logits
    assert model.training and counter.images == 4 * 3 + 3
    with torch.no_grad():
        torch.testing.assert_close(logits, model.eval()(x).float())


def test_given_targets_are_range_checked_before_any_gradient() -> None:
    cam = SmoothGradCAMPlusPlus(make_vgg().eval(), LAYER, num_samples=2)
    with pytest.raises(ValueError, match="targets out of range"):
        cam.explain(structured_images(2, 32, seed=1), torch.tensor([0, 99]))


@pytest.mark.parametrize("batch_size", [None, 1])
def test_every_chunk_explains_its_own_target(batch_size: int | None) -> None:
    """Chunked by one image (the first chunk checks only its own target) or not: the maps of given targets equal
    those of each image alone."""
    model = make_vgg().eval()
    x = structured_images(3, 32, seed=2)
    targets = torch.tensor([1, 0, 2])
    cam = SmoothGradCAMPlusPlus(model, LAYER, num_samples=2, batch_size=batch_size)
    together = cam.explain(x, targets).maps
    alone = torch.cat([cam.explain(x[i:i + 1], targets[i:i + 1]).maps for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_in_a_group_it_shares_the_clean_pass_and_the_evaluator_reads_the_logits() -> None:
    model = make_vgg().eval()
    x = structured_images(2, 32, seed=4)
    group = MethodGroup({"gradcam": GradCAM(model, LAYER),
                         "smooth": SmoothGradCAMPlusPlus(model, LAYER, num_samples=2)})
    counter = Counter(model)
    out = group.explain(x)
    assert counter.images == 2 + 2 * 2  # one shared clean pass (Grad-CAM's) and the noisy copies
    assert out["smooth"].logits_known
    torch.testing.assert_close(out["smooth"].logits, out["gradcam"].logits)
    alone = SmoothGradCAMPlusPlus(model, LAYER, num_samples=2)
    values = evaluate_batch(alone, x, out["smooth"].targets, metrics=("average_drop", "complexity"))
    shared = evaluate_batch(alone, x, out["smooth"].targets, metrics=("average_drop", "complexity"),
                            result=out["smooth"])
    for key in values:
        torch.testing.assert_close(values[key], shared[key], rtol=1e-4, atol=1e-5)
