"""Formulas of lightning_cam.functional.adcc: hand-computed cases, edge cases, grad-cam agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.arcc import Complexity as GCComplexity
from pytorch_grad_cam.metrics.arcc import batch_pearson_coherency

from lightning_cam.functional.adcc import (
    adcc,
    average_drop,
    coherency,
    complexity,
    increase_in_confidence,
    pearson,
)

NAN = float("nan")


def test_average_drop_hand_computed_and_edges() -> None:
    y = torch.tensor([0.8, 0.5, 0.0, 0.4, 0.0])
    o = torch.tensor([0.2, 0.9, 0.0, 0.0, 0.3])
    # 100*(0.6/0.8)=75; increase -> 0; Y=0 -> 0 (nothing to drop); O=0 -> drop 100; Y=0<O -> 0
    torch.testing.assert_close(average_drop(y, o), torch.tensor([75.0, 0.0, 0.0, 100.0, 0.0]))
    assert torch.isfinite(average_drop(y, o)).all()


def test_average_drop_nan_propagates_per_sample() -> None:
    got = average_drop(torch.tensor([0.5, NAN]), torch.tensor([0.25, 0.1]))
    assert got[0] == 50.0 and torch.isnan(got[1])


def test_increase_hand_computed_and_nan() -> None:
    y = torch.tensor([0.5, 0.5, 0.5, NAN])
    o = torch.tensor([0.6, 0.5, 0.1, 0.9])
    got = increase_in_confidence(y, o)
    torch.testing.assert_close(got[:3], torch.tensor([100.0, 0.0, 0.0]))
    assert torch.isnan(got[3])


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="same shape"):
        average_drop(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        adcc(torch.zeros(2), torch.zeros(2), torch.zeros(3))


def test_pearson_hand_computed() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 3.0, 2.0, 4.0]])
    # cov = (1.5*1.5 + 0.5*-0.5 + -0.5*0.5 + 1.5*1.5)/3 = 4/3 ; var = 5/3 each -> rho = 0.8
    torch.testing.assert_close(pearson(a, b), torch.tensor([0.8]))
    torch.testing.assert_close(pearson(a, -a), torch.tensor([-1.0]))


def test_coherency_edges_constant_maps_are_half() -> None:
    m = torch.tensor([[[0.0, 0.5], [1.0, 0.2]]])
    zeros, ones = torch.zeros_like(m), torch.ones_like(m)
    torch.testing.assert_close(coherency(m, m), torch.tensor([1.0]))
    torch.testing.assert_close(coherency(m, 1 - m), torch.tensor([0.0]))
    for a, b in ((m, zeros), (zeros, m), (zeros, zeros), (ones, ones), (m, 0.3 * ones)):
        got = coherency(a, b)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, torch.tensor([0.5]))


def test_coherency_stays_in_unit_interval() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(64, 7, 7, generator=g)
    got = coherency(a, a * 3.0)  # exactly correlated, may round above 1 without the clamp
    assert (got <= 1.0).all() and (got >= 0.0).all()
    torch.testing.assert_close(got, torch.ones(64))


def test_complexity_hand_computed_and_edges() -> None:
    maps = torch.tensor([[[0.0, 1.0], [0.5, 0.5]], [[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(complexity(maps), torch.tensor([0.5, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        complexity(torch.zeros(4))


def test_adcc_hand_computed() -> None:
    got = adcc(torch.tensor([0.9]), torch.tensor([0.3]), torch.tensor([40.0]))
    expected = 3.0 / (1 / 0.9 + 1 / 0.7 + 1 / 0.6)
    torch.testing.assert_close(got, torch.tensor([expected]))
    torch.testing.assert_close(adcc(torch.ones(1), torch.zeros(1), torch.zeros(1)), torch.ones(1))


def test_adcc_edges_are_finite_zero() -> None:
    coh = torch.tensor([1.0, 0.0, 0.8, 0.8])
    cplx = torch.tensor([1.0, 0.2, 0.2, 0.2])
    drop = torch.tensor([10.0, 10.0, 100.0, 0.0])
    got = adcc(coh, cplx, drop)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[:3], torch.zeros(3))  # complexity 1, coherency 0, drop 100 %
    torch.testing.assert_close(got[3], torch.tensor(3.0 / (1 / 0.8 + 1 / 0.8 + 1.0)))


def test_adcc_nan_propagates() -> None:
    got = adcc(torch.tensor([NAN, 0.5]), torch.tensor([0.5, NAN]), torch.tensor([0.0, 0.0]))
    assert torch.isnan(got).all()


# --- agreement with pytorch-grad-cam (a reference nobody here wrote) ----------------------------------


def _maps(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(6, 14, 14, generator=g) ** 2
    maps[1] = 0.0  # all-zero map (what the engine returns for a constant map)
    maps[2] = 1.0  # all-ones map
    maps[3, 0, 0] = 0.0  # Fake-CAM-like
    maps[3, 1:] = 1.0
    maps[3, 0, 1:] = 1.0
    return maps


def test_complexity_equals_grad_cam() -> None:
    maps = _maps(1)
    expected = GCComplexity()(maps.numpy())
    torch.testing.assert_close(complexity(maps), torch.from_numpy(expected).float(), rtol=1e-6, atol=1e-7)


def test_coherency_equals_grad_cam_pearson() -> None:
    a, b = _maps(2), _maps(3)
    b[4] = a[4]  # identical maps -> coherency 1
    b[5] = 1.0 - a[5]  # anti-correlated -> 0
    expected = (batch_pearson_coherency(b.numpy(), a.numpy()) + 1) / 2  # grad-cam: (mixed, original)
    got = coherency(a, b)
    # grad-cam does not clamp; its values already lie in [0, 1] up to one float32 rounding step
    torch.testing.assert_close(got, torch.from_numpy(np.clip(expected, 0, 1)).float(), rtol=0, atol=1e-6)
    assert got[1] == 0.5 and got[2] == 0.5
