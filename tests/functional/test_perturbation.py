"""Insertion/Deletion maths: schedule, ranking, perturbed inputs, baselines, AUC."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.functional.perturbation import (
    curve_auc,
    insertion_deletion,
    make_baseline,
    perturb,
    perturbation_counts,
    rank_positions,
)
from lightning_cam.targets.task import target_probability


def test_counts_schedule() -> None:
    assert perturbation_counts(10, 4) == [0, 3, 6, 9, 10]
    assert perturbation_counts(10, 1) == [0, 10]
    assert perturbation_counts(3, 10) == [0, 1, 2, 3]
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="steps"):
            perturbation_counts(10, bad)  # type: ignore[arg-type]


def test_ranks_are_stable_on_ties() -> None:
    maps = torch.tensor([[[0.2, 0.9], [0.2, 0.5]], [[0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(rank_positions(maps), torch.tensor([[2, 0, 3, 1], [0, 1, 2, 3]]))


def test_perturb_deletion_and_insertion() -> None:
    x = torch.arange(1.0, 5.0).view(1, 1, 2, 2).expand(1, 2, 2, 2)
    base = torch.zeros_like(x)
    r = rank_positions(torch.tensor([[[0.1, 0.9], [0.5, 0.0]]]))  # order: pixel 1, 2, 0, 3
    out = perturb(x, base, r, torch.tensor([0, 0, 0]), torch.tensor([2, 2, 4]), torch.tensor([False, True, False]))
    expected = torch.tensor([[1.0, 0.0, 0.0, 4.0], [0.0, 2.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(out.flatten(2)[:, 0], expected)
    torch.testing.assert_close(out[:, 0], out[:, 1])  # the mask is shared across channels


def test_baselines() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    assert (make_baseline(x, "zeros") == 0).all()
    mean = make_baseline(x, "mean")
    torch.testing.assert_close(mean[:, :, 5, 7], x.mean(dim=(2, 3)))
    blur = make_baseline(x, "blur", sigma=2.0)
    assert blur.shape == x.shape and blur.std() < x.std()
    const = torch.full((1, 3, 16, 16), 0.25)
    torch.testing.assert_close(make_baseline(const, "blur"), const)  # a blur keeps a constant image
    torch.testing.assert_close(make_baseline(x, torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1))[1, :, 0, 0],
                               torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline(x, "noise")
    with pytest.raises(ValueError, match="broadcast"):
        make_baseline(x, torch.zeros(5))


def test_curve_auc_trapezoid() -> None:
    scores = torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    fractions = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(curve_auc(scores, fractions), torch.tensor([0.5, 1.0]))
    uneven = curve_auc(torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([0.0, 0.9, 1.0]))
    torch.testing.assert_close(uneven, torch.tensor([0.45 + 0.1]))


def test_insertion_deletion_computes_only_the_curves_asked_for() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, maps, t = torch.randn(2, 3, 2, 2), torch.rand(2, 2, 2), torch.tensor([0, 2])
    with torch.no_grad():
        y = target_probability(net(x), t)
        both = insertion_deletion(net, x, maps, t, y, steps=2, batch_size=3)
        only = insertion_deletion(net, x, maps, t, y, which={"deletion"}, steps=2, batch_size=1)
    assert set(only) == {"deletion"}
    torch.testing.assert_close(only["deletion"], both["deletion"])  # chunking does not change the values
    with pytest.raises(ValueError, match=r"`which` names \['rise'\]"):
        insertion_deletion(net, x, maps, t, y, which=("rise",))
