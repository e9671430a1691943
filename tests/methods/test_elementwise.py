"""Grad-CAM element-wise and Eigen-Grad-CAM against pytorch-grad-cam, on a ResNet-18, a small VGG and a ViT."""

from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam import EigenGradCAM as PgcEigenGradCAM
from pytorch_grad_cam import GradCAMElementWise as PgcGradCAMElementWise
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

from lightning_cam.functional import eigengradcam_map, hirescam_map
from lightning_cam.methods import get_method
from lightning_cam.methods.elementwise import EigenGradCAM, GradCAMElementWise

from .conftest import PARITY_SETUPS, assert_maps_match, parity_batches, parity_model, pgc_low_res, vit_case


def test_registered_under_the_issue_names() -> None:
    assert get_method("gradcam_elementwise") is GradCAMElementWise and get_method("eigengradcam") is EigenGradCAM


@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
def test_gradcam_elementwise_matches_pytorch_grad_cam(kind: str, layer: str, size: int) -> None:
    model = parity_model(kind)
    informative = 0
    for i, x in enumerate(parity_batches(size)):
        targets = None if i == 0 else [int(t) for t in torch.arange(x.shape[0]) % 5]
        res = GradCAMElementWise(model, layer).explain(x, None if targets is None else torch.tensor(targets))
        peer, used = pgc_low_res(PgcGradCAMElementWise, model, layer, x, targets)
        assert torch.equal(res.targets, used)
        informative += assert_maps_match(res.low_res, peer)
    assert informative >= 3


def test_gradcam_elementwise_matches_pytorch_grad_cam_on_a_vit() -> None:
    model, layer, reshape, x = vit_case()
    res = GradCAMElementWise(model, layer).explain(x)
    peer, used = pgc_low_res(PgcGradCAMElementWise, model, layer, x, res.targets.tolist(),
                             size=tuple(res.low_res.shape[-2:]), reshape=reshape)
    assert assert_maps_match(res.low_res, peer) == 2


def _signs(ours: torch.Tensor, peer: torch.Tensor) -> torch.Tensor:
    return torch.where((ours * peer).flatten(1).sum(1) < 0, -1.0, 1.0).view(-1, 1, 1)


@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
def test_eigengradcam_matches_pytorch_grad_cam_up_to_the_documented_sign(kind: str, layer: str, size: int) -> None:
    """The projection of the captured product equals pytorch-grad-cam's up to sign, the sign follows HiRes-CAM's
    map, and where the signs agree the whole methods' maps agree (the gradients are the peer's too)."""
    model = parity_model(kind)
    agreeing = 0
    for x in parity_batches(size):
        cam = EigenGradCAM(model, layer)
        targets = model(x).argmax(1)
        cap = cam.capture(x, targets, "grad")
        a, g = cap.activations.detach(), cap.grads.detach()
        ours = eigengradcam_map(a, g)
        peer = torch.from_numpy(get_2d_projection((g * a).numpy()))
        sign = _signs(ours, peer)
        torch.testing.assert_close(ours, sign * peer, rtol=1e-3, atol=1e-4 * float(peer.abs().max()))
        hires = hirescam_map(a, g).flatten(1)
        assert ((ours.flatten(1) * (hires - hires.mean(1, keepdim=True))).sum(1) >= 0).all()
        res = cam.explain(x)
        torch.testing.assert_close(res.low_res, torch.relu(ours), rtol=1e-4, atol=1e-5 * float(ours.abs().max()))
        peer_maps, used = pgc_low_res(PgcEigenGradCAM, model, layer, x, None)
        assert torch.equal(used, res.targets)
        agree = sign.flatten() > 0
        if agree.any():
            agreeing += assert_maps_match(res.low_res[agree], peer_maps[agree])
    assert agreeing >= 1, "no sample where the peer's sign agrees: the whole-method comparison proved nothing"


def test_eigengradcam_on_a_vit_up_to_sign() -> None:
    model, layer, reshape, x = vit_case()
    res = EigenGradCAM(model, layer).explain(x)
    peer, _ = pgc_low_res(PgcEigenGradCAM, model, layer, x, res.targets.tolist(),
                          size=tuple(res.low_res.shape[-2:]), reshape=reshape)
    cam = EigenGradCAM(model, layer)
    cap = cam.capture(x, res.targets, "grad")
    ours = eigengradcam_map(cap.activations.detach(), cap.grads.detach())
    # pytorch-grad-cam ReLUs its projection: our map or its negation, ReLU'd, must match it
    for i in range(x.shape[0]):
        candidates = [torch.relu(ours[i : i + 1]), torch.relu(-ours[i : i + 1])]
        matched = []
        for c in candidates:
            try:
                assert_maps_match(c, peer[i : i + 1])
                matched.append(True)
            except AssertionError:
                matched.append(False)
        assert any(matched), f"sample {i}: neither sign of our projection matches the peer's map"
