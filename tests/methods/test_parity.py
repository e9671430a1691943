"""Parity with the peer libraries (pytorch-grad-cam, torchcam) wherever the definitions agree.

Peers normalise and resize differently, so the comparable quantity is the low-resolution map before
upsampling: pytorch-grad-cam is asked for maps at the activation's own size (its min-max of the ReLU'd
map, an affine transform that Pearson ignores), torchcam is called with ``normalized=False``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchcam.methods as tcm
from pytorch_grad_cam import (
    EigenCAM as PgcEigenCAM,
)
from pytorch_grad_cam import (
    GradCAM as PgcGradCAM,
)
from pytorch_grad_cam import (
    GradCAMPlusPlus as PgcGradCAMPlusPlus,
)
from pytorch_grad_cam import (
    HiResCAM as PgcHiResCAM,
)
from pytorch_grad_cam import (
    LayerCAM as PgcLayerCAM,
)
from pytorch_grad_cam import (
    ScoreCAM as PgcScoreCAM,
)
from pytorch_grad_cam import (
    XGradCAM as PgcXGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

from lightning_cam.functional import eigencam_map, scorecam_masks
from lightning_cam.methods import (
    CAM,
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)

from .conftest import (
    PARITY_SETUPS,
    assert_maps_match,
    layer_output,
    make_vgg,
    parity_batches,
    parity_model,
    pearson,
    pgc_low_res,
    structured_images,
)

PGC = {
    GradCAM: PgcGradCAM,
    GradCAMPlusPlus: PgcGradCAMPlusPlus,
    XGradCAM: PgcXGradCAM,
    LayerCAM: PgcLayerCAM,
    HiResCAM: PgcHiResCAM,
}
TORCHCAM = {CAM: tcm.CAM, GradCAM: tcm.GradCAM, XGradCAM: tcm.XGradCAM, LayerCAM: tcm.LayerCAM}

@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
@pytest.mark.parametrize("ours", list(PGC), ids=lambda c: c.__name__)
def test_pytorch_grad_cam_parity(ours: type, kind: str, layer: str, size: int) -> None:
    model = parity_model(kind)
    informative = 0
    for i, x in enumerate(parity_batches(size)):
        targets = None if i == 0 else [int(t) for t in torch.arange(x.shape[0]) % 5]
        kwargs = {"eps": 1e-6} if ours is GradCAMPlusPlus else {}  # pytorch-grad-cam's epsilon (documented)
        res = ours(model, layer, **kwargs).explain(x, None if targets is None else torch.tensor(targets))
        peer, used = pgc_low_res(PGC[ours], model, layer, x, targets)
        assert torch.equal(res.targets, used)
        assert peer.shape == res.low_res.shape
        informative += assert_maps_match(res.low_res, peer)
    assert informative >= 3, "too few non-degenerate maps: the comparison would prove nothing"


@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
@pytest.mark.parametrize("ours", list(TORCHCAM), ids=lambda c: c.__name__)
def test_torchcam_parity(ours: type, kind: str, layer: str, size: int) -> None:
    model = parity_model(kind)
    informative = 0
    for i, x in enumerate(parity_batches(size)):
        res = ours(model, layer).explain(x, None if i == 0 else torch.arange(x.shape[0]) % 5)
        kwargs = {"fc_layer": "fc"} if ours is CAM else {}
        peer = TORCHCAM[ours](model, layer, input_shape=tuple(x.shape[1:]), **kwargs)
        try:
            scores = model(x)
            cams = peer(class_idx=res.targets.tolist(), scores=scores, normalized=False)
        finally:
            peer.remove_hooks()
        if i == 0:
            assert torch.equal(res.targets, scores.argmax(1))
        informative += assert_maps_match(res.low_res, torch.relu(cams[0].detach()))
    assert informative >= 3


@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
def test_eigencam_matches_pytorch_grad_cam_up_to_documented_sign(kind: str, layer: str, size: int) -> None:
    model = parity_model(kind)
    flips = 0
    for x in parity_batches(size):
        a = layer_output(model, layer, x)
        peer = torch.from_numpy(get_2d_projection(a.numpy()))
        ours = eigencam_map(a)
        sign = torch.where((ours * peer).flatten(1).sum(1) < 0, -1.0, 1.0).view(-1, 1, 1)
        torch.testing.assert_close(ours, sign * peer, rtol=1e-3, atol=1e-4 * float(peer.abs().max()))
        # the documented sign rule: the map agrees with the mean activation
        mean_act = a.mean(1).flatten(1)
        assert ((ours.flatten(1) * (mean_act - mean_act.mean(1, keepdim=True))).sum(1) >= 0).all()
        flips += int((sign < 0).sum())
        # and the full method returns ReLU of that map, like pytorch-grad-cam's EigenCAM when the signs agree
        res = EigenCAM(model, layer).explain(x)
        torch.testing.assert_close(res.low_res, torch.relu(ours), rtol=1e-4, atol=1e-5)
        peer_maps, _ = pgc_low_res(PgcEigenCAM, model, layer, x, None)
        agree = sign.flatten() > 0
        if agree.any():
            assert_maps_match(res.low_res[agree], peer_maps[agree])


@pytest.mark.parametrize("kind,layer,size", [("vgg", "features.2", 24)])
def test_scorecam_documented_difference(kind: str, layer: str, size: int) -> None:
    """At a full-resolution layer every library builds the same masks; the peers then softmax the target
    logit over channels, we take the softmax probability of the target class (the paper's code)."""
    model = parity_model(kind)
    x = structured_images(2, size, seed=5)
    a = layer_output(model, layer, x)
    with torch.no_grad():
        logits = model(x)
    assert a.shape[-2:] == x.shape[-2:], "the comparison needs a full-resolution layer"
    targets = logits.argmax(1)
    masks = scorecam_masks(a, tuple(x.shape[-2:]))
    with torch.no_grad():
        masked_logits = torch.stack([model(x[b : b + 1] * masks[b][:, None]) for b in range(x.shape[0])])
    tgt_logit = masked_logits.gather(2, targets.view(-1, 1, 1).expand(-1, a.shape[1], 1))[..., 0]
    # peers: softmax over channels of the masked target logit
    with PgcScoreCAM(model=model, target_layers=[model.get_submodule(layer)]) as peer:
        peer.batch_size = 64
        pgc_w = peer.get_cam_weights(x, None, [ClassifierOutputTarget(int(t)) for t in targets], a.numpy(), None)
    torch.testing.assert_close(torch.from_numpy(np.asarray(pgc_w)), torch.softmax(tgt_logit, 1), rtol=1e-4, atol=1e-6)
    tc = tcm.ScoreCAM(model, layer, batch_size=64, input_shape=tuple(x.shape[1:]))
    try:
        model(x)
        tc_maps = tc(class_idx=targets.tolist(), normalized=False)[0]
    finally:
        tc.remove_hooks()
    peer_weights = torch.softmax(tgt_logit, 1)
    torch.testing.assert_close(tc_maps, torch.relu(torch.einsum("bc,bchw->bhw", peer_weights, a)), rtol=1e-4, atol=1e-5)
    # ours: softmax over classes, probability of the target
    ours = ScoreCAM(model, layer, batch_size=7).explain(x)
    our_weights = torch.softmax(masked_logits, 2).gather(2, targets.view(-1, 1, 1).expand(-1, a.shape[1], 1))[..., 0]
    expected = torch.relu(torch.einsum("bc,bchw->bhw", our_weights, a))
    torch.testing.assert_close(ours.low_res, expected, rtol=1e-4, atol=1e-6)
    assert torch.equal(ours.targets, targets)
    # and the two definitions really differ
    assert float(pearson(our_weights, peer_weights).min()) < 0.999


def test_gradcampp_peer_epsilon_zeroes_small_gradients() -> None:
    """The documented difference: with small logits (gradients ~1e-6) pytorch-grad-cam's eps=1e-6 wipes out
    alpha and changes the map, while our default eps=0 keeps it (alpha = 1 / (2 + g * sum A))."""
    model = make_vgg()
    x = structured_images(3, 64, seed=3)
    base = GradCAMPlusPlus(model, "features.9").explain(x).low_res
    with torch.no_grad():
        model.fc.weight.mul_(1e-3)
        model.fc.bias.mul_(1e-3)
    try:
        scaled = GradCAMPlusPlus(model, "features.9").explain(x).low_res
        scaled_peer_eps = GradCAMPlusPlus(model, "features.9", eps=1e-6).explain(x).low_res
    finally:
        with torch.no_grad():
            model.fc.weight.mul_(1e3)
            model.fc.bias.mul_(1e3)
    assert float(pearson(base, scaled).min()) > 0.99999
    assert float(pearson(base, scaled_peer_eps).min()) < 0.99


def test_torchcam_gradcampp_documented_difference() -> None:
    """torchcam's GradCAMpp leaves alpha = g^2 (its in-place division hits a masked copy): check that reading
    against our captured activation/gradient, and that it is not our (pytorch-grad-cam's) definition."""
    model = make_vgg()
    x = structured_images(3, 64, seed=3)
    ours = GradCAMPlusPlus(model, "features.9")
    cap = ours.capture(x, None, "grad")
    peer = tcm.GradCAMpp(model, "features.9", input_shape=tuple(x.shape[1:]))
    try:
        scores = model(x)
        tc_map = peer(class_idx=cap.targets.tolist(), scores=scores, normalized=False)[0].detach()
    finally:
        peer.remove_hooks()
    g, a = cap.grads, cap.activations
    documented = torch.relu(torch.einsum("bc,bchw->bhw", (g * g * torch.relu(g)).sum((2, 3)), a))
    torch.testing.assert_close(tc_map, documented, rtol=1e-4, atol=1e-6 * float(documented.abs().max()))
    assert float(pearson(ours.explain(x).low_res, tc_map).min()) < 0.99
