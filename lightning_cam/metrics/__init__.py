"""DDP-safe torchmetrics over the per-sample values of :func:`lightning_cam.evaluate_batch`.

``METRICS`` maps each metric name accepted by ``evaluate_batch`` to its ``torchmetrics.Metric`` class:

>>> m = METRICS["adcc"]()
>>> m.update(torch.tensor([0.25, 0.75]))
>>> m.compute()
tensor(0.5000)
"""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest examples)

from torchmetrics import Metric

from lightning_cam.metrics.adcc import ADCC, AverageDrop, Coherency, Complexity, IncreaseInConfidence
from lightning_cam.metrics.base import PerSampleMean
from lightning_cam.metrics.localization import EnergyPointingGame, IoU, PointingGame
from lightning_cam.metrics.perturbation import Deletion, Insertion

__all__ = [
    "ADCC",
    "METRICS",
    "AverageDrop",
    "Coherency",
    "Complexity",
    "Deletion",
    "EnergyPointingGame",
    "IncreaseInConfidence",
    "Insertion",
    "IoU",
    "PerSampleMean",
    "PointingGame",
]

#: metric name (as in ``evaluate_batch``) -> ``torchmetrics.Metric`` subclass.
METRICS: dict[str, type[Metric]] = {
    "average_drop": AverageDrop,
    "increase": IncreaseInConfidence,
    "coherency": Coherency,
    "complexity": Complexity,
    "adcc": ADCC,
    "insertion": Insertion,
    "deletion": Deletion,
    "pointing_game": PointingGame,
    "energy_pointing_game": EnergyPointingGame,
    "iou": IoU,
}
