"""metrics/agreement.py: method agreement states add up across ranks like one process; the averaged maps stay within
the documented bound of the full-resolution correlation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_cam.functional.adcc import pearson
from lightning_cam.metrics.agreement import MethodAgreement


def test_agreement_states_add_up_like_one_process() -> None:
    x, y = torch.rand(6, 8, 8), torch.rand(6, 8, 8)
    whole, half0, half1 = MethodAgreement(["a", "b"]), MethodAgreement(["a", "b"]), MethodAgreement(["a", "b"])
    for metric, rows in ((whole, slice(0, 6)), (half0, slice(0, 3)), (half1, slice(3, 6))):
        metric.add_maps("a", x[rows])
        metric.add_maps("b", y[rows])
        metric.update()
    half0.total += half1.total  # what the sum-reduce of the states does across ranks
    half0.count += half1.count
    tag = "{}__{}".format
    assert half0.values(tag)["a__b"] == pytest.approx(float(whole.values(tag)["a__b"]))
    # a sample one method left out (index) drops out of the pair
    left = MethodAgreement(["a", "b"])
    left.add_maps("a", x[[0, 2]], index=torch.tensor([0, 2]), batch_size=3)
    left.add_maps("b", y[:3])
    left.update()
    assert int(left.count[0]) == 2
    assert MethodAgreement(["a"]).values(tag) == {}  # one method: no pair


@pytest.mark.parametrize("grid, bound", [(7, 0.002), (14, 0.005), (28, 0.0075)])
def test_agreement_on_averaged_maps_is_within_its_documented_bound(grid: int, bound: float) -> None:
    g = torch.Generator().manual_seed(grid)
    low = torch.rand(2, 64, 1, grid, grid, generator=g)
    a, b = (F.interpolate(x, size=224, mode="bilinear", align_corners=False)[:, 0] for x in (low[0], low[1]))
    b = 0.5 * a + b  # partly agreeing maps
    full, pooled = MethodAgreement(["a", "b"], size=None), MethodAgreement(["a", "b"])
    for metric in (full, pooled):
        metric.add_maps("a", a)
        metric.add_maps("b", b)
        metric.update()
    exact = pearson(a, b).mean()
    assert torch.allclose(full.values(lambda x, y: "ab")["ab"], exact, atol=1e-6)  # size=None: `pearson` itself
    assert abs(float(pooled.values(lambda x, y: "ab")["ab"]) - float(exact)) <= bound
    per_sample = pearson(*(F.adaptive_avg_pool2d(x[:, None], 64)[:, 0] for x in (a, b))) - pearson(a, b)
    assert float(per_sample.abs().max()) <= bound  # the docstring's figure: the worst sample
