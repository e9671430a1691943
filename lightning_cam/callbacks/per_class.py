"""Per-class curves ``cam/<method>/<metric>/<class name>`` (opt-in): every metric's mean per true class
(the predicted class when the batch has no labels), from the per-sample values the callback already
computes, in ``torchmetrics`` sum states (so DDP-safe).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["PerClassMetrics", "class_tag"]


def class_tag(name: str) -> str:
    """A class name as a key part: letters, digits, ``_`` and ``.`` kept, anything else ``_``.

    Example:
        >>> class_tag("traffic light/red")
        'traffic_light_red'
    """
    return re.sub(r"[^A-Za-z0-9_.]", "_", str(name)) or "_"


class PerClassMetrics(Metric):
    r"""Per method, metric and class: the mean of the per-sample values of the samples of that class,
    ``total[m, k] / count[m, k]`` (states ``(M, K)`` float64, summed across processes).

    Example:
        >>> pc = PerClassMetrics(["complexity"], ["circle", "square"])
        >>> pc.update({"complexity": torch.tensor([0.2, 0.4, float("nan")])}, torch.tensor([0, 0, 1]))
        >>> {k: round(float(v), 4) for k, v in pc.values("gradcam").items()}
        {'cam/gradcam/complexity/circle': 0.3}
    """

    full_state_update = False
    total: Tensor
    count: Tensor

    def __init__(self, metrics: Sequence[str], class_names: Sequence[str], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.metric_names = tuple(metrics)
        self.class_names = [class_tag(c) for c in class_names]
        shape = (len(self.metric_names), len(self.class_names))
        self.add_state("total", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: Mapping[str, Tensor], classes: Tensor) -> None:
        """``values``: metric name -> ``(B,)`` (NaN: left out); ``classes``: ``(B,)`` long. Classes outside
        ``[0, K)`` are left out. No host sync."""
        classes = classes.detach().to(self.total.device).long().reshape(-1)
        k = len(self.class_names)
        valid = (classes >= 0) & (classes < k)
        idx = classes.clamp(0, k - 1)
        for m, key in enumerate(self.metric_names):
            if key not in values:
                continue
            v = values[key].detach().to(self.total.device, torch.float64).reshape(-1)
            ok = torch.isfinite(v) & valid
            self.total[m].index_add_(0, idx, torch.where(ok, v, torch.zeros_like(v)))
            self.count[m].index_add_(0, idx, ok.double())

    def compute(self) -> Tensor:
        """``(2, M, K)`` float64: the means (NaN where a class had no sample) and the sample counts."""
        return torch.stack([self.total / self.count, self.count])

    def values(self, method: str) -> dict[str, Tensor]:
        """``{"cam/<method>/<metric>/<class>": value}`` (float32) for every (metric, class) with samples on
        some rank (a collective in DDP: call it on every rank; the decision is the same everywhere)."""
        with warnings.catch_warnings():  # a rank without samples still syncs its zeros
            warnings.filterwarnings("ignore", message=".*before the ``update`` method.*")
            stats = self.compute()
        value, count = stats[0].float(), stats[1].cpu()  # values stay on the device (sync_dist)
        return {f"cam/{method}/{key}/{cls}": value[m, k]
                for m, key in enumerate(self.metric_names) for k, cls in enumerate(self.class_names)
                if float(count[m, k]) > 0}
