r"""The probability of a target from a model's logits: what the faithfulness metrics read.

A target kind ([`lightning_cam.targets`][lightning_cam.targets]) says which rule its model's outputs follow;
the functions that need a probability (insertion/deletion, Score-CAM's weights) take that rule as an argument
(`probability(logits, targets) -> (B,)`), so the maths here knows no kind.

| rule | logits | $Y_c$ |
|---|---|---|
| `softmax_probability` | `(B, K)`, softmax over classes | $\mathrm{softmax}(z)_c$ |
| `sigmoid_probability` | `(B, K)`, a sigmoid per class | $\sigma(z_c)$ |

Examples:
    >>> z = torch.tensor([[2.0, -1.0]])
    >>> softmax_probability(z, torch.tensor([0])), sigmoid_probability(z, torch.tensor([0]))
    (tensor([0.9526]), tensor([0.8808]))
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["Probability", "check_probability_inputs", "read_probability", "sigmoid_probability",
           "softmax_probability"]

#: ``probability(logits, targets) -> (B,)`` float32: the rule a target kind's outputs follow; a kind with a
#: reference (a segmentation pair's region) takes it as a third argument, ``probability(logits, targets, reference)``.
Probability = Callable[..., Tensor]


def read_probability(probability: Probability, logits: Tensor, targets: Tensor, reference: Tensor | None = None
                     ) -> Tensor:
    """``probability(logits, targets)``, with ``reference`` as a third argument when there is one (a rule of a kind
    without a reference may take two arguments).

    Examples:
        >>> read_probability(softmax_probability, torch.zeros(1, 4), torch.tensor([2]))
        tensor([0.2500])
    """
    return probability(logits, targets) if reference is None else probability(logits, targets, reference)


def check_probability_inputs(logits: Tensor, targets: Tensor) -> None:
    """``logits`` ``(B, K)`` and ``targets`` ``(B,)``, else a ``ValueError`` naming both shapes."""
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(
            f"expected logits (B, K) and targets (B,), got {tuple(logits.shape)} and {tuple(targets.shape)}."
        )


def softmax_probability(logits: Tensor, targets: Tensor) -> Tensor:
    r"""$\mathrm{softmax}(z)_c$ of each sample's target class.

    Args:
        logits: ``(B, K)`` logits.
        targets: ``(B,)`` long class indices.

    Returns:
        ``(B,)`` float32 probabilities.

    Examples:
        >>> softmax_probability(torch.tensor([[0.0, 0.0], [0.0, 1e4]]), torch.tensor([0, 1]))
        tensor([0.5000, 1.0000])
    """
    check_probability_inputs(logits, targets)
    probs = torch.softmax(logits.float(), dim=1)
    return probs.gather(1, targets.long().view(-1, 1)).squeeze(1)


def sigmoid_probability(logits: Tensor, targets: Tensor) -> Tensor:
    r"""$\sigma(z_c)$ of each sample's target class (a sigmoid per class).

    Args:
        logits: ``(B, K)`` logits.
        targets: ``(B,)`` long class indices.

    Returns:
        ``(B,)`` float32 probabilities.

    Examples:
        >>> sigmoid_probability(torch.tensor([[9.0, 9.0]]), torch.tensor([0]))
        tensor([0.9999])
    """
    check_probability_inputs(logits, targets)
    return torch.sigmoid(logits.float().gather(1, targets.long().view(-1, 1)).squeeze(1))
