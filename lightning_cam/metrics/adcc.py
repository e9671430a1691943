"""ADCC and its components as torchmetrics (Poppi et al., "Revisiting the Evaluation of Class Activation
Mapping for Explainability", CVPRW 2021); the formulas are in `lightning_cam.functional.adcc`.

Each class is updated with the ``(B,)`` per-sample values ``evaluate_batch`` returns under its name, or
with the raw inputs of its formula through the named extra arguments of its ``update``.
"""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest examples)
from torch import Tensor

from lightning_cam.functional.adcc import adcc, average_drop, coherency, complexity, increase_in_confidence
from lightning_cam.metrics.base import PerSampleMetric
from lightning_cam.metrics.registry import MetricInputs, register_metric

__all__ = ["ADCC", "AverageDrop", "Coherency", "Complexity", "IncreaseInConfidence"]


def _adcc_of(m: MetricInputs) -> Tensor:
    return adcc(m.values["coherency"], m.values["complexity"], m.values["average_drop"])


@register_metric("average_drop", lambda m: average_drop(m.probs, m.need("masked_probs")), {"masked"}, default=True)
class AverageDrop(PerSampleMetric):
    r"""Average Drop in percent (lower is better): mean of ``100 · max(0, Y_c − O_c) / Y_c``.

    ``update(values)`` with per-sample drops (``evaluate_batch(...)["average_drop"]``), or
    ``update(probs, masked_probs)`` with ``Y_c`` and ``O_c``
    (see `lightning_cam.functional.adcc.average_drop`).

    Examples:
        >>> m = AverageDrop()
        >>> m.update(torch.tensor([0.8, 0.5]), torch.tensor([0.2, 0.9]))
        >>> m.compute()
        tensor(37.5000)
    """

    higher_is_better = False
    plot_upper_bound = 100.0

    def update(self, values: Tensor, masked_probs: Tensor | None = None) -> None:
        """``values``: ``(B,)`` drops in percent; or ``Y_c`` when ``masked_probs`` (``O_c``) is given."""
        self.add_values(values if masked_probs is None else average_drop(values, masked_probs))


@register_metric("increase", lambda m: increase_in_confidence(m.probs, m.need("masked_probs")), {"masked"},
                 default=True)
class IncreaseInConfidence(PerSampleMetric):
    r"""Increase in Confidence in percent (higher is better): share of samples with ``O_c > Y_c``.

    ``update(values)`` with per-sample values in ``{0, 100}`` (``evaluate_batch(...)["increase"]``), or
    ``update(probs, masked_probs)``.

    Examples:
        >>> m = IncreaseInConfidence()
        >>> m.update(torch.tensor([0.5, 0.5, 0.5, 0.5]), torch.tensor([0.6, 0.4, 0.1, 0.9]))
        >>> m.compute()
        tensor(50.)
    """

    higher_is_better = True
    plot_upper_bound = 100.0

    def update(self, values: Tensor, masked_probs: Tensor | None = None) -> None:
        """``values``: ``(B,)`` values in ``{0, 100}``; or ``Y_c`` when ``masked_probs`` (``O_c``) is given."""
        self.add_values(values if masked_probs is None else increase_in_confidence(values, masked_probs))


@register_metric("coherency", lambda m: coherency(m.maps, m.need("masked_maps")), {"masked", "remap"}, default=True)
class Coherency(PerSampleMetric):
    r"""Coherency in ``[0, 1]`` (higher is better): mean of ``(ρ(map(x ⊙ map), map) + 1) / 2``.

    ``update(values)``, or ``update(maps, masked_maps)`` with both ``(B, H, W)`` maps
    (see `lightning_cam.functional.adcc.coherency`).

    Examples:
        >>> m = Coherency()
        >>> maps = torch.tensor([[[0.0, 0.5], [1.0, 0.2]]])
        >>> m.update(maps, maps); m.update(maps, 1 - maps)
        >>> m.compute()
        tensor(0.5000)
    """

    higher_is_better = True

    def update(self, values: Tensor, masked_maps: Tensor | None = None) -> None:
        """``values``: ``(B,)`` coherencies; or the ``(B, H, W)`` maps when ``masked_maps`` is given."""
        self.add_values(values if masked_maps is None else coherency(values, masked_maps))


@register_metric("complexity", lambda m: complexity(m.maps), default=True)
class Complexity(PerSampleMetric):
    r"""Complexity in ``[0, 1]`` (lower is better): mean of ``‖map‖₁ / (H·W)``.

    ``update(values)`` with ``(B,)`` values, or ``update(maps)`` with ``(B, H, W)`` maps: a batch of maps
    is told apart from per-sample values by its number of dimensions (the one formula with a single input).

    Examples:
        >>> m = Complexity()
        >>> m.update(torch.tensor([[[0.0, 1.0], [0.5, 0.5]]]))
        >>> m.compute()
        tensor(0.5000)
    """

    higher_is_better = False

    def update(self, values: Tensor) -> None:
        """``values``: ``(B,)`` complexities, or ``(B, H, W)`` maps whose complexity is taken."""
        self.add_values(complexity(values) if values.ndim >= 2 else values)


@register_metric("adcc", lambda m: _adcc_of(m), requires=("average_drop", "coherency", "complexity"), default=True)
class ADCC(PerSampleMetric):
    r"""ADCC in ``[0, 1]`` (higher is better): mean over samples of
    ``3 / (1/coherency + 1/(1 − complexity) + 1/(1 − drop))``.

    ``update(values)``, or ``update(coherency, complexity, average_drop)`` with the per-sample components
    (drop in percent; see `lightning_cam.functional.adcc.adcc` for the edges).

    Examples:
        >>> m = ADCC()
        >>> m.update(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]))
        >>> m.compute()
        tensor(0.5000)
    """

    higher_is_better = True

    def update(self, values: Tensor, complexity: Tensor | None = None, average_drop: Tensor | None = None) -> None:
        """``values``: ``(B,)`` ADCC values; or the coherencies when ``complexity`` and ``average_drop`` are given."""
        if complexity is None and average_drop is None:
            self.add_values(values)
        elif complexity is None or average_drop is None:
            raise TypeError(
                "ADCC.update takes (values) or all three components (coherency, complexity, average_drop), "
                "got only one of complexity/average_drop."
            )
        else:
            self.add_values(adcc(values, complexity, average_drop))
