"""``PerSampleMean``: the one state layout every lightning_cam metric shares."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics import Metric

__all__ = ["PerSampleMean"]


class PerSampleMean(Metric):
    r"""Mean of per-sample metric values over every sample seen on every process.

    .. math:: \mathrm{value} = \frac{\sum_{i \in \mathrm{finite}} v_i}{|\mathrm{finite}|}

    States (all summed across processes, so DDP gives the same value as one process over the same data):
    ``total`` (float64 sum of the finite values), ``count`` (how many) and ``num_skipped`` (samples whose
    value was NaN, e.g. a NaN in the map; they are left out of the mean and counted here).

    ``update(values)`` takes the ``(B,)`` per-sample tensor that :func:`lightning_cam.evaluate_batch`
    returns under the metric's name; subclasses also accept the raw inputs of their formula (see each
    class). An empty update changes nothing. :meth:`compute` before any finite sample returns 0
    (finite, with a warning) rather than NaN.

    Example:
        >>> m = PerSampleMean()
        >>> m.update(torch.tensor([1.0, float("nan"), 3.0]))
        >>> m.compute(), int(m.num_skipped)
        (tensor(2.), 1)
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

    def _values(self, *args: Tensor, **kwargs: Any) -> Tensor:
        """Per-sample values from the arguments of :meth:`update` (subclasses add raw-input forms)."""
        if len(args) != 1 or kwargs:
            raise TypeError(
                f"{type(self).__name__}.update takes one (B,) tensor of per-sample values, as returned by "
                "`evaluate_batch`."
            )
        return args[0]

    def update(self, *args: Tensor, **kwargs: Any) -> None:
        """Accumulate a batch of per-sample values (NaN samples are skipped and counted)."""
        values = torch.as_tensor(self._values(*args, **kwargs))
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

        Example:
            >>> m = PerSampleMean(); m.update(torch.tensor([0.5]))
            >>> fig, ax = m.plot()
        """
        return self._plot(val, ax)
