"""Spearman and the 1-D SSIM against SciPy, scikit-image and Quantus's own similarity functions; the other-class
table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_cam.functional.pairs import other_classes
from lightning_cam.functional.randomization import average_ranks, spearman, ssim_1d

quantus = pytest.importorskip("quantus")


def _maps(ties: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    a, b = torch.rand(6, 12, 12, generator=g), torch.rand(6, 12, 12, generator=g)
    if ties:  # ReLU'd, normalised CAMs: zeros and repeated values
        a, b = (a * 4 - 1).clamp(min=0).round() / 3, (b * 3).round() / 3
    return a, b


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_spearman_and_ssim_equal_quantus(ties: bool) -> None:
    from quantus.functions.similarity_func import correlation_spearman, ssim

    a, b = _maps(ties)
    flat_a, flat_b = a.flatten(1).double().numpy(), b.flatten(1).double().numpy()
    expected = np.array([correlation_spearman(x, y) for x, y in zip(flat_a, flat_b, strict=True)])
    np.testing.assert_allclose(spearman(a, b).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(ssim_1d(a, b).numpy(), ssim(flat_a, flat_b, batched=True), atol=1e-6)


def test_the_edges() -> None:
    x = torch.rand(2, 30)
    const = torch.zeros(2, 30)
    assert torch.isnan(spearman(x, const)).all()  # no order to correlate
    assert torch.isnan(ssim_1d(const, const)).all()  # no range
    torch.testing.assert_close(spearman(x, 2 * x + 1), torch.ones(2))
    torch.testing.assert_close(average_ranks(torch.tensor([[0.0, 0.0, 0.0]])), torch.tensor([[2.0, 2.0, 2.0]],
                                                                                            dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 7 values"):
        ssim_1d(torch.rand(1, 6), torch.rand(1, 6))


def test_other_classes_is_a_fixed_uniform_table() -> None:
    targets = torch.arange(10).repeat(500)
    others = other_classes(targets, 10, seed=3)
    assert bool((others != targets).all())
    assert torch.equal(others[:10], others[10:20])  # fixed per class, whatever the batch
    assert torch.equal(other_classes(targets[:10].flip(0), 10, seed=3), others[:10].flip(0))
    table = torch.stack([other_classes(torch.arange(10), 10, seed=s) for s in range(2000)])
    share = torch.stack([(table == k).float().mean(0) for k in range(10)])  # (other, class)
    off = share[~torch.eye(10, dtype=torch.bool)]
    assert float(off.min()) > 0.08 and float(off.max()) < 0.145  # uniform over the 9 others: 1/9 each
    assert other_classes(torch.tensor([0, 1]), 2, seed=0).tolist() == [1, 0]
    with pytest.raises(ValueError, match="at least 2 classes"):
        other_classes(torch.tensor([0]), 1, seed=0)
