"""Pairs of (image, class) when an image is explained once per class: choosing them from a matrix of positives.

Examples:
    >>> pos = torch.tensor([[True, False, True]])
    >>> [t.tolist() for t in select_pairs(pos)]
    [[0, 0], [0, 2]]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["predicted_positives", "select_pairs"]


def select_pairs(positive: Tensor, rank: Tensor | None = None, max_per_image: int | None = None
                 ) -> tuple[Tensor, Tensor]:
    """The (image, class) pairs of a ``(B, K)`` bool matrix, at most ``max_per_image`` per image.

    Kept per image: the positives with the highest ``rank`` (``(B, K)``, e.g. the logits), or the first in
    class order without one. The pairs come image by image, classes ascending (``positive.nonzero()``'s
    order); the count of pairs is read back from the device (one host sync).

    Returns:
        ``(samples, classes)``, two ``(P,)`` long tensors.

    Examples:
        >>> pos = torch.tensor([[True, True, True], [False, False, False], [False, True, False]])
        >>> s, c = select_pairs(pos, torch.tensor([[0.1, 0.9, 0.5], [0, 0, 0], [0, 0, 0]]), max_per_image=2)
        >>> s.tolist(), c.tolist()
        ([0, 0, 2], [1, 2, 1])
    """
    if positive.ndim != 2:
        raise ValueError(f"expected a (B, K) matrix of positives, got shape {tuple(positive.shape)}.")
    positive = positive.bool()
    if max_per_image is not None and max_per_image < positive.shape[1]:
        k = positive.shape[1]
        key = (rank.detach().float() if rank is not None else
               -torch.arange(k, device=positive.device, dtype=torch.float32).expand_as(positive))
        key = torch.where(positive, key.nan_to_num(nan=-math.inf), torch.full_like(key, -math.inf))
        order = key.argsort(dim=1, descending=True, stable=True)
        kept = torch.zeros_like(positive)
        kept.scatter_(1, order[:, :max_per_image], True)
        positive = positive & kept
    pairs = positive.nonzero()
    return pairs[:, 0], pairs[:, 1]


def predicted_positives(logits: Tensor, threshold: float) -> Tensor:
    """``(B, K)`` bool: the classes whose sigmoid exceeds ``threshold`` (``z > logit(threshold)``).

    Examples:
        >>> predicted_positives(torch.tensor([[0.1, -0.1]]), 0.5).tolist()
        [[True, False]]
    """
    cut = math.log(threshold / (1.0 - threshold))
    return logits.detach().float() > cut
