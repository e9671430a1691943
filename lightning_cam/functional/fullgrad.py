r"""FullGrad's pure tensor maths (Srinivas & Fleuret, NeurIPS 2019): the input-gradient and the bias-gradients of
every layer with a bias, each made a saliency map and summed.

Shapes: ``images`` and their gradient ``(B, C, H, W)``; a layer's bias ``(C,)`` and the gradient of its output
``(B, C, h, w)``; maps ``(B, H, W)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_cam.functional.cam import _check_4d
from lightning_cam.functional.normalize import upsample_maps

__all__ = ["CHANNEL_EPS", "channel_saliency", "effective_bias", "fullgrad_map"]

#: the denominator's guard of the per-channel normalisation (pytorch-grad-cam's ``scale_cam_image``)
CHANNEL_EPS = 1e-7


def channel_saliency(values: Tensor, size: tuple[int, int]) -> Tensor:
    r"""$\sum_k \psi(|v^k|)$ upsampled to ``size``: each ``(sample, channel)`` map of $|v|$ shifted to 0 and divided
    by its maximum (+ `CHANNEL_EPS`), summed over channels, bilinearly resized (``align_corners=False``).

    ``values``: ``(B, C, h, w)`` -> ``(B, H, W)`` float32. Summing before resizing is exact (resizing is linear).

    Examples:
        >>> channel_saliency(torch.tensor([[[[0.0, 2.0]], [[-4.0, 0.0]]]]), (1, 2))
        tensor([[[1., 1.]]])
    """
    _check_4d("values", values)
    flat = values.float().abs().flatten(2)
    flat = flat - flat.amin(dim=2, keepdim=True)
    flat = flat / (flat.amax(dim=2, keepdim=True) + CHANNEL_EPS)
    return upsample_maps(flat.sum(dim=1).view(values.shape[0], *values.shape[2:]), size)


def effective_bias(layer: nn.Module) -> Tensor | None:
    r"""The bias a layer adds to its output: a convolution's ``bias``; an eval-mode BatchNorm's
    $\beta - \mu\gamma/\sqrt{\sigma^2 + \epsilon}$ from its running statistics (its ``bias`` alone without them);
    ``None`` for a layer without one. Read at each call: it changes while the model trains.

    Examples:
        >>> bn = nn.BatchNorm2d(2).eval(); bn.running_mean.fill_(1.0)
        tensor([1., 1.])
        >>> effective_bias(bn)
        tensor([-1.0000, -1.0000])
    """
    bias = getattr(layer, "bias", None)
    if not isinstance(bias, Tensor):
        return None
    if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.running_mean is not None:
        assert layer.running_var is not None
        weight = layer.weight if layer.weight is not None else torch.ones_like(bias)
        return (bias - layer.running_mean * weight / torch.sqrt(layer.running_var + layer.eps)).detach()
    return bias.detach()


def fullgrad_map(images: Tensor, input_grad: Tensor, biases: list[Tensor], grads: list[Tensor]) -> Tensor:
    r"""FullGrad's raw map (before its final normalisation):

    $$
    S = \sum_k \psi\big(|x \odot \nabla_x y^c|\big)^k + \sum_{l}\sum_k \psi\big(|b_l \odot \nabla_{z_l} y^c|\big)^k
    $$

    with $\psi$ the per-channel normalisation and resize of `channel_saliency`, $b_l$ the layer's (effective)
    bias and $z_l$ its output. ``images``, ``input_grad``: ``(B, C, H, W)``; ``biases[l]``: ``(C_l,)``;
    ``grads[l]``: ``(B, C_l, h_l, w_l)`` -> ``(B, H, W)`` float32, non-negative.

    Examples:
        >>> x = torch.ones(1, 1, 2, 2)
        >>> fullgrad_map(x, torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]), [], [])
        tensor([[[1.0000, 0.0000],
                 [0.0000, 0.0000]]])
    """
    size = (int(images.shape[-2]), int(images.shape[-1]))
    total = channel_saliency(images.float() * input_grad.float(), size)
    for bias, grad in zip(biases, grads, strict=True):
        total = total + channel_saliency(bias.float()[None, :, None, None] * grad.float(), size)
    return total
