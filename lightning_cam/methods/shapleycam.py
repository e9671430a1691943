"""Shapley-CAM: Grad-CAM's channel weights from a second-order estimate of each unit's Shapley value."""

from __future__ import annotations

from torch import Tensor

from lightning_cam.functional.cam import gradcam_weights
from lightning_cam.functional.cam_variants import shapley_gradient
from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.registry import register_method

__all__ = ["ShapleyCAM"]


@register_method
class ShapleyCAM(BaseCAM):
    r"""Shapley-CAM (Cai et al., "CAMs as Shapley Value-based Explainers", 2025).

    $$
    \tilde G = \frac{\partial y^c}{\partial A} - \frac12 \frac{\partial^2 y^c}{\partial A^2} A,\qquad
    w_k = \frac{1}{hw}\sum_{ij} \tilde G^k_{ij},\qquad L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)
    $$

    The capture keeps $\tilde G$ (`shapley_gradient`: a backward with its graph kept and a Hessian-vector
    product) instead of the plain gradient, so it runs its own pass (``shares_capture = False``). Where the
    network after the layer is piecewise linear (convolutions, ReLU, pooling, eval-mode BatchNorm: a ResNet) the
    Hessian term is 0 and the map is Grad-CAM's; it differs on a transformer (GELU, softmax, LayerNorm). An
    operation without a second derivative (PyTorch's fused ``scaled_dot_product_attention`` kernels, which timm
    uses by default) is refused with the fix: turn the fused attention off (``timm.layers.set_fused_attn(False)``
    before building the model, or ``attn.fused_attn = False`` on each block). Same definition as
    pytorch-grad-cam's ``ShapleyCAM``, which cannot take a ``reshape_transform`` (a ViT's tokens); token layers
    work here (checked against ``torch.autograd.functional.hvp``). Left out of sharded runs (FSDP, FSDP2, ZeRO-3): a
    rank with nothing to explain could not mirror the double backward's collectives.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.Tanh(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> ShapleyCAM(net, "1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "shapleycam"
    floor = "1 forward + 1 backward and 1 double backward from the layer"
    aliases = ("shapley-cam",)
    shares_capture = False
    unshardable = "a double backward from the target layer"

    def layer_gradient(self, score: Tensor, activation: Tensor) -> Tensor | None:
        try:
            return shapley_gradient(score, activation)
        except RuntimeError as err:
            if "not implemented" not in str(err):
                raise
            raise RuntimeError(
                f"ShapleyCAM needs second derivatives of what follows layer {self.target_layer_name!r}, and the model "
                f"uses an operation that has none ({err}). With timm's fused attention, turn it off "
                "(timm.layers.set_fused_attn(False) before creating the model, or attn.fused_attn = False on each "
                "block); or use gradcam, whose first derivatives always exist."
            ) from err

    def weights(self, cap: Capture) -> Tensor:
        return gradcam_weights(cap.gradient)
