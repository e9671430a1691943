"""functional/finite.py: ``finite_rows`` equals ``isfinite(...).all`` for every kind of non-finite value."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.functional.finite import finite_rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_finite_rows_equals_isfinite_all(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(64, 3, 9, 9, generator=g) * 1e3).to(dtype)
    bad = torch.randint(0, 64, (12,), generator=g)
    x.view(64, -1)[bad[:4], 5] = float("nan")
    x.view(64, -1)[bad[4:8], 7] = float("inf")
    x.view(64, -1)[bad[8:], 11] = -float("inf")
    x[3] = torch.finfo(dtype).max  # the largest finite values: no overflow in the sum
    assert torch.equal(finite_rows(x), torch.isfinite(x).flatten(1).all(1))
