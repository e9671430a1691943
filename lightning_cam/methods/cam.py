"""CAM (Zhou et al., CVPR 2016): the map from the weights of the GAP -> Linear head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.layers import Reshape, resolve_layer
from lightning_cam.methods.registry import register_method
from lightning_cam.targets.task import Task
from lightning_cam.utilities.outputs import Output

__all__ = ["CAM"]


@register_method
class CAM(BaseCAM):
    r"""CAM (Zhou et al., CVPR 2016): $L = \mathrm{ReLU}\big(\sum_k w^c_k A^k\big)$ with $w^c$ the row of
    the ``nn.Linear`` that follows global average pooling of the target layer.

    ``fc_layer`` (name or module) defaults to the last ``nn.Linear`` of the model. At every call the head is
    checked: the logits must equal ``fc(mean_ij A)``; otherwise (no GAP->Linear head, or a target layer that
    does not feed it) a ``ValueError`` says to use [`GradCAM`][lightning_cam.methods.gradient.GradCAM], which equals CAM
    up to a positive factor
    on such heads and works on any head. Matches torchcam's ``CAM``.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> CAM(net, "1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "cam"
    floor = "1 forward"
    aliases = ()
    needs_grad = False

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | nn.Module | None = None,
        reshape: Reshape = None,
        fc_layer: str | nn.Module | None = None,
        *,
        output: Output = None,
        task: Task | str = "multiclass",
    ) -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)
        if fc_layer is None:
            linears: list[tuple[str, nn.Module]] = [
                (n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)
            ]
            if not linears:
                raise ValueError(
                    f"CAM needs a global-average-pooling -> nn.Linear classifier head, and {type(model).__name__} has "
                    "no nn.Linear; use GradCAM instead (it equals CAM on such heads and works on any head)."
                )
            self.fc_layer_name, fc = linears[-1]
            assert isinstance(fc, nn.Linear)
        else:
            self.fc_layer_name, fc = resolve_layer(model, fc_layer)
            if not isinstance(fc, nn.Linear):
                raise ValueError(
                    f"fc_layer {self.fc_layer_name!r} is a {type(fc).__name__}, not an nn.Linear; CAM needs "
                    "the Linear layer after global average pooling. Use GradCAM for other heads."
                )
        self.fc_layer: nn.Linear = fc

    def weights(self, cap: Capture) -> Tensor:
        """The ``fc`` rows of the targets, once the head is checked to be GAP -> ``fc`` after the layer."""
        fc = self.fc_layer
        acts, logits = cap.activations, cap.logits.float()
        weight = fc.weight.detach().float()
        hint = (
            f"CAM needs the target layer {self.target_layer_name!r} to feed global average pooling and then the "
            f"nn.Linear {self.fc_layer_name!r} that produces the logits"
        )
        if acts.shape[1] != weight.shape[1] or logits.shape[1] != weight.shape[0]:
            raise ValueError(
                f"{hint}, but the layer has {acts.shape[1]} channels and the Linear maps {weight.shape[1]} -> "
                f"{weight.shape[0]} (the model has {logits.shape[1]} logits). Use GradCAM instead."
            )
        pooled = acts.mean(dim=(2, 3)) @ weight.T
        if fc.bias is not None:
            pooled = pooled + fc.bias.detach().float()
        tol = 1e-3 if cap.logits.dtype in (torch.float32, torch.float64) else 5e-2
        scale = float(logits.abs().amax()) + 1e-6
        if not torch.allclose(pooled, logits, rtol=tol, atol=tol * scale):
            raise ValueError(
                f"{hint}, but the logits differ from {self.fc_layer_name}(mean over positions of the activation): "
                "the model has no GAP->Linear head after this layer. Use GradCAM instead."
            )
        return self.task.target.head_weights(weight, cap.targets)
