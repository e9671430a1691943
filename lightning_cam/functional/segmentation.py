r"""A semantic segmenter's pairs, score and probability: pure maths on ``(B, K, H, W)`` logits.

A pair is (image, class $c$). Its *region* $R$ is the set of pixels the model predicts as $c$ on the original
image ($\arg\max_k z_{k,ij} = c$), fixed once and reused on every changed image:

$$
y^c = \sum_{(i,j) \in R} z_{c,ij} \qquad\qquad Y_c = \frac{1}{|R|} \sum_{(i,j) \in R} \mathrm{softmax}(z_{\cdot,ij})_c
$$

$y^c$ is pytorch-grad-cam's ``SemanticSegmentationTarget`` with the mask of the predicted pixels (the target
its segmentation tutorial builds); $Y_c$ is the mean probability of the class over its region, read again on the
masked image by the faithfulness metrics. An empty region (a class the model predicts nowhere) scores 0: its
map is blank, a counted fault, never a value.

Examples:
    >>> z = torch.zeros(1, 2, 2, 2)
    >>> z[0, 1, 0] = 3.0  # class 1 on the top row
    >>> region = class_region(z, torch.tensor([1]))
    >>> region.int().tolist(), region_score(z, torch.tensor([1]), region).tolist()
    ([[[1, 1], [0, 0]]], [6.0])
    >>> region_probability(z, torch.tensor([1]), region)
    tensor([0.9526])
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_segmentation_logits", "class_region", "class_shares", "region_probability", "region_score"]


def check_segmentation_logits(logits: Tensor, targets: Tensor) -> None:
    """``logits`` ``(B, K, H, W)`` and ``targets`` ``(B,)``, else a ``ValueError`` naming both shapes."""
    if logits.ndim != 4 or targets.shape != logits.shape[:1]:
        raise ValueError(
            f"expected logits (B, K, H, W) and targets (B,), got {tuple(logits.shape)} and {tuple(targets.shape)}."
        )


def class_region(logits: Tensor, targets: Tensor) -> Tensor:
    """``(B, H, W)`` bool: the pixels predicted as each pair's class (the argmax over classes).

    Args:
        logits: ``(B, K, H, W)`` logits.
        targets: ``(B,)`` long classes.

    Examples:
        >>> class_region(torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]]), torch.tensor([0])).tolist()
        [[[False, True]]]
    """
    check_segmentation_logits(logits, targets)
    return logits.detach().argmax(dim=1) == targets.to(logits.device).long().view(-1, 1, 1)


def class_shares(logits: Tensor, ignore_index: int | None = None) -> Tensor:
    """``(B, K)`` float32: the share of each image's pixels predicted as each class (``ignore_index``: 0).

    Examples:
        >>> class_shares(torch.tensor([[[[0.0, 1.0, 1.0, 1.0]], [[1.0, 0.0, 0.0, 0.0]]]])).tolist()
        [[0.75, 0.25]]
    """
    b, k = int(logits.shape[0]), int(logits.shape[1])
    predicted = logits.detach().argmax(dim=1).flatten(1)  # (B, HW)
    counts = torch.zeros(b, k, device=logits.device, dtype=torch.float32)
    counts.scatter_add_(1, predicted, torch.ones_like(predicted, dtype=torch.float32))
    if ignore_index is not None and 0 <= ignore_index < k:
        counts[:, ignore_index] = 0.0
    return counts / float(max(predicted.shape[1], 1))


def region_score(logits: Tensor, targets: Tensor, region: Tensor) -> Tensor:
    r"""``(B,)`` $y^c = \sum_{R} z_c$, differentiable, in the logits' dtype.

    Args:
        logits: ``(B, K, H, W)`` logits.
        targets: ``(B,)`` long classes.
        region: ``(B, H, W)`` bool, each pair's region (`class_region` on the original image).

    Examples:
        >>> region_score(torch.ones(1, 2, 2, 2), torch.tensor([0]), torch.tensor([[[True, False], [False, False]]]))
        tensor([1.])
    """
    check_segmentation_logits(logits, targets)
    rows = torch.arange(logits.shape[0], device=logits.device)
    chosen = logits[rows, targets.to(logits.device).long()]  # (B, H, W)
    return (chosen * region.to(chosen.device, chosen.dtype)).sum(dim=(1, 2))


def region_probability(logits: Tensor, targets: Tensor, region: Tensor) -> Tensor:
    r"""``(B,)`` float32 $Y_c$: the mean softmax probability of class $c$ over the region ($0$ when it is empty).

    Examples:
        >>> region_probability(torch.zeros(1, 4, 1, 2), torch.tensor([3]), torch.tensor([[[True, True]]]))
        tensor([0.2500])
    """
    check_segmentation_logits(logits, targets)
    rows = torch.arange(logits.shape[0], device=logits.device)
    prob = torch.softmax(logits.float(), dim=1)[rows, targets.to(logits.device).long()]  # (B, H, W)
    weight = region.to(prob.device, torch.float32)
    return (prob * weight).sum(dim=(1, 2)) / weight.sum(dim=(1, 2)).clamp(min=1.0)
