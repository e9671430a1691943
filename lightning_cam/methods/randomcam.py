"""Random-CAM: the sanity baseline whose channel weights owe nothing to the model."""

from __future__ import annotations

from torch import Tensor, nn

from lightning_cam.functional.cam_variants import random_weights
from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.layers import Reshape
from lightning_cam.methods.registry import register_method
from lightning_cam.targets.task import Task
from lightning_cam.utilities.outputs import Output

__all__ = ["RandomCAM"]


@register_method
class RandomCAM(BaseCAM):
    r"""Random-CAM (pytorch-grad-cam's ``RandomCAM``): $L = \mathrm{ReLU}\big(\sum_k w_k A^k\big)$, $w_k \sim
    \mathcal U(-1, 1)$.

    A baseline: a metric that scores it as well as Grad-CAM measures the activations, not the explanation. The
    weights (`random_weights`) are one draw from a private generator seeded with ``seed`` at every call (the global
    RNG and the training's random stream are never touched), the same for every sample and at every call: a sample's
    map does not depend on its batch, repeated validations are comparable and every rank draws alike.
    pytorch-grad-cam draws a fresh row per sample from NumPy's global RNG at each call (the same distribution per
    sample), and its base class computes a gradient it does not use; here one forward, no backward. The same map
    given the same weights; another ``seed`` is another random baseline.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> x = torch.randn(2, 3, 8, 8)
        >>> torch.equal(RandomCAM(net, "1")(x), RandomCAM(net, "1")(x))
        True
    """

    name = "randomcam"
    aliases = ("random-cam", "random")
    needs_grad = False

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | None = None, reshape: Reshape = None,
                 seed: int = 0, *, output: Output = None, task: Task | str = "multiclass") -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)
        self.seed = int(seed)

    def weights(self, cap: Capture) -> Tensor:
        a = cap.activations
        return random_weights(a.shape[0], a.shape[1], self.seed, device=a.device, dtype=a.dtype)
