"""KPCA-CAM: the activations' first kernel principal component over positions."""

from __future__ import annotations

from torch import Tensor, nn

from lightning_cam.functional.cam_variants import KERNELS, Kernel, kpca_map
from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.layers import Reshape
from lightning_cam.methods.registry import register_method
from lightning_cam.targets.task import Task
from lightning_cam.utilities.outputs import Output

__all__ = ["KPCACAM"]


@register_method
class KPCACAM(BaseCAM):
    r"""KPCA-CAM (Karmani et al., 2024): Eigen-CAM with a kernel PCA in place of the PCA, gradient-free.

    $$
    L = \mathrm{ReLU}\big(\sqrt{\lambda_1}\,v_1\big),\qquad (\lambda_1, v_1) \text{ the top eigenpair of }
    \tilde K,\quad K_{ij} = \kappa(x_i, x_j)
    $$

    over the centred rows $x_i$ of $A^\top$ (one per position), $\tilde K$ the double-centred kernel matrix
    (`kpca_map`, scikit-learn's ``KernelPCA`` with ``kernel``, ``gamma``, ``degree``, ``coef0`` and its defaults, as
    pytorch-grad-cam's ``KPCA_CAM`` calls it). Class independent: one forward, no backward. The sign is Eigen-CAM's
    (the map correlates non-negatively with the mean activation); pytorch-grad-cam keeps scikit-learn's (largest entry
    positive), so the two agree up to that sign. Cost: an ``eigh`` of a ``(hw, hw)`` matrix per sample, cheap at
    the usual 7x7 to 28x28 maps, slow beyond 56x56.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> KPCACAM(net, "1", kernel="rbf")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "kpcacam"
    aliases = ("kpca-cam", "kpca_cam")
    needs_grad = False

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | None = None, reshape: Reshape = None,
                 kernel: Kernel = "sigmoid", gamma: float | None = None, degree: int = 3, coef0: float = 1.0, *,
                 output: Output = None, task: Task | str = "multiclass") -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)
        if kernel not in KERNELS:
            raise ValueError(f"KPCACAM: unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}.")
        if gamma is not None and not gamma > 0:
            raise ValueError(f"KPCACAM: gamma must be > 0 or None (1 / channels), got {gamma}.")
        self.kernel: Kernel = kernel
        self.gamma, self.degree, self.coef0 = gamma, int(degree), float(coef0)

    def raw_map(self, cap: Capture) -> Tensor:
        return kpca_map(cap.activations, self.kernel, self.gamma, self.degree, self.coef0)
