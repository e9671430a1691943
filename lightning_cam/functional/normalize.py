"""Post-processing shared by every CAM method: ReLU, bilinear upsampling, per-sample min-max."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["minmax_normalize", "postprocess_maps", "upsample_maps"]


def upsample_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize ``(B, h, w)`` maps to ``(B, H, W)`` (``align_corners=False``), in float32.

    Bilinear interpolation is a convex combination of neighbours, so non-negative maps stay
    non-negative.

    Examples:
        >>> upsample_maps(torch.ones(2, 7, 7), (32, 32)).shape
        torch.Size([2, 32, 32])
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must be (B, h, w), got shape {tuple(maps.shape)}")
    maps = maps.float()
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def minmax_normalize(maps: Tensor, eps: float = 1e-5) -> Tensor:
    r"""Min-max normalise each sample of ``(B, ...)`` maps to ``[0, 1]``.

    $\hat M = (M - \min M) / (\max M - \min M)$ per sample. A sample whose range is at most
    ``eps`` times its largest magnitude (a constant map up to float rounding, including all zeros)
    becomes all zeros, never NaN. Non-finite inputs are not repaired.

    Examples:
        >>> minmax_normalize(torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]]))
        tensor([[[0., 1.]],
        <BLANKLINE>
                [[0., 0.]]])
    """
    flat = maps.float().flatten(1)
    lo = flat.amin(dim=1, keepdim=True)
    hi = flat.amax(dim=1, keepdim=True)
    span = hi - lo
    scale = torch.maximum(hi.abs(), lo.abs())
    ok = (span > eps * scale) & (span > 0)
    out = torch.where(ok, (flat - lo) / torch.where(ok, span, torch.ones_like(span)), torch.zeros_like(flat))
    return out.clamp_(0.0, 1.0).view_as(maps)


def postprocess_maps(low_res: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """ReLU, upsample to ``size`` and min-max normalise: the contract every method returns.

    Args:
        low_res: ``(B, h, w)`` raw maps at the target layer's resolution (any float dtype).
        size: ``(H, W)`` of the input images.

    Returns:
        ``(maps, low_res)``: ``(B, H, W)`` float32 maps in ``[0, 1]`` and the ReLU'd ``(B, h, w)`` float32 maps.

    Examples:
        >>> maps, low = postprocess_maps(torch.tensor([[[-1.0, 2.0], [0.0, 4.0]]]), (4, 4))
        >>> float(maps.min()), float(maps.max()), low.tolist()
        (0.0, 1.0, [[[0.0, 2.0], [0.0, 4.0]]])
    """
    low = torch.relu(torch.nan_to_num(low_res.float(), nan=0.0))
    return minmax_normalize(upsample_maps(low, size)), low
