"""The value a CAM method returns from ``explain``."""

from __future__ import annotations

from dataclasses import dataclass

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
    """

    maps: Tensor
    low_res: Tensor
    logits: Tensor
    targets: Tensor
