"""``GroupedMean``: a mean per group of per-sample values (a pair of methods, a metric and a class), in
float64 sum states summed across processes; the base of `MethodAgreement`
and `PerClassMetrics`."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["GroupedMean"]


class GroupedMean(Metric):
    r"""``total[g] / count[g]`` for every group ``g`` of a fixed ``shape`` (states float64, summed across ranks).

    $$
    \mathrm{mean}_g = \frac{\sum_{i \in g,\ \mathrm{finite}} v_i}{|\{i \in g : v_i \text{ finite}\}|}
    $$

    Subclasses add values with `add` (device tensors only, no host sync) and name the groups in
    `named`.

    Examples:
        >>> m = GroupedMean((2,))
        >>> m.add(torch.tensor([0, 0, 1]), torch.tensor([1.0, 3.0, float("nan")]))
        >>> m.means()
        (tensor([2., nan], dtype=torch.float64), tensor([2., 0.], dtype=torch.float64))
    """

    full_state_update = False
    total: Tensor
    count: Tensor

    def __init__(self, shape: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def add(self, group: Tensor, values: Tensor, valid: Tensor | None = None) -> None:
        """Add ``values`` ``(n,)`` to the flat group indices ``group`` ``(n,)``; non-finite values and those
        where ``valid`` is False are left out."""
        values = values.detach().to(self.total.device, torch.float64).reshape(-1)
        ok = torch.isfinite(values)
        if valid is not None:
            ok = ok & valid.to(ok.device)
        group = group.to(self.total.device).long().reshape(-1)
        self.total.view(-1).index_add_(0, group, torch.where(ok, values, torch.zeros_like(values)))
        self.count.view(-1).index_add_(0, group, ok.double())

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} is updated through its own methods, not update().")

    def compute(self) -> Tensor:
        """``(2, *shape)`` float64: the means (NaN without samples) and the sample counts."""
        return torch.stack([self.total / self.count, self.count])

    def means(self) -> tuple[Tensor, Tensor]:
        """``(means, counts)`` after the cross-rank sync (a collective in DDP: call it on every rank)."""
        with warnings.catch_warnings():  # a rank without samples still syncs its zeros
            warnings.filterwarnings("ignore", message=".*before the ``update`` method.*")
            stats = self.compute()
        return stats[0], stats[1]

    def named(self, names: list[tuple[str, tuple[int, ...]]]) -> dict[str, Tensor]:
        """``{name: mean}`` (float32, on the device for ``sync_dist``) of the groups ``index`` in ``names`` that
        had samples on some rank; the decision is the same on every rank."""
        value, count = self.means()
        value, count = value.float(), count.cpu()
        return {name: value[index] for name, index in names if float(count[index]) > 0}
