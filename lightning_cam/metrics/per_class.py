"""Per-class means: every metric's mean over the samples of each class, from the per-sample values
[`lightning_cam.evaluate_batch`][lightning_cam.evaluate_batch] returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch  # noqa: F401  (used by the doctest examples)
from torch import Tensor

from lightning_cam.metrics.grouped import GroupedMean

__all__ = ["PerClassMetrics"]


class PerClassMetrics(GroupedMean):
    r"""Per metric ``m`` and class ``k``: the mean of the per-sample values of the samples of class ``k``
    (a `GroupedMean` of shape ``(M, K)``).

    Examples:
        >>> pc = PerClassMetrics(["complexity"], 2)
        >>> pc.update({"complexity": torch.tensor([0.2, 0.4, float("nan")])}, torch.tensor([0, 0, 1]))
        >>> {k: round(float(v), 4) for k, v in pc.values(lambda m, c: f"{m}/{c}").items()}
        {'complexity/0': 0.3}
    """

    def __init__(self, metrics: Sequence[str], num_classes: int, **kwargs: Any) -> None:
        self.metric_names = tuple(metrics)
        self.num_classes = int(num_classes)
        super().__init__((len(self.metric_names), self.num_classes), **kwargs)

    def update(self, values: Mapping[str, Tensor], classes: Tensor) -> None:
        """``values``: metric name -> ``(B,)`` (NaN: left out); ``classes``: ``(B,)`` long. Classes outside
        ``[0, K)`` are left out. No host sync."""
        classes = classes.detach().to(self.total.device).long().reshape(-1)
        k = self.num_classes
        valid = (classes >= 0) & (classes < k)
        for m, key in enumerate(self.metric_names):
            if key in values:
                self.add(m * k + classes.clamp(0, k - 1), values[key], valid)

    def values(self, tag: Any) -> dict[str, Tensor]:
        """``{tag(metric, class index): mean}`` for every (metric, class) with samples on some rank (a collective
        in DDP)."""
        return self.named([(tag(key, c), (m, c)) for m, key in enumerate(self.metric_names)
                           for c in range(self.num_classes)])
