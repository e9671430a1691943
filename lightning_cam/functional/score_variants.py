r"""Pure tensor maths of torchcam's Score-CAM variants (SS-CAM, IS-CAM): masks from channels normalised at the
activation's resolution, and channel weights from score *differences* softmaxed over channels.

Shapes: ``activations`` ``(B, C, h, w)``; masks ``(B, C, H, W)``; score differences and weights ``(B, C)``.
These follow torchcam 0.5's definitions, not this library's Score-CAM (`lightning_cam.functional.scorecam_weights`,
the paper's softmax over classes): they are defined by torchcam's code, and that is the reference they are
checked against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cam.functional.cam import _check_4d

__all__ = ["NORMALIZE_EPS", "channel_masks", "integration_coefficients", "softmax_over_channels"]

#: the denominator's guard of torchcam's per-channel normalisation
NORMALIZE_EPS = 1e-8


def channel_masks(activations: Tensor, size: tuple[int, int]) -> Tensor:
    r"""Each ``(sample, channel)`` map min-max normalised at the activation's resolution, then bilinearly upsampled
    to ``size`` (``align_corners=False``): $U\big((A^k - \min A^k) / (\max A^k - \min A^k + \epsilon)\big)$ with
    $\epsilon$ = `NORMALIZE_EPS` (a constant channel gives 0). ``(B, C, h, w)`` -> ``(B, C, H, W)`` float32.

    Examples:
        >>> channel_masks(torch.tensor([[[[0.0, 2.0]], [[1.0, 1.0]]]]), (1, 2))
        tensor([[[[0., 1.]],
        <BLANKLINE>
                 [[0., 0.]]]])
    """
    _check_4d("activations", activations)
    a = activations.float()
    a = a - a.amin(dim=(2, 3), keepdim=True)
    a = a / (a.amax(dim=(2, 3), keepdim=True) + NORMALIZE_EPS)
    if tuple(a.shape[-2:]) == tuple(size):
        return a
    return F.interpolate(a, size=tuple(size), mode="bilinear", align_corners=False)


def integration_coefficients(steps: int) -> list[float]:
    r"""IS-CAM's mask scales as torchcam 0.5 computes them: $c_i = \sum_{j=1}^{i} j/N$ for $i = 1..N$ (a cumulative
    sum of the integration steps; the paper's integral would scale by $i/N$).

    Examples:
        >>> integration_coefficients(3)
        [0.3333333333333333, 1.0, 2.0]
    """
    out, total = [], 0.0
    for i in range(1, int(steps) + 1):
        total += i / steps
        out.append(total)
    return out


def softmax_over_channels(differences: Tensor) -> Tensor:
    r"""Channel weights $w_k = \operatorname{softmax}_k(\Delta_k)$ from ``(B, C)`` mean score differences
    $\Delta_k = \frac1N\sum_i \big(y^c(\tilde x_{k,i}) - y^c(x)\big)$ -> ``(B, C)`` float32.

    Examples:
        >>> softmax_over_channels(torch.tensor([[0.0, 0.0]]))
        tensor([[0.5000, 0.5000]])
    """
    return torch.softmax(differences.float(), dim=1)
