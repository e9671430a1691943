"""views/drift.py: drift of the probe maps from the history."""

from __future__ import annotations

import torch

from lightning_cam.callbacks.probe import History
from lightning_cam.callbacks.views.drift import DriftView, probe_drift


def test_drift_needs_an_earlier_row() -> None:
    h = History()
    maps = torch.rand(4, 16, 16)
    h.add("gradcam", 0, maps, torch.zeros(4))
    h.add("gradcam", 2, maps.flip(-1), torch.zeros(4))
    assert probe_drift(h, "gradcam", 0) is None
    assert 0.5 < probe_drift(h, "gradcam", 2) < 1.5  # type: ignore[operator]
    assert DriftView.chart("cam/gradcam/adcc") is None
