"""Insertion/Deletion metric classes (metrics/perturbation.py): values-only updates."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.metrics import Deletion, Insertion


def test_bad_update_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="one \\(B,\\) tensor"):
        Insertion().update(torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="per-sample values"):
        Deletion().update(torch.zeros(2, 3))
