"""metrics/grouped.py: the shared grouped mean (sum states, NaN and invalid samples left out)."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.metrics.grouped import GroupedMean


def test_grouped_mean_and_its_names() -> None:
    m = GroupedMean((2, 2))
    m.add(torch.tensor([0, 3, 3, 1]), torch.tensor([1.0, 2.0, 4.0, float("inf")]), valid=torch.tensor([1, 1, 1, 1]) > 0)
    means, counts = m.means()
    assert counts.tolist() == [[1.0, 0.0], [0.0, 2.0]] and means[1, 1] == 3.0
    assert {k: float(v) for k, v in m.named([("a", (0, 0)), ("b", (0, 1)), ("c", (1, 1))]).items()} == {"a": 1.0,
                                                                                                      "c": 3.0}
    with pytest.raises(NotImplementedError, match="own methods"):
        m.update(torch.zeros(1))
