"""metrics/per_class.py: per-class means, classes out of range left out."""

from __future__ import annotations

import torch

from lightning_cam.metrics.per_class import PerClassMetrics


def test_per_class_means_leave_out_nan_and_unknown_classes() -> None:
    pc = PerClassMetrics(["complexity", "adcc"], 2)
    pc.update({"complexity": torch.tensor([0.2, 0.4, 0.9, 0.5]), "adcc": torch.tensor([float("nan"), 1.0, 0.0, 2.0])},
              torch.tensor([0, 0, 1, 7]))
    values = {k: round(float(v), 4) for k, v in pc.values(lambda m, c: f"{m}/{c}").items()}
    assert values == {"complexity/0": 0.3, "complexity/1": 0.9, "adcc/0": 1.0, "adcc/1": 0.0}
