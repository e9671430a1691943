"""Pure per-sample formulas of the ADCC family (Poppi et al., CVPRW 2021) and its components.

Notation: ``Y_c`` is the probability of the target class on the image ``x`` under the output kind (softmax,
or the class's sigmoid: [`target_probability`][lightning_cam.targets.task.target_probability]); ``O_c`` the same on
the explanation map ``x ⊙ map`` (formed in the model's input space). Every function maps batched tensors
to a ``(B,)`` float32 tensor of per-sample values, works on any device and never loops in Python.

NaN convention: a NaN in an input propagates to that sample's value (and only to it); the metric classes
in `lightning_cam.metrics` skip such samples and count them. Every other edge case (constant maps,
``Y_c = 0``, a drop of 100 %, a complexity of 1) has a finite, documented value.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_cam.utilities.checks import check_maps, check_same_shape

__all__ = [
    "adcc",
    "average_drop",
    "coherency",
    "complexity",
    "increase_in_confidence",
    "pearson",
]

#: added to the product of standard deviations in `pearson` (the value grad-cam uses).
PEARSON_EPS = 1e-8


def average_drop(probs: Tensor, masked_probs: Tensor) -> Tensor:
    r"""Per-sample drop in confidence, in percent (Chattopadhay et al., WACV 2018).

    $$
    \mathrm{drop} = 100 \cdot \frac{\max(0, Y_c - O_c)}{Y_c}
    $$

    Edge case: ``Y_c = 0`` gives 0 (there is no confidence to drop). Values lie in ``[0, 100]``.

    Difference to torchcam: ``torchcam.metrics.ClassificationMetric`` divides by ``Y_c + 1e-7`` and reports a
    fraction; this divides by ``Y_c`` exactly, so ``torchcam = average_drop / 100 * Y_c / (Y_c + 1e-7)``.

    Args:
        probs: ``(B,)`` target probabilities ``Y_c`` on ``x``.
        masked_probs: ``(B,)`` target probabilities ``O_c`` on ``x ⊙ map``.

    Examples:
        >>> average_drop(torch.tensor([0.8, 0.5, 0.0]), torch.tensor([0.2, 0.9, 0.0]))
        tensor([75.,  0.,  0.])
    """
    check_same_shape(probs, masked_probs, "probs", "masked_probs")
    y, o = probs.float(), masked_probs.float()
    drop = torch.relu(y - o) / torch.where(y > 0, y, torch.ones_like(y))
    return 100.0 * drop.clamp(max=1.0)


def increase_in_confidence(probs: Tensor, masked_probs: Tensor) -> Tensor:
    r"""Per-sample increase in confidence, in percent: 100 where ``O_c > Y_c``, else 0.

    $$
    \mathrm{increase} = 100 \cdot [O_c > Y_c]
    $$

    The mean over samples is the "Increase in Confidence" (percent of samples whose confidence grew).
    A NaN in either input gives NaN (not 0), so the sample is skipped rather than counted as no increase.

    Examples:
        >>> increase_in_confidence(torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.6, 0.5, 0.1]))
        tensor([100.,   0.,   0.])
    """
    check_same_shape(probs, masked_probs, "probs", "masked_probs")
    y, o = probs.float(), masked_probs.float()
    out = 100.0 * (o > y).float()
    return torch.where(torch.isnan(y) | torch.isnan(o), torch.full_like(out, float("nan")), out)


def pearson(a: Tensor, b: Tensor, eps: float = PEARSON_EPS) -> Tensor:
    r"""Per-sample Pearson correlation of two batches of maps, finite for constant maps.

    $$
    \rho = \frac{\mathrm{cov}(a, b)}{\sigma_a \sigma_b + \varepsilon}
    $$

    with sample (``n - 1``) statistics over all non-batch dimensions and ``ε = 1e-8`` (grad-cam's
    ``batch_pearson_coherency`` uses the same formula). A constant map has ``σ = 0`` and gives
    ``ρ = 0``. The result is clamped to ``[-1, 1]`` against rounding.

    Args:
        a, b: ``(B, ...)`` maps of the same shape.

    Returns:
        ``(B,)`` float32 correlations.

    Examples:
        >>> a = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
        >>> pearson(a, torch.tensor([[0.0, 2.0, 4.0], [0.0, 1.0, 2.0]]))
        tensor([1., 0.])
    """
    check_same_shape(a, b, "a", "b")
    if a.ndim < 2:
        raise ValueError(f"`a` and `b` must be batches of maps shaped (B, ...), got shape {tuple(a.shape)}.")
    x = a.flatten(1).float()
    y = b.flatten(1).float()
    n = x.shape[1]
    if n < 2:
        raise ValueError(f"Pearson correlation needs at least 2 values per map, got {n}.")
    xc = x - x.mean(dim=1, keepdim=True)
    yc = y - y.mean(dim=1, keepdim=True)
    cov = (xc * yc).sum(dim=1) / (n - 1)
    std_x = ((xc * xc).sum(dim=1) / (n - 1)).sqrt()
    std_y = ((yc * yc).sum(dim=1) / (n - 1)).sqrt()
    return (cov / (std_x * std_y + eps)).clamp(-1.0, 1.0)


def coherency(maps: Tensor, masked_maps: Tensor) -> Tensor:
    r"""Per-sample coherency: how well a map survives being recomputed on its own explanation.

    $$
    \mathrm{coherency} = \frac{\rho(\mathrm{map}(x \odot \mathrm{map}), \mathrm{map}) + 1}{2}
    $$

    where ``masked_maps`` is the map the same method gives on ``x ⊙ maps`` for the same target class and
    ``ρ`` is `pearson`. Values lie in ``[0, 1]``; if either map is constant (e.g. all zeros) the
    correlation is 0 and coherency is 0.5, matching grad-cam's ``Coherency``.

    Examples:
        >>> m = torch.tensor([[[0.0, 0.5], [1.0, 0.2]]])
        >>> coherency(m, m), coherency(m, 1 - m), coherency(m, torch.zeros_like(m))
        (tensor([1.]), tensor([0.]), tensor([0.5000]))
    """
    return (pearson(masked_maps, maps) + 1.0) / 2.0


def complexity(maps: Tensor) -> Tensor:
    r"""Per-sample complexity: the mean absolute value of a ``[0, 1]`` map.

    $$
    \mathrm{complexity} = \frac{\lVert \mathrm{map} \rVert_1}{H \cdot W}
    $$

    0 for an all-zero map, 1 for an all-ones map.

    Args:
        maps: ``(B, H, W)`` maps in ``[0, 1]``.

    Examples:
        >>> complexity(torch.tensor([[[0.0, 1.0], [0.5, 0.5]], [[1.0, 1.0], [1.0, 1.0]]]))
        tensor([0.5000, 1.0000])
    """
    check_maps(maps)
    return maps.flatten(1).float().abs().mean(dim=1)


def adcc(coherency: Tensor, complexity: Tensor, average_drop: Tensor) -> Tensor:
    r"""Per-sample ADCC: the harmonic mean of coherency, 1 − complexity and 1 − drop.

    $$
    \mathrm{ADCC} = \frac{3}{\frac{1}{\mathrm{coherency}} + \frac{1}{1 - \mathrm{complexity}}
    + \frac{1}{1 - \mathrm{drop}}}
    $$

    ``average_drop`` is in percent, as `average_drop` returns it (it is divided by 100 here). The
    three terms are clamped to ``[0, 1]``; when any of them is 0 (coherency 0, complexity 1 or a drop of
    100 %) ADCC is 0, the limit of the formula, instead of a division by zero. Values lie in ``[0, 1]``.

    Examples:
        >>> adcc(torch.tensor([1.0, 0.9, 1.0]), torch.tensor([0.0, 0.3, 1.0]), torch.tensor([0.0, 40.0, 0.0]))
        tensor([1.0000, 0.7132, 0.0000])
    """
    check_same_shape(coherency, complexity, "coherency", "complexity")
    check_same_shape(coherency, average_drop, "coherency", "average_drop")
    terms = torch.stack(
        [coherency.float(), 1.0 - complexity.float(), 1.0 - average_drop.float() / 100.0], dim=0
    ).clamp(0.0, 1.0)
    positive = (terms > 0).all(dim=0)
    safe = torch.where(positive, terms, torch.ones_like(terms))
    value = 3.0 / safe.reciprocal().sum(dim=0)
    value = torch.where(positive, value, torch.zeros_like(value))
    # clamp() maps NaN to NaN, but `positive` is False for NaN: put NaN back so the sample is skipped.
    return torch.where(torch.isnan(terms).any(dim=0), torch.full_like(value, float("nan")), value)
