r"""Method agreement: the mean per-sample Pearson correlation between the maps of two methods on the same
scored samples, for every pair of methods.

$$
\mathrm{agreement}(a, b) = \frac{1}{|S|} \sum_{i \in S} \rho(\mathrm{map}_a(x_i), \mathrm{map}_b(x_i))
$$

over the samples ``S`` both methods scored (a sample a method left out, e.g. a blank or non-finite map, is
NaN in its maps and drops out of its pairs). ``ρ`` is `lightning_cam.functional.adcc.pearson`, on the maps
area-averaged to at most ``size`` (64) pixels a side: a map is a layer's grid of 7 x 7 to 28 x 28 cells upsampled to
the input, so the averaged map keeps its shape, and the correlation costs a twelfth of the full 224-pixel one. It
differs from the full-resolution correlation by at most 0.002 for maps from a 7 x 7 grid, 0.005 from 14 x 14 and
0.007 from 28 x 28 (random maps upsampled to 224 pixels, the worst of 64; ``size=None``: full resolution).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cam.functional.adcc import PEARSON_EPS
from lightning_cam.metrics.grouped import GroupedMean

__all__ = ["MethodAgreement"]


class MethodAgreement(GroupedMean):
    """Mean per-sample Pearson correlation of each pair of methods' maps (a `GroupedMean` over pairs).

    Batches are added method by method with `add_maps` and closed with `update` (all on the device,
    no host sync); `values` names the pairs with ``tag(a, b)``.

    Examples:
        >>> agree = MethodAgreement(["gradcam", "eigencam"])
        >>> x = torch.rand(4, 8, 8)
        >>> agree.add_maps("gradcam", x)
        >>> agree.add_maps("eigencam", 2 * x + 1)
        >>> agree.update()
        >>> {k: round(float(v), 4) for k, v in agree.values(lambda a, b: f"{a}__{b}").items()}
        {'gradcam__eigencam': 1.0}
    """

    def __init__(self, methods: Sequence[str], size: int | None = 64, **kwargs: Any) -> None:
        self.pairs = list(itertools.combinations(tuple(methods), 2))
        super().__init__((len(self.pairs),), **kwargs)
        self.size = size
        self._batch: dict[str, Tensor] = {}

    def add_maps(self, method: str, maps: Tensor, index: Tensor | None = None, batch_size: int | None = None) -> None:
        """``method``'s maps of the current batch: ``(B, H, W)``, or ``(n, H, W)`` for the samples ``index``
        (``(n,)`` long) of a batch of ``batch_size`` (the others count as left out)."""
        maps = maps.detach().float()
        if self.size is not None and max(maps.shape[-2:]) > self.size:  # NaN rows stay NaN
            h, w = maps.shape[-2:]
            maps = F.adaptive_avg_pool2d(maps[:, None], (min(h, self.size), min(w, self.size)))[:, 0]
        if index is not None and batch_size is not None:
            full = maps.new_full((batch_size, *maps.shape[1:]), float("nan"))
            maps = full.index_copy(0, index.to(maps.device), maps)
        self._batch[method] = maps

    def update(self) -> None:
        """Add the current batch's pairs (those whose two methods both added maps) and clear it.

        Each method's maps are centred and their norms taken once, then every pair is one batched dot product:
        `pearson`'s formula, without centring a method's maps again for each of its pairs."""
        batch, self._batch = self._batch, {}
        centred: dict[str, tuple[Tensor, Tensor]] = {}
        for name, maps in batch.items():
            x = maps.flatten(1)
            xc = x - x.mean(dim=1, keepdim=True)
            centred[name] = xc, torch.linalg.vecdot(xc, xc).sqrt()
        for i, (a, b) in enumerate(self.pairs):
            if a in batch and b in batch and batch[a].shape == batch[b].shape:
                (xa, na), (xb, nb) = centred[a], centred[b]
                n = xa.shape[1] - 1  # sample statistics, as `pearson`
                r = (torch.linalg.vecdot(xa, xb) / n / ((na / n**0.5) * (nb / n**0.5) + PEARSON_EPS)).clamp(-1.0, 1.0)
                self.add(torch.full_like(r, i, dtype=torch.long), r)

    def values(self, tag: Any) -> dict[str, Tensor]:
        """``{tag(a, b): mean}`` for the pairs with samples on some rank (a collective in DDP)."""
        return self.named([(tag(a, b), (i,)) for i, (a, b) in enumerate(self.pairs)])
