r"""Pure tensor maths of the attention-gradient methods (LeGrad): from the gradient of a score with respect to a
block's attention probabilities to a patch map.

Shapes: attention probabilities and their gradient ``(B, heads, queries, keys)``; relevances ``(B, N)`` over the
``N`` patch keys; maps ``(B, h, w)`` with ``h * w = N``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["legrad_relevance", "mean_over_blocks", "patch_grid"]


def legrad_relevance(attention_grad: Tensor, prefix: int) -> Tensor:
    r"""LeGrad's relevance of each key token for one block:
    $r_j = \frac{1}{HQ}\sum_{h,i} \mathrm{ReLU}\big(\partial s / \partial A_{h,i,j}\big)$, the ``prefix`` non-patch
    keys (class and register tokens) dropped. ``(B, heads, Q, K)`` -> ``(B, K - prefix)`` float32.

    Examples:
        >>> g = torch.tensor([[[[1.0, -1.0, 3.0]]]])  # one head, one query, three keys
        >>> legrad_relevance(g, prefix=1)
        tensor([[0., 3.]])
    """
    if attention_grad.ndim != 4:
        raise ValueError(f"attention_grad must be (B, heads, queries, keys), got shape {tuple(attention_grad.shape)}")
    return attention_grad.float().relu().mean(dim=(1, 2))[:, prefix:]


def patch_grid(relevance: Tensor, grid: tuple[int, int] | None = None) -> Tensor:
    """``(B, N)`` patch relevances as ``(B, h, w)`` maps, in raster order; ``grid`` ``(h, w)``, or ``None`` for a
    square one (``N`` must then be a square: the error names ``grid_shape``).

    Examples:
        >>> patch_grid(torch.arange(4.0)[None]).tolist()
        [[[0.0, 1.0], [2.0, 3.0]]]
    """
    n = int(relevance.shape[-1])
    if grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patch tokens do not make a square grid; give grid_shape=(h, w) (h * w = {n}), or "
                             "the right prefix_tokens.")
        grid = (side, side)
    if grid[0] * grid[1] != n:
        raise ValueError(f"grid_shape={grid} does not hold the {n} patch tokens; give (h, w) with h * w = {n}.")
    return relevance.reshape(relevance.shape[0], *grid)


def mean_over_blocks(maps: list[Tensor]) -> Tensor:
    """The blocks' ``(B, h, w)`` maps averaged (before any normalisation, as LeGrad defines it).

    Examples:
        >>> mean_over_blocks([torch.ones(1, 2, 2), torch.zeros(1, 2, 2)]).unique().tolist()
        [0.5]
    """
    return torch.stack(maps).mean(dim=0)
