"""FullGrad: the input-gradient and every bias-gradient of the network, summed into one map."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from lightning_cam.functional.fullgrad import effective_bias, fullgrad_map
from lightning_cam.methods.layers import Reshape, TargetLayer
from lightning_cam.methods.own_pass import OwnPassCAM
from lightning_cam.methods.registry import register_method
from lightning_cam.targets.task import Task
from lightning_cam.utilities.outputs import Output

__all__ = ["FullGrad"]


def bias_layers(model: nn.Module) -> list[nn.Module]:
    """Every ``Conv2d`` and ``BatchNorm2d`` of ``model`` (subclasses included) that adds a bias, in module order."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) and effective_bias(m) is not None]


@register_method
class FullGrad(OwnPassCAM):
    r"""FullGrad (Srinivas & Fleuret, "Full-Gradient Representation for Neural Network Visualization", NeurIPS 2019).

    $$
    L = \operatorname{norm}\Big(\sum_k \psi\big(|x \odot \nabla_x y^c|\big)^k
      + \sum_{l}\sum_k \psi\big(|b_l \odot \nabla_{z_l} y^c|\big)^k\Big)
    $$

    over every ``Conv2d`` and ``BatchNorm2d`` $l$ with a bias $b_l$ (a BatchNorm's from its running statistics,
    read at each call), $z_l$ its output, $\psi$ each channel's shift to 0, division by its maximum and bilinear
    resize to the input (`lightning_cam.functional.fullgrad`). The whole network is the "layer": ``target_layer``
    is ignored (``None`` is fine). One forward and one backward to the input, its own (`OwnPassCAM`): tensor
    hooks read each bias layer's output gradient as the backward passes it, before any in-place ReLU changes that
    output (no parameter ``.grad``). ``low_res`` is at the input's size. Same definition as
    pytorch-grad-cam's ``FullGrad`` (which reads the biases once, at construction).

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> FullGrad(net)(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "fullgrad"
    floor = "1 forward + 1 backward to the input"
    aliases = ("full-grad",)

    def __init__(self, model: nn.Module, target_layer: TargetLayer = None, reshape: Reshape = None, *,
                 output: Output = None, task: Task | str = "multiclass") -> None:
        super().__init__(model, None, reshape, output=output, task=task)
        self.target_layer_name = "<every bias layer>"
        self._found: list[tuple[Tensor, Tensor]] = []  # (bias, output gradient) per call of a bias layer

    @contextlib.contextmanager
    def hooks(self) -> Iterator[None]:
        def record(module: nn.Module, args: object, out: object) -> None:
            bias = effective_bias(module)
            if isinstance(out, Tensor) and out.requires_grad and bias is not None:
                out.register_hook(_keep(self._found, bias))

        self._found = []
        handles = [layer.register_forward_hook(record) for layer in bias_layers(self.model)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def pass_map(self, inputs: Tensor, logits: Tensor, targets: Tensor, reference: Tensor | None) -> Tensor:
        (input_grad,) = torch.autograd.grad(self.score(logits, targets, reference).sum(), inputs)
        found, self._found = self._found, []
        return fullgrad_map(inputs.detach(), input_grad, [b for b, _ in found], [g for _, g in found])


def _keep(found: list[tuple[Tensor, Tensor]], bias: Tensor) -> Callable[[Tensor], None]:
    def hook(grad: Tensor) -> None:
        found.append((bias, grad.detach()))

    return hook
