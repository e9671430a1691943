"""Quantus's localization family as torchmetrics: relevance mass and rank accuracy, top-k intersection, attribution
localisation and AUC against ground-truth masks; the formulas are in `lightning_cam.functional.relevance`."""

from __future__ import annotations

from typing import Any

import torch  # noqa: F401  (used by the doctest examples)
from torch import Tensor

from lightning_cam.functional.localization import energy_pointing_game
from lightning_cam.functional.relevance import (
    attribution_localisation,
    localization_auc,
    relevance_rank_accuracy,
    top_k_intersection,
)
from lightning_cam.metrics.base import PerSampleMetric
from lightning_cam.metrics.registry import register_metric
from lightning_cam.utilities.checks import check_top_k

__all__ = ["AttributionLocalisation", "LocalizationAUC", "RelevanceMassAccuracy", "RelevanceRankAccuracy",
           "TopKIntersection"]


@register_metric("relevance_mass_accuracy", lambda m: energy_pointing_game(m.maps, m.need("truth")), {"truth"})
class RelevanceMassAccuracy(PerSampleMetric):
    r"""Relevance Mass Accuracy (Arras et al., 2022) in ``[0, 1]`` (higher is better): the share of the map's mass on
    the object, $\sum_{\mathrm{obj}} \mathrm{map} / \sum \mathrm{map}$.

    The same formula as the Energy-based Pointing Game (`energy_pointing_game`), under Quantus's name, equal to
    Quantus's ``RelevanceMassAccuracy`` (which gives NaN for an empty mask and an all-zero map; 0 here).

    Examples:
        >>> m = RelevanceMassAccuracy()
        >>> m.update(torch.tensor([[[1.0, 3.0], [0.0, 0.0]]]), torch.tensor([[[False, True], [False, False]]]))
        >>> m.compute()
        tensor(0.7500)
    """

    higher_is_better = True

    def update(self, values: Tensor, masks: Tensor | None = None) -> None:
        """``values``: ``(B,)`` shares of mass; or the ``(B, H, W)`` maps when ``masks`` is given."""
        self.add_values(values if masks is None else energy_pointing_game(values, masks))


@register_metric("relevance_rank_accuracy", lambda m: relevance_rank_accuracy(m.maps, m.need("truth")), {"truth"})
class RelevanceRankAccuracy(PerSampleMetric):
    r"""Relevance Rank Accuracy (Arras et al., 2022) in ``[0, 1]`` (higher is better): the share of the map's
    $|\mathrm{obj}|$ highest pixels on the object (`relevance_rank_accuracy`), equal to Quantus's.

    Examples:
        >>> m = RelevanceRankAccuracy()
        >>> m.update(torch.tensor([[[0.9, 0.1], [0.8, 0.0]]]), torch.tensor([[[True, True], [False, False]]]))
        >>> m.compute()
        tensor(0.5000)
    """

    higher_is_better = True

    def update(self, values: Tensor, masks: Tensor | None = None) -> None:
        """``values``: ``(B,)`` accuracies; or the ``(B, H, W)`` maps when ``masks`` is given."""
        self.add_values(values if masks is None else relevance_rank_accuracy(values, masks))


@register_metric("top_k_intersection", lambda m: top_k_intersection(m.maps, m.need("truth"), k=m.options["top_k"]),
                 {"truth"})
class TopKIntersection(PerSampleMetric):
    r"""Top-k Intersection (Theiner et al., 2021) in ``[0, 1]`` (higher is better): the share of the map's ``top_k``
    highest pixels on the object (`top_k_intersection`), equal to Quantus's ``TopKIntersection``.

    ``top_k`` (the ``evaluate_batch``/``metric_kwargs`` option, pixels, default 1000 as Quantus) counts at the
    input's resolution: 1000 is 2 % of a 224-px image but a quarter of a 64-px one, so set it for your image size.

    Examples:
        >>> m = TopKIntersection(top_k=1)
        >>> m.update(torch.tensor([[[0.9, 0.1], [0.8, 0.0]]]), torch.tensor([[[True, True], [False, False]]]))
        >>> m.compute()
        tensor(1.)
    """

    higher_is_better = True

    def __init__(self, top_k: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.top_k = check_top_k(top_k)

    def update(self, values: Tensor, masks: Tensor | None = None) -> None:
        """``values``: ``(B,)`` intersections; or the ``(B, H, W)`` maps when ``masks`` is given."""
        self.add_values(values if masks is None else top_k_intersection(values, masks, k=self.top_k))


@register_metric("attribution_localisation", lambda m: attribution_localisation(m.maps, m.need("truth")), {"truth"})
class AttributionLocalisation(PerSampleMetric):
    r"""Attribution Localisation (Kohlbrenner et al., 2020) in ``[0, 1]`` (higher is better): the share of the
    positive relevance on the object (`attribution_localisation`), equal to Quantus's (unweighted).

    Examples:
        >>> m = AttributionLocalisation()
        >>> m.update(torch.tensor([[[1.0, 3.0], [0.0, 0.0]]]), torch.tensor([[[False, True], [False, False]]]))
        >>> m.compute()
        tensor(0.7500)
    """

    higher_is_better = True

    def update(self, values: Tensor, masks: Tensor | None = None) -> None:
        """``values``: ``(B,)`` shares; or the ``(B, H, W)`` maps when ``masks`` is given."""
        self.add_values(values if masks is None else attribution_localisation(values, masks))


@register_metric("auc", lambda m: localization_auc(m.maps, m.need("truth")), {"truth"})
class LocalizationAUC(PerSampleMetric):
    r"""AUC in ``[0, 1]`` (higher is better; 0.5 is chance): the ROC area of the map's values as a classifier of the
    object's pixels (`localization_auc`), equal to Quantus's ``AUC``. A mask covering the whole image has no
    negatives: that sample is skipped and counted.

    Examples:
        >>> m = LocalizationAUC()
        >>> m.update(torch.tensor([[[0.9, 0.1], [0.8, 0.0]]]), torch.tensor([[[True, False], [True, False]]]))
        >>> m.compute()
        tensor(1.)
    """

    higher_is_better = True

    def update(self, values: Tensor, masks: Tensor | None = None) -> None:
        """``values``: ``(B,)`` areas; or the ``(B, H, W)`` maps when ``masks`` is given."""
        self.add_values(values if masks is None else localization_auc(values, masks))
