"""Random-CAM: pytorch-grad-cam's map given the same weights; the weights' law; no global RNG drawn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import RandomCAM as PgcRandomCAM

from lightning_cam.functional import random_weights
from lightning_cam.methods.randomcam import RandomCAM

from .conftest import PARITY_SETUPS, assert_maps_match, parity_batches, parity_model, pgc_low_res


@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
def test_randomcam_is_pytorch_grad_cams_map_given_the_same_weights(kind: str, layer: str, size: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    model = parity_model(kind)
    informative = 0
    for seed, x in enumerate(parity_batches(size)):
        res = RandomCAM(model, layer, seed=seed).explain(x)
        weights = random_weights(x.shape[0], 512 if kind == "resnet" else 32, seed).double().numpy()
        monkeypatch.setattr(np.random, "uniform", lambda low, high, size, w=weights: w[: size[0], : size[1]])
        peer, _ = pgc_low_res(PgcRandomCAM, model, layer, x, None)
        informative += assert_maps_match(res.low_res, peer)
    assert informative >= 3


def test_the_weights_are_uniform_on_minus_one_one_and_the_global_rngs_untouched() -> None:
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    draws = torch.cat([random_weights(1, 1000, seed)[0] for seed in range(20)])
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert float(draws.min()) >= -1 and float(draws.max()) <= 1
    # 20 000 draws: mean 0 and variance 1/3 within 5 standard errors, each decile near 10 %
    assert abs(float(draws.mean())) < 5 * (1 / 3 / draws.numel()) ** 0.5
    assert abs(float(draws.var()) - 1 / 3) < 0.01
    counts = torch.histc(draws, bins=10, min=-1, max=1) / draws.numel()
    assert float((counts - 0.1).abs().max()) < 0.01


def test_a_samples_map_does_not_depend_on_its_batch_and_seeds_differ() -> None:
    model = parity_model("vgg")
    x = parity_batches(64)[0]
    cam = RandomCAM(model, "features.9", seed=3)
    torch.testing.assert_close(cam(x)[1:2], cam(x[1:2]))
    assert not torch.allclose(cam(x), RandomCAM(model, "features.9", seed=4)(x))
    assert cam.needs() == "activation"
