"""FEM, the Feature Explanation Method: channels weighted by how much of them lies above their k-sigma threshold."""

from __future__ import annotations

from torch import Tensor, nn

from lightning_cam.functional.cam_variants import fem_weights
from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.layers import Reshape
from lightning_cam.methods.registry import register_method
from lightning_cam.targets.task import Task
from lightning_cam.utilities.outputs import Output

__all__ = ["FEM"]


@register_method
class FEM(BaseCAM):
    r"""FEM (Fuad et al., IPTA 2020), gradient-free.

    $$
    w_k = \frac{1}{hw}\sum_{ij}\big[A^k_{ij} > \mu_k + k\,\sigma_k\big],\qquad L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)
    $$

    $\mu_k$, $\sigma_k$: the mean and population standard deviation of channel $k$ over positions
    (`fem_weights`); ``k`` (default 2) is the k-sigma rule's factor. Class independent, like Eigen-CAM: one
    forward, no backward. Same definition as pytorch-grad-cam's ``FEM``.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> FEM(net, "1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "fem"
    needs_grad = False

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | None = None, reshape: Reshape = None,
                 k: float = 2.0, *, output: Output = None, task: Task | str = "multiclass") -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)
        if not k >= 0:
            raise ValueError(f"FEM: k (the k-sigma rule's factor) must be >= 0, got {k}.")
        self.k = float(k)

    def weights(self, cap: Capture) -> Tensor:
        return fem_weights(cap.activations, self.k)
