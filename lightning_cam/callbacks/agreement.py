"""Method agreement ``cam/agreement/<a>__<b>``: the mean per-sample Pearson correlation between the maps of
two methods on the same scored samples, for every pair of the callback's methods.

The maps come from the metric pass (no extra forward); the sums live in a ``torchmetrics`` state summed
across ranks, so a 2-process run logs what a 1-process run over the same samples logs.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_cam.functional.adcc import pearson

__all__ = ["MethodAgreement", "agreement_tag"]


def agreement_tag(a: str, b: str) -> str:
    """The logged key of a pair of methods.

    Example:
        >>> agreement_tag("gradcam", "eigencam")
        'cam/agreement/gradcam__eigencam'
    """
    return f"cam/agreement/{a}__{b}"


class MethodAgreement(Metric):
    r"""Mean per-sample Pearson correlation of each pair of methods' maps.

    .. math:: \mathrm{agreement}(a, b) = \frac{1}{|S|} \sum_{i \in S} \rho(\mathrm{map}_a(x_i), \mathrm{map}_b(x_i))

    over the samples ``S`` both methods scored (a sample a method left out, e.g. a blank or non-finite map,
    is NaN in its maps and drops out of its pairs). ``ρ`` is :func:`lightning_cam.functional.adcc.pearson`.
    States ``total`` (float64) and ``count`` per pair, summed across processes.

    Batches are added method by method with :meth:`add` and closed with :meth:`update` (all on the device,
    no host sync).

    Example:
        >>> agree = MethodAgreement(["gradcam", "eigencam"])
        >>> x = torch.rand(4, 8, 8)
        >>> agree.add("gradcam", x)
        >>> agree.add("eigencam", 2 * x + 1)
        >>> agree.update()
        >>> {k: round(float(v), 4) for k, v in agree.values().items()}
        {'cam/agreement/gradcam__eigencam': 1.0}
    """

    full_state_update = False
    total: Tensor
    count: Tensor

    def __init__(self, methods: Sequence[str], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.pairs = list(itertools.combinations(tuple(methods), 2))
        n = len(self.pairs)
        self.add_state("total", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self._batch: dict[str, Tensor] = {}

    def add(self, method: str, maps: Tensor, index: Tensor | None = None, batch_size: int | None = None) -> None:
        """``method``'s maps of the current batch: ``(B, H, W)``, or ``(n, H, W)`` for the samples ``index``
        (``(n,)`` long) of a batch of ``batch_size`` (the others count as left out)."""
        maps = maps.detach().float()
        if index is not None and batch_size is not None:
            full = maps.new_full((batch_size, *maps.shape[1:]), float("nan"))
            maps = full.index_copy(0, index.to(maps.device), maps)
        self._batch[method] = maps

    def update(self) -> None:
        """Add the current batch's pairs (those whose two methods both :meth:`add`-ed maps) and clear it."""
        batch, self._batch = self._batch, {}
        for i, (a, b) in enumerate(self.pairs):
            if a not in batch or b not in batch or batch[a].shape != batch[b].shape:
                continue
            r = pearson(batch[a], batch[b]).to(self.total.device, torch.float64)
            ok = torch.isfinite(r)
            self.total[i] += torch.where(ok, r, torch.zeros_like(r)).sum()
            self.count[i] += ok.sum()

    def compute(self) -> Tensor:
        """``(2, P)`` float64: the mean correlation per pair (NaN without samples) and the sample count."""
        return torch.stack([self.total / self.count, self.count])

    def values(self) -> dict[str, Tensor]:
        """``{agreement_tag(a, b): value}`` (float32) for the pairs with samples on some rank (a collective in
        DDP: call it on every rank; the decision is the same everywhere)."""
        with warnings.catch_warnings():  # a rank without samples still syncs its zeros
            warnings.filterwarnings("ignore", message=".*before the ``update`` method.*")
            stats = self.compute()
        value, count = stats[0].float(), stats[1].cpu()  # values stay on the device (sync_dist)
        return {agreement_tag(a, b): value[i] for i, (a, b) in enumerate(self.pairs) if float(count[i]) > 0}
