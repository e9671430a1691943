"""The value a CAM method returns from ``explain``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CAMResult"]


@dataclass
class CAMResult:
    """Everything one CAM call produced, for the evaluator and the callback to reuse.

    Attributes:
        maps: ``(B, H, W)`` float32 maps in ``[0, 1]``, upsampled to the input size.
        low_res: ``(B, h, w)`` float32 maps at the target layer's resolution (ReLU'd, not normalised).
        logits: ``(B, K)`` float32 logits of the forward pass the maps were computed from (detached).
        targets: ``(B,)`` long tensor of the classes explained.
        blank: ``(B,)`` bool, True where the map is constant (all zero after normalisation) and so carries
            no explanation; :func:`~lightning_cam.evaluate_batch` gives such samples NaN in every metric.
            Defaults to all False (a result built without it).
        blank_reason: the likely cause of the blank samples (empty when there are none), e.g. a zero
            gradient at a transformer block output whose patch tokens do not reach the head. It may be given
            as a function returning that text: it is then formatted at the first read (whether any sample
            is blank is a host-device sync, which the per-batch path of the callback avoids).

    Example:
        >>> r = CAMResult(torch.zeros(2, 4, 4), torch.zeros(2, 2, 2), torch.zeros(2, 3), torch.tensor([0, 1]))
        >>> r.blank
        tensor([False, False])
    """

    maps: Tensor
    low_res: Tensor
    logits: Tensor
    targets: Tensor
    blank: Tensor | None = None
    blank_reason: str = ""

    def __post_init__(self) -> None:
        if self.blank is None:
            self.blank = torch.zeros(self.maps.shape[0], dtype=torch.bool, device=self.maps.device)


def _get_reason(self: CAMResult) -> str:
    reason = self.__dict__.get("_blank_reason", "")
    if callable(reason):
        reason = str(reason())
        self.__dict__["_blank_reason"] = reason
    return reason


def _set_reason(self: CAMResult, value: str | Callable[[], str]) -> None:
    self.__dict__["_blank_reason"] = value


# A property over the dataclass field (its default "" is already in the generated __init__): the text is
# formatted lazily when given as a function, while `CAMResult(..., blank_reason="...")` keeps working.
CAMResult.blank_reason = property(_get_reason, _set_reason)  # type: ignore[assignment]
