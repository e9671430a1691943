"""FEM against pytorch-grad-cam, on a ResNet-18, a small VGG and a ViT."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import FEM as PgcFEM

from lightning_cam.functional import fem_weights
from lightning_cam.methods.fem import FEM

from .conftest import (
    PARITY_SETUPS,
    assert_maps_match,
    layer_output,
    parity_batches,
    parity_model,
    pgc_low_res,
    vit_case,
)


@pytest.mark.parametrize("k", [2.0, 1.0])
@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
def test_fem_matches_pytorch_grad_cam(kind: str, layer: str, size: int, k: float) -> None:
    model = parity_model(kind)
    informative = 0
    for x in parity_batches(size):
        res = FEM(model, layer, k=k).explain(x)
        peer, _ = pgc_low_res(PgcFEM, model, layer, x, None, k=k)
        informative += assert_maps_match(res.low_res, peer)
        # the weights themselves, against the peer's numpy formula
        a = layer_output(model, layer, x)
        an = a.numpy()
        th = an.mean(axis=(2, 3)) + k * an.std(axis=(2, 3))
        expected = (an > th[..., None, None]).mean(axis=(2, 3))
        np.testing.assert_allclose(fem_weights(a, k).numpy(), expected, atol=1e-6)
    assert informative >= 3


def test_fem_on_a_vit() -> None:
    model, layer, reshape, x = vit_case()
    res = FEM(model, layer).explain(x)
    peer, _ = pgc_low_res(PgcFEM, model, layer, x, None, size=tuple(res.low_res.shape[-2:]), reshape=reshape)
    assert assert_maps_match(res.low_res, peer) == 2


def test_fem_is_class_independent_and_needs_no_backward() -> None:
    model = parity_model("vgg")
    x = parity_batches(64)[0]
    cam = FEM(model, "features.9")
    assert cam.needs() == "activation"
    torch.testing.assert_close(cam.explain(x, torch.zeros(3, dtype=torch.long)).maps,
                               cam.explain(x, torch.full((3,), 4)).maps)
    with pytest.raises(ValueError, match="k .* must be >= 0"):
        FEM(model, "features.9", k=-1)
