"""Seg-Eigen-CAM: Eigen-CAM of the gradient-weighted activation, made for segmenters (works for any kind)."""

from __future__ import annotations

from torch import Tensor

from lightning_cam.functional.cam_variants import segeigencam_map
from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.registry import register_method

__all__ = ["SegEigenCAM"]


@register_method
class SegEigenCAM(BaseCAM):
    r"""Seg-Eigen-CAM (Chung & Ying, Appl. Sci. 2025): the first principal component of $|\partial s/\partial A|
    \odot A$ over positions, with the paper's sign correction.

    $$
    M = \big(|G| \odot A\big)^\top - \overline{\big(|G| \odot A\big)^\top},\quad p = M v_1,\quad
    L = \mathrm{ReLU}\big(\operatorname{sign}(p)\,p\big),\ \operatorname{sign}(p) = -1 \text{ iff } |\min p| > |\max p|
    $$

    (`segeigencam_map`). Made for the segmentation kind, where $s$ is the pair's region score (the class's logits
    summed over its region): the absolute gradient keeps the pixel-wise evidence of both signs. One capture pass with
    the gradient, shared with the other gradient methods; any target kind. Same definition and sign rule as
    pytorch-grad-cam's ``SegEigenCAM``.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
        >>> res = SegEigenCAM(net, "1", task="segmentation").explain(torch.randn(2, 3, 8, 8))
        >>> res.maps.shape[-2:], bool(res.maps.isfinite().all())  # one map per (image, predicted class) pair
        (torch.Size([8, 8]), True)
    """

    name = "segeigencam"
    aliases = ("seg-eigen-cam",)

    def raw_map(self, cap: Capture) -> Tensor:
        return segeigencam_map(cap.activations, cap.gradient)
