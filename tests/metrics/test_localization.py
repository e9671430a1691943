"""Localization metric classes (metrics/localization.py): raw-input forms and option checks."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.metrics import EnergyPointingGame, IoU, PointingGame


def test_raw_input_forms_match_formulas() -> None:
    maps = torch.tensor([[[0.0, 0.5], [1.0, 0.2]]])
    mask = torch.tensor([[[False, True], [True, False]]])
    p, e, u = PointingGame(), EnergyPointingGame(), IoU(threshold=0.6)
    p.update(maps, mask)
    e.update(maps, mask)
    u.update(maps, mask)
    torch.testing.assert_close(p.compute(), torch.tensor(1.0))
    torch.testing.assert_close(e.compute(), torch.tensor(1.5 / 1.7))
    torch.testing.assert_close(u.compute(), torch.tensor(0.5))  # {1.0} vs two object pixels


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="threshold"):
        IoU(threshold=1.0)
    with pytest.raises(ValueError, match="tolerance"):
        PointingGame(tolerance=-2)
