"""ADCC and its components as torchmetrics (Poppi et al., "Revisiting the Evaluation of Class Activation
Mapping for Explainability", CVPRW 2021)."""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest examples)

from typing import Any

from torch import Tensor

from lightning_cam.functional.metrics import adcc, average_drop, coherency, complexity, increase_in_confidence
from lightning_cam.metrics.base import PerSampleMean

__all__ = ["ADCC", "AverageDrop", "Coherency", "Complexity", "IncreaseInConfidence"]


class AverageDrop(PerSampleMean):
    r"""Average Drop in percent (lower is better): mean of ``100 · max(0, Y_c − O_c) / Y_c``.

    ``update(values)`` with per-sample drops (``evaluate_batch(...)["average_drop"]``), or
    ``update(probs, masked_probs)`` with ``Y_c`` and ``O_c``
    (see :func:`lightning_cam.functional.metrics.average_drop`).

    Example:
        >>> m = AverageDrop()
        >>> m.update(torch.tensor([0.8, 0.5]), torch.tensor([0.2, 0.9]))
        >>> m.compute()
        tensor(37.5000)
    """

    higher_is_better = False
    plot_upper_bound = 100.0

    def _values(self, *args: Tensor, **kwargs: Any) -> Tensor:
        if len(args) == 2:
            return average_drop(*args)
        return super()._values(*args, **kwargs)


class IncreaseInConfidence(PerSampleMean):
    r"""Increase in Confidence in percent (higher is better): share of samples with ``O_c > Y_c``.

    ``update(values)`` with per-sample values in ``{0, 100}`` (``evaluate_batch(...)["increase"]``), or
    ``update(probs, masked_probs)``.

    Example:
        >>> m = IncreaseInConfidence()
        >>> m.update(torch.tensor([0.5, 0.5, 0.5, 0.5]), torch.tensor([0.6, 0.4, 0.1, 0.9]))
        >>> m.compute()
        tensor(50.)
    """

    higher_is_better = True
    plot_upper_bound = 100.0

    def _values(self, *args: Tensor, **kwargs: Any) -> Tensor:
        if len(args) == 2:
            return increase_in_confidence(*args)
        return super()._values(*args, **kwargs)


class Coherency(PerSampleMean):
    r"""Coherency in ``[0, 1]`` (higher is better): mean of ``(ρ(map(x ⊙ map), map) + 1) / 2``.

    ``update(values)``, or ``update(maps, masked_maps)`` with both ``(B, H, W)`` maps
    (see :func:`lightning_cam.functional.metrics.coherency`).

    Example:
        >>> m = Coherency()
        >>> maps = torch.tensor([[[0.0, 0.5], [1.0, 0.2]]])
        >>> m.update(maps, maps); m.update(maps, 1 - maps)
        >>> m.compute()
        tensor(0.5000)
    """

    higher_is_better = True

    def _values(self, *args: Tensor, **kwargs: Any) -> Tensor:
        if len(args) == 2:
            return coherency(*args)
        return super()._values(*args, **kwargs)


class Complexity(PerSampleMean):
    r"""Complexity in ``[0, 1]`` (lower is better): mean of ``‖map‖₁ / (H·W)``.

    ``update(values)`` with ``(B,)`` values, or ``update(maps)`` with ``(B, H, W)`` maps.

    Example:
        >>> m = Complexity()
        >>> m.update(torch.tensor([[[0.0, 1.0], [0.5, 0.5]]]))
        >>> m.compute()
        tensor(0.5000)
    """

    higher_is_better = False

    def _values(self, *args: Tensor, **kwargs: Any) -> Tensor:
        if len(args) == 1 and not kwargs and args[0].ndim >= 2:
            return complexity(args[0])
        return super()._values(*args, **kwargs)


class ADCC(PerSampleMean):
    r"""ADCC in ``[0, 1]`` (higher is better): mean over samples of
    ``3 / (1/coherency + 1/(1 − complexity) + 1/(1 − drop))``.

    ``update(values)``, or ``update(coherency, complexity, average_drop)`` with the per-sample components
    (drop in percent; see :func:`lightning_cam.functional.metrics.adcc` for the edges).

    Example:
        >>> m = ADCC()
        >>> m.update(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]))
        >>> m.compute()
        tensor(0.5000)
    """

    higher_is_better = True

    def _values(self, *args: Tensor, **kwargs: Any) -> Tensor:
        if len(args) == 3:
            return adcc(*args)
        return super()._values(*args, **kwargs)
