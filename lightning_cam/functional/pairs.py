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

__all__ = ["other_classes", "predicted_positives", "select_pairs"]


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


def other_classes(targets: Tensor, num_classes: int, seed: int) -> Tensor:
    r"""A random class other than each target, fixed per class: $c \mapsto (c + 1 + r_c) \bmod K$ with $r_c$ drawn
    uniformly from $\{0, \dots, K-2\}$ by a private generator seeded with ``seed`` (the same table at every call, on
    every rank). Each target's other class is uniform over the $K - 1$ others, as in Quantus's random logit check,
    and a sample's does not depend on its batch (Quantus draws per position in the batch, from NumPy's global RNG).

    ``targets``: ``(B,)`` long in ``[0, K)`` -> ``(B,)`` long on its device.

    Examples:
        >>> t = torch.tensor([0, 1, 2, 0])
        >>> o = other_classes(t, 3, seed=0)
        >>> bool((o != t).all()), o[0] == o[3]
        (True, tensor(True))
    """
    if num_classes < 2:
        raise ValueError(f"a random other class needs at least 2 classes, got {num_classes}.")
    shift = torch.randint(0, num_classes - 1, (num_classes,), generator=torch.Generator().manual_seed(seed))
    table = (torch.arange(num_classes) + 1 + shift) % num_classes
    return table.to(targets.device, non_blocking=True)[targets.long()]
