"""Seg-Eigen-CAM against pytorch-grad-cam's SegEigenCAM: on torchvision segmenters with its segmentation target, and
on the classifiers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import SegEigenCAM as PgcSegEigenCAM
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

from lightning_cam.functional import segeigencam_map
from lightning_cam.methods import get_method
from lightning_cam.methods.segeigencam import SegEigenCAM

from ..targets.test_segmentation import _deeplab, _lraspp, _pgc
from .conftest import PARITY_SETUPS, assert_maps_match, parity_batches, parity_model, pgc_low_res, structured_images


@pytest.mark.parametrize("factory", [_deeplab, _lraspp], ids=["deeplabv3", "lraspp"])
def test_segeigencam_equals_pytorch_grad_cams_on_a_segmenter(factory) -> None:
    model = factory()
    x = structured_images(3, 96, seed=4)
    with torch.no_grad():
        shares = model(x)["out"].argmax(1)
    classes = [int(torch.bincount(shares[i].flatten(), minlength=4).argmax()) for i in range(3)]
    res = SegEigenCAM(model, "backbone.16", task="segmentation").explain(x, torch.tensor(classes))
    theirs = _pgc(PgcSegEigenCAM, model, model.get_submodule("backbone.16"), x, classes,
                  tuple(res.low_res.shape[-2:]))
    assert assert_maps_match(res.low_res, theirs) == 3


@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
def test_segeigencam_equals_pytorch_grad_cams_on_a_classifier(kind: str, layer: str, size: int) -> None:
    model = parity_model(kind)
    informative = 0
    for x in parity_batches(size):
        res = SegEigenCAM(model, layer).explain(x)
        peer, used = pgc_low_res(PgcSegEigenCAM, model, layer, x, None)
        assert torch.equal(used, res.targets)
        informative += assert_maps_match(res.low_res, peer)
    assert informative >= 3


def test_the_projection_and_its_sign_are_the_papers() -> None:
    g = torch.Generator().manual_seed(0)
    a, grads = torch.randn(4, 6, 5, 5, generator=g), torch.randn(4, 6, 5, 5, generator=g)
    ours = segeigencam_map(a, grads)
    theirs = torch.from_numpy(get_2d_projection_with_sign_correction((grads.abs() * a).numpy()))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    flat = ours.flatten(1)
    assert bool((flat.amax(1).abs() >= flat.amin(1).abs()).all())
    assert get_method("Seg-Eigen-CAM") is SegEigenCAM and np.isfinite(ours.numpy()).all()
