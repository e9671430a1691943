"""KPCA-CAM against pytorch-grad-cam (scikit-learn's KernelPCA), on a ResNet-18, a small VGG and a ViT."""

from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam import KPCA_CAM as PgcKPCACAM
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_kernel

from lightning_cam.functional import kpca_map
from lightning_cam.methods.kpcacam import KPCACAM

from .conftest import (
    PARITY_SETUPS,
    assert_maps_match,
    layer_output,
    parity_batches,
    parity_model,
    pgc_low_res,
    vit_case,
)


def _signs(ours: torch.Tensor, peer: torch.Tensor) -> torch.Tensor:
    return torch.where((ours * peer).flatten(1).sum(1) < 0, -1.0, 1.0).view(-1, 1, 1)


@pytest.mark.parametrize("kernel,gamma", [("sigmoid", None), ("rbf", None), ("rbf", 0.005), ("poly", None),
                                          ("linear", None), ("cosine", None)])
@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
def test_kpca_projection_equals_scikit_learns_up_to_the_documented_sign(kind: str, layer: str, size: int,
                                                                       kernel: str, gamma: float | None) -> None:
    model = parity_model(kind)
    for x in parity_batches(size):
        a = layer_output(model, layer, x)
        peer = torch.from_numpy(get_2d_projection_kernel(a.numpy(), kernel, gamma))
        ours = kpca_map(a, kernel, gamma)  # type: ignore[arg-type]
        sign = _signs(ours, peer)
        # scikit-learn works in the activations' float32, we in float64: equal within its precision
        assert_maps_match(ours, sign * peer, min_corr=0.9999)
        torch.testing.assert_close(ours, sign * peer, rtol=1e-2, atol=1e-2 * float(peer.abs().max()))
        mean_act = a.mean(1).flatten(1)
        assert ((ours.flatten(1) * (mean_act - mean_act.mean(1, keepdim=True))).sum(1) >= 0).all()


@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
def test_kpcacam_matches_pytorch_grad_cam_where_the_signs_agree(kind: str, layer: str, size: int) -> None:
    model = parity_model(kind)
    agreeing = 0
    for x in parity_batches(size):
        res = KPCACAM(model, layer).explain(x)
        a = layer_output(model, layer, x)
        ours = kpca_map(a)
        torch.testing.assert_close(res.low_res, torch.relu(ours), rtol=1e-4, atol=1e-5 * float(ours.abs().max()))
        peer, _ = pgc_low_res(PgcKPCACAM, model, layer, x, None)
        agree = _signs(ours, torch.from_numpy(get_2d_projection_kernel(a.numpy()))).flatten() > 0
        if agree.any():
            agreeing += assert_maps_match(res.low_res[agree], peer[agree])
    assert agreeing >= 1


def test_kpcacam_on_a_vit_up_to_sign() -> None:
    model, layer, reshape, x = vit_case()
    res = KPCACAM(model, layer).explain(x)
    grid = tuple(res.low_res.shape[-2:])
    peer, _ = pgc_low_res(PgcKPCACAM, model, layer, x, None, size=grid, reshape=reshape)
    with torch.no_grad():
        tokens = layer_output(model, layer, x)
    a = reshape(tokens)
    ours = kpca_map(a)
    assert ours.shape[-2:] == grid
    for i in range(x.shape[0]):
        signed = [torch.relu(s * ours[i : i + 1]) for s in (1.0, -1.0)]
        corr = []
        for c in signed:
            try:
                corr.append(assert_maps_match(c, peer[i : i + 1]) >= 0)
            except AssertionError:
                corr.append(False)
        assert any(corr), f"sample {i}: neither sign matches the peer"


def test_bad_kernel_and_gamma_are_clear_errors() -> None:
    model = parity_model("vgg")
    with pytest.raises(ValueError, match="unknown kernel 'gauss'; choose one of sigmoid, rbf"):
        KPCACAM(model, "features.9", kernel="gauss")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gamma must be > 0"):
        KPCACAM(model, "features.9", gamma=0.0)
