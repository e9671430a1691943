"""DDP-safe torchmetrics over the per-sample values of [`evaluate_batch`][lightning_cam.evaluate.evaluate_batch].

Each metric registers itself where its class is defined
([`register_metric`][lightning_cam.metrics.registry.register_metric]); `metric_spec(name).metric` is its
`torchmetrics.Metric` class:

>>> m = metric_spec("adcc").metric()
>>> m.update(torch.tensor([0.25, 0.75]))
>>> m.compute()
tensor(0.5000)
"""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest examples)

# The import order below is the registration order (the design table's): one block per module.
from lightning_cam.metrics.adcc import ADCC, AverageDrop, Coherency, Complexity, IncreaseInConfidence

# isort: split
from lightning_cam.metrics.perturbation import Deletion, Insertion

# isort: split
from lightning_cam.metrics.localization import EnergyPointingGame, IoU, PointingGame

# isort: split
from lightning_cam.metrics.base import PerSampleMean, PerSampleMetric
from lightning_cam.metrics.registry import (
    METRIC_REGISTRY,
    MetricInputs,
    MetricSpec,
    check_metric_names,
    default_metrics,
    localization_metrics,
    metric_names,
    metric_spec,
    register_metric,
)

METRIC_REGISTRY.load()  # any other metric module of this package, in name order

__all__ = [
    "ADCC",
    "AverageDrop",
    "Coherency",
    "Complexity",
    "Deletion",
    "EnergyPointingGame",
    "IncreaseInConfidence",
    "Insertion",
    "IoU",
    "MetricInputs",
    "MetricSpec",
    "PerSampleMean",
    "PerSampleMetric",
    "PointingGame",
    "check_metric_names",
    "default_metrics",
    "localization_metrics",
    "metric_names",
    "metric_spec",
    "register_metric",
]
