"""ROAD and ARCC: the imputation, the curves and ARCC equal pytorch-grad-cam's (its noise set to 0: it draws it
from the global RNG); the imputation's own properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam.metrics.arcc import ARCC as PgcARCC
from pytorch_grad_cam.metrics.perturbation_confidence import (
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

from lightning_cam import evaluate_batch
from lightning_cam.functional.road import noisy_linear_imputation, road_keep
from lightning_cam.methods import GradCAM

from ..methods.conftest import make_vgg, structured_images

ROAD_NAMES = ["road_morf", "road_lerf", "road", "arcc", "coherency", "complexity"]


@pytest.mark.parametrize("percentile", [10, 50, 90])
@pytest.mark.parametrize("most", [True, False], ids=["morf", "lerf"])
def test_the_kept_pixels_and_the_imputation_equal_pytorch_grad_cams(percentile: int, most: bool) -> None:
    g = torch.Generator().manual_seed(percentile)
    x, maps = torch.randn(2, 3, 24, 20, generator=g), torch.rand(2, 24, 20, generator=g)
    keep = road_keep(maps, percentile, most)
    remover = (RemoveMostRelevantFirst if most else RemoveLeastRelevantFirst)(percentile, NoisyLinearImputer(noise=0.0))
    for i in range(2):
        peer = remover(x[i], maps[i])
        ranked = maps[i] if most else 1 - maps[i]
        assert torch.equal(keep[i], ranked < torch.from_numpy(np.asarray(np.percentile(ranked.numpy(), percentile))))
        torch.testing.assert_close(noisy_linear_imputation(x[i : i + 1], keep[i : i + 1], noise=0.0)[0], peer,
                                   rtol=1e-5, atol=1e-5)


def test_the_road_curves_equal_pytorch_grad_cams_with_a_probability_target() -> None:
    model, x = make_vgg(), structured_images(3, 32, seed=2)
    cam = GradCAM(model, "features.9")
    res = cam.explain(x)
    ours = evaluate_batch(cam, x, metrics=ROAD_NAMES, result=res, road_noise=0.0, road_percentiles=(20, 50, 80))
    targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in res.targets]

    def averaged(remover: type) -> np.ndarray:
        return np.mean([PerturbationConfidenceMetric(remover(p, NoisyLinearImputer(noise=0.0)))(
            x, res.maps.numpy(), targets, model) for p in (20, 50, 80)], axis=0)

    morf, lerf = averaged(RemoveMostRelevantFirst), averaged(RemoveLeastRelevantFirst)
    np.testing.assert_allclose(ours["road_morf"].numpy(), morf, atol=1e-5)
    np.testing.assert_allclose(ours["road_lerf"].numpy(), lerf, atol=1e-5)
    np.testing.assert_allclose(ours["road"].numpy(), (lerf - morf) / 2, atol=1e-5)


def test_arcc_equals_pytorch_grad_cams(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = make_vgg(), structured_images(3, 32, seed=5)
    cam = GradCAM(model, "features.9")
    res = cam.explain(x)
    ours = evaluate_batch(cam, x, metrics=["arcc"], result=res, road_noise=0.0)["arcc"]
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)  # the peer's imputation noise, from the global RNG
    with PgcGradCAM(model=model, target_layers=[model.features[9]]) as peer_cam:
        peer = PgcARCC(peer_cam)(x, res.maps.numpy(), [ClassifierOutputSoftmaxTarget(int(t)) for t in res.targets],
                                 model)
    np.testing.assert_allclose(ours.numpy(), peer, atol=2e-4)


def test_the_imputation_solves_the_neighbour_mean_and_leaves_the_kept_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 9, 11, generator=g)
    keep = torch.rand(1, 9, 11, generator=g) > 0.6
    out = noisy_linear_imputation(x, keep, noise=0.0)
    assert torch.equal(out[:, :, keep[0]], x[:, :, keep[0]])
    w = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])
    weights = torch.nn.functional.conv2d(torch.ones(1, 1, 9, 11), w.view(1, 1, 3, 3), padding=1)
    means = torch.nn.functional.conv2d(out.view(2, 1, 9, 11), w.view(1, 1, 3, 3), padding=1) / weights
    removed = ~keep[0]
    torch.testing.assert_close(out.view(2, 1, 9, 11)[:, 0][:, removed], means[:, 0][:, removed], atol=1e-5, rtol=0)


def test_the_noise_is_private_the_same_for_every_image_and_a_keepless_image_is_nan() -> None:
    x = torch.zeros(3, 1, 6, 6)
    keep = torch.zeros(3, 6, 6, dtype=torch.bool)
    keep[:2, 0] = True
    state = torch.get_rng_state()
    out = noisy_linear_imputation(x, keep, noise=0.5)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(out[0], out[1])
    assert float(out[0, :, 1:].abs().max()) > 0 and torch.isnan(out[2]).all()
    torch.testing.assert_close(noisy_linear_imputation(x[:1], keep[:1], noise=0.5), out[:1])  # batch-independent
    with pytest.raises(ValueError, match="road_percentiles"):
        evaluate_batch(GradCAM(make_vgg(), "features.9"), structured_images(1, 16), metrics=["road"],
                       road_percentiles=[0, 50])
