"""DDP-safe torchmetrics over the per-sample values of :func:`lightning_cam.evaluate_batch`.

``METRICS`` maps each metric name to its ``torchmetrics.Metric`` class; both come from the one table
:data:`~lightning_cam.metrics.registry.METRIC_SPECS`:

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
from lightning_cam.metrics.perturbation import Deletion, Insertion
from lightning_cam.metrics.registry import (
    DEFAULT_METRICS,
    LOCALIZATION_METRICS,
    METRIC_NAMES,
    METRIC_SPECS,
    MetricSpec,
    check_metric_names,
)

__all__ = [
    "ADCC",
    "DEFAULT_METRICS",
    "LOCALIZATION_METRICS",
    "METRICS",
    "METRIC_SPECS",
    "METRIC_NAMES",
    "AverageDrop",
    "Coherency",
    "Complexity",
    "Deletion",
    "EnergyPointingGame",
    "IncreaseInConfidence",
    "Insertion",
    "IoU",
    "MetricSpec",
    "PerSampleMean",
    "PerSampleMetric",
    "PointingGame",
    "check_metric_names",
]

#: metric name -> ``torchmetrics.Metric`` subclass (read from :data:`~lightning_cam.metrics.registry.METRIC_SPECS`).
METRICS: dict[str, type[PerSampleMetric]] = {name: spec.metric for name, spec in METRIC_SPECS.items()}
