"""The ROAD family as torchmetrics (pytorch-grad-cam's faithfulness metrics): ROAD most- and least-relevant-first,
ROAD combined, and ARCC (ADCC with ROAD in place of Average Drop); the imputation and the curves are in
`lightning_cam.functional.road`. All four share one set of imputed images per batch: one forward of the batch per
percentile and order (8 with the default four percentiles)."""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest examples)
from torch import Tensor

from lightning_cam.metrics.base import PerSampleMetric
from lightning_cam.metrics.registry import MetricInputs, register_metric

__all__ = ["ARCC", "ROAD", "ROADLeastRelevantFirst", "ROADMostRelevantFirst", "arcc"]


def _road(m: MetricInputs) -> Tensor:
    curves = m.need("road")
    return (curves["road_lerf"] - curves["road_morf"]) / 2


def arcc(coherency: Tensor, complexity: Tensor, road: Tensor) -> Tensor:
    r"""ARCC (pytorch-grad-cam): the harmonic mean of Coherency, $1 -$ Complexity and ROAD rescaled to $[0, 1]$.

    $$
    \mathrm{ARCC} = 3\Big(\frac{1}{\mathrm{coh} + \epsilon} + \frac{1}{1 - \mathrm{cx} + \epsilon} +
    \frac{1}{\mathrm{clip}(2\,\mathrm{ROAD}, 0, 1) + \epsilon}\Big)^{-1},\qquad \epsilon = 10^{-8}
    $$

    Examples:
        >>> arcc(torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.5]), torch.tensor([0.5, 0.25]))
        tensor([1.0000, 0.5000])
    """
    road01 = (2 * road).clamp(0, 1)
    eps = 1e-8
    return 3 / (1 / (coherency + eps) + 1 / (1 - complexity + eps) + 1 / (road01 + eps))


class _Signed(PerSampleMetric):
    """A ROAD value: a change of probability, in ``[-1, 1]``."""

    plot_lower_bound = -1.0


@register_metric("road_morf", lambda m: m.need("road")["road_morf"], {"road"})
class ROADMostRelevantFirst(_Signed):
    r"""ROAD, most relevant first (Rong et al., ICML 2022), in ``[-1, 1]`` (lower is better): the mean change of the
    target's probability when the pixels above each percentile of the map are removed and imputed
    (`lightning_cam.functional.road.road_scores`). Equal to pytorch-grad-cam's ``ROADMostRelevantFirstAverage`` with a
    probability target, without noise (its noise comes from the global RNG). Options: ``road_percentiles`` (default
    20, 40, 60, 80: ARCC's; pytorch-grad-cam's averager defaults to 10..90), ``road_noise`` (0.01).

    Examples:
        >>> m = ROADMostRelevantFirst()
        >>> m.update(torch.tensor([-0.4, -0.2]))
        >>> m.compute()
        tensor(-0.3000)
    """

    higher_is_better = False

    def update(self, values: Tensor) -> None:
        """``values``: ``(B,)`` per-sample changes of probability."""
        self.add_values(values)


@register_metric("road_lerf", lambda m: m.need("road")["road_lerf"], {"road"})
class ROADLeastRelevantFirst(_Signed):
    r"""ROAD, least relevant first, in ``[-1, 1]`` (higher is better): as
    [`ROADMostRelevantFirst`][lightning_cam.metrics.road.ROADMostRelevantFirst] with the map's least relevant pixels
    removed first. Equal to pytorch-grad-cam's ``ROADLeastRelevantFirstAverage`` (probability target, no noise).

    Examples:
        >>> m = ROADLeastRelevantFirst()
        >>> m.update(torch.tensor([-0.1, 0.1]))
        >>> m.compute()
        tensor(0.)
    """

    higher_is_better = True

    def update(self, values: Tensor) -> None:
        """``values``: ``(B,)`` per-sample changes of probability."""
        self.add_values(values)


@register_metric("road", _road, {"road"})
class ROAD(_Signed):
    r"""ROAD combined, in ``[-1, 1]`` (higher is better): $(\mathrm{LeRF} - \mathrm{MoRF}) / 2$, pytorch-grad-cam's
    ``ROADCombined`` (probability target, no noise), from the same imputed images as the two curves.

    Examples:
        >>> m = ROAD()
        >>> m.update(torch.tensor([0.25]))
        >>> m.compute()
        tensor(0.2500)
    """

    higher_is_better = True

    def update(self, values: Tensor) -> None:
        """``values``: ``(B,)`` per-sample combined ROAD."""
        self.add_values(values)


@register_metric("arcc", lambda m: arcc(m.values["coherency"], m.values["complexity"], m.values["road"]),
                 requires=("coherency", "complexity", "road"))
class ARCC(PerSampleMetric):
    r"""ARCC in ``[0, 1]`` (higher is better): ADCC with ROAD in place of Average Drop (`arcc`), pytorch-grad-cam's
    ``ARCC`` (its four ROAD percentiles, a probability target, no noise). Costs the ADCC family's two passes plus
    ROAD's eight forwards per batch.

    Examples:
        >>> m = ARCC()
        >>> m.update(torch.tensor([0.5, 1.0]))
        >>> m.compute()
        tensor(0.7500)
    """

    higher_is_better = True

    def update(self, values: Tensor) -> None:
        """``values``: ``(B,)`` per-sample ARCC."""
        self.add_values(values)
