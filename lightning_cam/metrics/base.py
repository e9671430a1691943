"""The state layout every lightning_cam metric shares: a NaN-skipping mean of per-sample values.

Why not ``torchmetrics.aggregation.MeanMetric``: its ``nan_strategy="ignore"`` drops NaN samples without
counting them, its ``compute()`` is NaN before the first sample, and its states (``mean_value``,
``weight``) accumulate in the default dtype. Here a NaN sample (a NaN in the map) is *counted* in
``num_skipped`` so the callback can report it, ``compute()`` is a finite 0 with a warning before any
finite sample, and the sum is accumulated in float64 (``total``/``count``/``num_skipped``, all summed
across processes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import rank_zero_warn

__all__ = ["PerSampleMean", "PerSampleMetric"]


class PerSampleMetric(Metric):
    r"""Mean of per-sample metric values over every sample seen on every process.

    $$
    \mathrm{value} = \frac{\sum_{i \in \mathrm{finite}} v_i}{|\mathrm{finite}|}
    $$

    States (all summed across processes, so DDP gives the same value as one process over the same data):
    ``total`` (float64 sum of the finite values), ``count`` (how many) and ``num_skipped`` (samples whose
    value was NaN, e.g. a NaN in the map; they are left out of the mean and counted here).

    Subclasses define ``update`` with their explicit signature and pass the ``(B,)`` per-sample values
    to [`add_values`][lightning_cam.metrics.base.PerSampleMetric.add_values].
    [`compute`][lightning_cam.metrics.base.PerSampleMetric.compute] before any finite sample returns 0 (finite, with a
    warning)
    rather than NaN.
    """

    is_differentiable = False
    higher_is_better: bool | None = None
    full_state_update = False
    plot_lower_bound: float | None = 0.0
    plot_upper_bound: float | None = 1.0

    total: Tensor
    count: Tensor
    num_skipped: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("num_skipped", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def add_values(self, values: Tensor) -> None:
        """Accumulate ``(B,)`` per-sample values; NaN samples are skipped and counted, an empty batch is a no-op."""
        values = torch.as_tensor(values)
        if values.ndim > 1:
            raise ValueError(
                f"{type(self).__name__}.update expects a (B,) tensor of per-sample values, got shape "
                f"{tuple(values.shape)}."
            )
        values = values.detach().reshape(-1).to(device=self.total.device, dtype=torch.float64)
        nan = torch.isnan(values)
        self.total += torch.where(nan, torch.zeros_like(values), values).sum()
        self.count += (~nan).sum()
        self.num_skipped += nan.sum()

    def compute(self) -> Tensor:
        """The mean over all finite samples as a float32 scalar (0 when there were none)."""
        if int(self.count) == 0:
            rank_zero_warn(
                f"{type(self).__name__}.compute() was called before any finite sample was seen "
                f"({int(self.num_skipped)} skipped); returning 0.",
                category=UserWarning,
            )
            return torch.tensor(0.0, device=self.total.device)
        return (self.total / self.count).float()

    def plot(self, val: Tensor | list[Tensor] | None = None, ax: Any = None) -> Any:
        """Plot one value or a sequence of values (torchmetrics' plotting, with this metric's bounds).

        Examples:
            >>> m = PerSampleMean(); m.update(torch.tensor([0.5]))
            >>> fig, ax = m.plot()
        """
        return self._plot(val, ax)


class PerSampleMean(PerSampleMetric):
    r"""A [`PerSampleMetric`][lightning_cam.metrics.base.PerSampleMetric] updated with the per-sample values only:
    ``update(values)``.

    ``values`` is the ``(B,)`` tensor that [`lightning_cam.evaluate_batch`][lightning_cam.evaluate_batch] returns under
    the metric's
    name. Passing more than one tensor is an error naming the expected form.

    Examples:
        >>> m = PerSampleMean()
        >>> m.update(torch.tensor([1.0, float("nan"), 3.0]))
        >>> m.compute(), int(m.num_skipped)
        (tensor(2.), 1)
    """

    def update(self, values: Tensor, *unexpected: Tensor) -> None:
        """Accumulate ``(B,)`` per-sample values (NaN samples are skipped and counted).

        ``*unexpected`` only catches a second tensor, to answer it with the form this metric takes.
        """
        if unexpected:
            raise TypeError(
                f"{type(self).__name__}.update takes one (B,) tensor of per-sample values, as returned by "
                "`evaluate_batch`."
            )
        self.add_values(values)
