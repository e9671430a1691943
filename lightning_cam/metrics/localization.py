"""Localization metrics against ground-truth object masks as torchmetrics; the formulas are in
`lightning_cam.functional.localization`."""

from __future__ import annotations

from typing import Any

import torch  # noqa: F401  (used by the doctest examples)
from torch import Tensor

from lightning_cam.functional.localization import energy_pointing_game, iou, pointing_game
from lightning_cam.metrics.base import PerSampleMetric
from lightning_cam.metrics.registry import register_metric
from lightning_cam.utilities.checks import check_threshold, check_tolerance

__all__ = ["EnergyPointingGame", "IoU", "PointingGame"]


@register_metric("pointing_game", lambda m: pointing_game(m.maps, m.need("truth"), tolerance=m.options["tolerance"]),
                 {"truth"})
class PointingGame(PerSampleMetric):
    r"""Pointing Game accuracy in ``[0, 1]`` (higher is better): share of maps whose maximum is on the object.

    ``update(values)``, or ``update(maps, masks)`` with ``(B, H, W)`` maps and masks
    (see `lightning_cam.functional.localization.pointing_game`).

    Args:
        tolerance: pixels by which the object is grown before the check (raw-input form only).

    Examples:
        >>> m = PointingGame()
        >>> m.update(torch.tensor([[[0.1, 0.9], [0.2, 0.3]]]), torch.tensor([[[False, True], [False, False]]]))
        >>> m.compute()
        tensor(1.)
    """

    higher_is_better = True

    def __init__(self, tolerance: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tolerance = check_tolerance(tolerance)

    def update(self, values: Tensor, masks: Tensor | None = None) -> None:
        """``values``: ``(B,)`` hits in ``{0, 1}``; or the ``(B, H, W)`` maps when ``masks`` is given."""
        self.add_values(values if masks is None else pointing_game(values, masks, tolerance=self.tolerance))


@register_metric("energy_pointing_game", lambda m: energy_pointing_game(m.maps, m.need("truth")), {"truth"})
class EnergyPointingGame(PerSampleMetric):
    r"""Energy-based Pointing Game in ``[0, 1]`` (higher is better): mean share of map mass on the object.

    ``update(values)``, or ``update(maps, masks)``.

    Examples:
        >>> m = EnergyPointingGame()
        >>> m.update(torch.tensor([[[1.0, 3.0], [0.0, 0.0]]]), torch.tensor([[[False, True], [False, False]]]))
        >>> m.compute()
        tensor(0.7500)
    """

    higher_is_better = True

    def update(self, values: Tensor, masks: Tensor | None = None) -> None:
        """``values``: ``(B,)`` shares of mass; or the ``(B, H, W)`` maps when ``masks`` is given."""
        self.add_values(values if masks is None else energy_pointing_game(values, masks))


@register_metric("iou", lambda m: iou(m.maps, m.need("truth"), threshold=m.options["threshold"]), {"truth"})
class IoU(PerSampleMetric):
    r"""Mean IoU in ``[0, 1]`` (higher is better) of the thresholded map ``map >= threshold`` with the mask.

    ``update(values)``, or ``update(maps, masks)``.

    Args:
        threshold: in ``(0, 1)``, used by the raw-input form.

    Examples:
        >>> m = IoU(threshold=0.5)
        >>> m.update(torch.tensor([[[0.9, 0.6], [0.1, 0.0]]]), torch.tensor([[[True, False], [True, False]]]))
        >>> m.compute()
        tensor(0.3333)
    """

    higher_is_better = True

    def __init__(self, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = check_threshold(threshold)

    def update(self, values: Tensor, masks: Tensor | None = None) -> None:
        """``values``: ``(B,)`` IoUs; or the ``(B, H, W)`` maps when ``masks`` is given."""
        self.add_values(values if masks is None else iou(values, masks, threshold=self.threshold))
