"""Localization metrics against ground-truth object masks as torchmetrics."""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest examples)

from typing import Any

from torch import Tensor

from lightning_cam.functional.localization import energy_pointing_game, iou, pointing_game
from lightning_cam.metrics.base import PerSampleMean

__all__ = ["EnergyPointingGame", "IoU", "PointingGame"]


class PointingGame(PerSampleMean):
    r"""Pointing Game accuracy in ``[0, 1]`` (higher is better): share of maps whose maximum is on the object.

    ``update(values)``, or ``update(maps, masks)`` with ``(B, H, W)`` maps and masks
    (see :func:`lightning_cam.functional.localization.pointing_game`).

    Args:
        tolerance: pixels by which the object is grown before the check (raw-input form only).

    Example:
        >>> m = PointingGame()
        >>> m.update(torch.tensor([[[0.1, 0.9], [0.2, 0.3]]]), torch.tensor([[[False, True], [False, False]]]))
        >>> m.compute()
        tensor(1.)
    """

    higher_is_better = True

    def __init__(self, tolerance: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if tolerance < 0:
            raise ValueError(f"`tolerance` must be >= 0 pixels, got {tolerance}.")
        self.tolerance = tolerance

    def _values(self, *args: Tensor, **kwargs: Any) -> Tensor:
        if len(args) == 2:
            return pointing_game(*args, tolerance=self.tolerance)
        return super()._values(*args, **kwargs)


class EnergyPointingGame(PerSampleMean):
    r"""Energy-based Pointing Game in ``[0, 1]`` (higher is better): mean share of map mass on the object.

    ``update(values)``, or ``update(maps, masks)``.

    Example:
        >>> m = EnergyPointingGame()
        >>> m.update(torch.tensor([[[1.0, 3.0], [0.0, 0.0]]]), torch.tensor([[[False, True], [False, False]]]))
        >>> m.compute()
        tensor(0.7500)
    """

    higher_is_better = True

    def _values(self, *args: Tensor, **kwargs: Any) -> Tensor:
        if len(args) == 2:
            return energy_pointing_game(*args)
        return super()._values(*args, **kwargs)


class IoU(PerSampleMean):
    r"""Mean IoU in ``[0, 1]`` (higher is better) of the thresholded map ``map >= threshold`` with the mask.

    ``update(values)``, or ``update(maps, masks)``.

    Args:
        threshold: in ``(0, 1)``, used by the raw-input form.

    Example:
        >>> m = IoU(threshold=0.5)
        >>> m.update(torch.tensor([[[0.9, 0.6], [0.1, 0.0]]]), torch.tensor([[[True, False], [True, False]]]))
        >>> m.compute()
        tensor(0.3333)
    """

    higher_is_better = True

    def __init__(self, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"`threshold` must lie in (0, 1) (maps are in [0, 1]), got {threshold}.")
        self.threshold = float(threshold)

    def _values(self, *args: Tensor, **kwargs: Any) -> Tensor:
        if len(args) == 2:
            return iou(*args, threshold=self.threshold)
        return super()._values(*args, **kwargs)
