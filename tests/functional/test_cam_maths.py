"""The pure CAM maths in lightning_cam.functional against explicit per-sample, per-channel loops (float64)."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.functional import (
    eigencam_map,
    fakecam_map,
    gradcam_weights,
    gradcampp_weights,
    hirescam_map,
    layercam_map,
    minmax_normalize,
    postprocess_maps,
    scorecam_masks,
    scorecam_weights,
    upsample_maps,
    weighted_sum,
    xgradcam_weights,
)


@pytest.fixture
def ag() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.relu(torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64))
    grads = torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64)
    return a, grads


def test_gradcam_and_weighted_sum(ag: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, g = ag
    w = gradcam_weights(g)
    for b in range(3):
        for k in range(4):
            assert torch.isclose(w[b, k], g[b, k].sum() / 30)
        expected = sum(w[b, k] * a[b, k] for k in range(4))
        torch.testing.assert_close(weighted_sum(w, a)[b], expected)


def test_gradcampp_against_the_formula(ag: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, g = ag
    g = g.clone()
    g[0, 0, 0, 0] = 0.0
    w = gradcampp_weights(a, g)
    for b in range(3):
        for k in range(4):
            s = a[b, k].sum()
            total = torch.zeros((), dtype=torch.float64)
            for i in range(5):
                for j in range(6):
                    gij = g[b, k, i, j]
                    if gij != 0:
                        alpha = gij**2 / (2 * gij**2 + s * gij**3)
                        total += alpha * torch.relu(gij)
            assert torch.isclose(w[b, k], total), (b, k)
    eps_w = gradcampp_weights(a, g * 1e-4, eps=1e-6)
    assert (eps_w.abs() < w.abs() * 1e-3).all(), "a peer-style epsilon dominates tiny gradients"


def test_xgradcam_layercam_hirescam(ag: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, g = ag
    w = xgradcam_weights(a, g)
    torch.testing.assert_close(w, (a * g).sum((2, 3)) / a.sum((2, 3)))
    torch.testing.assert_close(layercam_map(a, g), sum(torch.relu(g[:, k]) * a[:, k] for k in range(4)))
    torch.testing.assert_close(hirescam_map(a, g), sum(g[:, k] * a[:, k] for k in range(4)))
    zero = torch.zeros_like(a)
    assert torch.equal(xgradcam_weights(zero, g), torch.zeros(3, 4, dtype=torch.float64))
    assert torch.equal(gradcampp_weights(a, torch.zeros_like(g)), torch.zeros(3, 4, dtype=torch.float64))


def test_eigencam_projection_and_sign(ag: tuple[torch.Tensor, torch.Tensor]) -> None:
    a, _ = ag
    out = eigencam_map(a)
    for b in range(3):
        m = a[b].reshape(4, -1).T
        m = m - m.mean(0)
        _, _, vh = torch.linalg.svd(m)
        proj = (m @ vh[0]).view(5, 6)
        mean = a[b].mean(0)
        sign = 1.0 if float((proj * (mean - mean.mean())).sum()) >= 0 else -1.0
        torch.testing.assert_close(out[b], sign * proj)
    # flipping the sign of the data cannot flip the map's agreement with the mean activation
    flipped = eigencam_map(-a)
    mean = (-a).mean(1).flatten(1)
    assert ((flipped.flatten(1) * (mean - mean.mean(1, keepdim=True))).sum(1) >= 0).all()
    # a single bright spot in every channel is where the map peaks
    spot = torch.zeros(2, 3, 4, 4)
    spot[:, :, 2, 1] = torch.tensor([1.0, 2.0, 3.0])
    assert (eigencam_map(spot).flatten(1).argmax(1) == 2 * 4 + 1).all()


def test_minmax_normalize_constant_and_scales() -> None:
    maps = torch.stack([torch.zeros(4, 4), torch.full((4, 4), 3.0), torch.arange(16.0).view(4, 4)])
    out = minmax_normalize(maps)
    assert torch.equal(out[0], torch.zeros(4, 4)) and torch.equal(out[1], torch.zeros(4, 4))
    assert out[2].min() == 0 and out[2].max() == 1
    torch.testing.assert_close(minmax_normalize(maps[2:] * 1e-30), out[2:])  # tiny maps still normalise


def test_postprocess_relu_upsample_normalise() -> None:
    low = torch.tensor([[[-1.0, 2.0], [0.0, 4.0]], [[-1.0, -2.0], [-3.0, -4.0]]])
    maps, relu = postprocess_maps(low, (6, 6))
    assert torch.equal(relu, torch.relu(low))
    assert maps.shape == (2, 6, 6) and maps.dtype == torch.float32
    assert torch.equal(maps[1], torch.zeros(6, 6))
    assert maps[0].min() == 0 and maps[0].max() == 1
    up = upsample_maps(torch.relu(low[:1]), (6, 6))
    torch.testing.assert_close(maps[0], (up[0] - up[0].min()) / (up[0].max() - up[0].min()))


def test_scorecam_masks_and_weights() -> None:
    a = torch.randn(2, 3, 4, 4)
    a[1, 2] = 5.0
    masks = scorecam_masks(a, (8, 8))
    assert masks.shape == (2, 3, 8, 8) and masks.min() >= 0 and masks.max() <= 1
    assert torch.equal(masks[1, 2], torch.zeros(8, 8))
    up = torch.nn.functional.interpolate(a[:1, :1], size=(8, 8), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(masks[0, 0], (up - up.min()) / (up.max() - up.min()))
    logits = torch.randn(2, 3, 5)
    w = scorecam_weights(logits, torch.tensor([4, 1]))
    torch.testing.assert_close(w, torch.stack([torch.softmax(logits[0], -1)[:, 4], torch.softmax(logits[1], -1)[:, 1]]))


def test_fakecam_map() -> None:
    out = fakecam_map(3, (5, 7))
    assert out.shape == (3, 5, 7) and out.sum() == 3 * (35 - 1) and (out[:, 0, 0] == 0).all()


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, h, w\)"):
        gradcam_weights(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        upsample_maps(torch.zeros(2, 3, 4, 4), (8, 8))
