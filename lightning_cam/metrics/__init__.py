"""DDP-safe torchmetrics over the per-sample values of :func:`lightning_cam.evaluate_batch`.

``METRICS`` maps each name of :data:`~lightning_cam.metrics.names.METRIC_NAMES` to its
``torchmetrics.Metric`` class:

>>> m = METRICS["adcc"]()
>>> m.update(torch.tensor([0.25, 0.75]))
>>> m.compute()
tensor(0.5000)
"""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest examples)

from lightning_cam.metrics.adcc import ADCC, AverageDrop, Coherency, Complexity, IncreaseInConfidence
from lightning_cam.metrics.base import PerSampleMean, PerSampleMetric
from lightning_cam.metrics.localization import EnergyPointingGame, IoU, PointingGame
from lightning_cam.metrics.names import DEFAULT_METRICS, LOCALIZATION_METRICS, METRIC_NAMES, check_metric_names
from lightning_cam.metrics.perturbation import Deletion, Insertion

__all__ = [
    "ADCC",
    "DEFAULT_METRICS",
    "LOCALIZATION_METRICS",
    "METRICS",
    "METRIC_NAMES",
    "AverageDrop",
    "Coherency",
    "Complexity",
    "Deletion",
    "EnergyPointingGame",
    "IncreaseInConfidence",
    "Insertion",
    "IoU",
    "PerSampleMean",
    "PerSampleMetric",
    "PointingGame",
    "check_metric_names",
]

#: metric name (as in :data:`~lightning_cam.metrics.names.METRIC_NAMES`) -> ``torchmetrics.Metric`` subclass.
METRICS: dict[str, type[PerSampleMetric]] = {
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
if tuple(METRICS) != METRIC_NAMES:  # the names have one home: names.py; this table must follow it
    raise ImportError(f"lightning_cam.metrics.METRICS {list(METRICS)} does not follow METRIC_NAMES {METRIC_NAMES}.")
