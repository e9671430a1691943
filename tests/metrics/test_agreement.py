"""metrics/agreement.py: method agreement states add up across ranks like one process."""

from __future__ import annotations

import pytest
import torch

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
