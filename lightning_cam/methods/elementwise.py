"""Methods on the element-wise product of gradient and activation: Grad-CAM element-wise and Eigen-Grad-CAM."""

from __future__ import annotations

from torch import Tensor

from lightning_cam.functional.cam_variants import eigengradcam_map, elementwise_map
from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.registry import register_method

__all__ = ["EigenGradCAM", "GradCAMElementWise"]


@register_method
class GradCAMElementWise(BaseCAM):
    r"""Grad-CAM element-wise (pytorch-grad-cam's ``GradCAMElementWise``, after HiRes-CAM, Draelos & Carin 2020).

    $$
    L = \mathrm{ReLU}\Big(\sum_k \mathrm{ReLU}\big(\partial y^c/\partial A^k \odot A^k\big)\Big)
    $$

    HiRes-CAM with each channel's negative evidence dropped before the sum (`elementwise_map`). One capture pass
    with the gradient, shared with the other gradient methods. Same definition as pytorch-grad-cam's (its
    ``eigen_smooth`` option is not offered: [`EigenGradCAM`][lightning_cam.methods.elementwise.EigenGradCAM] is the
    projection of the product).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> GradCAMElementWise(net, "1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "gradcam_elementwise"
    aliases = ("gradcamelementwise", "grad-cam-elementwise")

    def raw_map(self, cap: Capture) -> Tensor:
        return elementwise_map(cap.activations, cap.gradient)


@register_method
class EigenGradCAM(BaseCAM):
    r"""Eigen-Grad-CAM (pytorch-grad-cam's ``EigenGradCAM``): Eigen-CAM of $\partial y^c/\partial A \odot A$.

    Per sample, the ``(hw, C)`` matrix of the product is centred over positions and projected on its first
    principal component (`eigengradcam_map`), then ReLU'd. Class-dependent through the gradient, unlike
    [`EigenCAM`][lightning_cam.methods.activation.EigenCAM]. Same as pytorch-grad-cam's except for the sign: we choose
    the one whose map correlates non-negatively with $\sum_k \partial y^c/\partial A^k \odot A^k$ (HiRes-CAM's map);
    pytorch-grad-cam keeps LAPACK's arbitrary sign.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> EigenGradCAM(net, "1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "eigengradcam"
    aliases = ("eigen-grad-cam",)

    def raw_map(self, cap: Capture) -> Tensor:
        return eigengradcam_map(cap.activations, cap.gradient)
