"""Refine-CAM: one method's maps at several layers, multiplied, so a region survives only where every layer keeps
it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from lightning_cam.methods.base import BaseCAM, Need
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.layers import Reshape, TargetLayer
from lightning_cam.methods.registry import get_method, register_method
from lightning_cam.methods.result import CAMResult
from lightning_cam.methods.several import several_layers
from lightning_cam.targets.task import Task
from lightning_cam.utilities.outputs import Output

__all__ = ["RefineCAM"]


@register_method
class RefineCAM(BaseCAM):
    r"""Refine-CAM (pytorch-grad-cam's and torchcam's ``RefineCAM``): ``base``'s map at each of several layers
    $l = 1..L$, each ReLU'd, upsampled to the input and min-max normalised ($M_l$), multiplied and normalised.

    $$
    M = \operatorname{norm}\Big(\prod_{l=1}^{L} M_l\Big)
    $$

    Early layers localise finely but are noisy; the deep layer is coarse but class-specific: the product keeps the
    fine detail only where the deep map agrees (`several_layers` with ``reduce="product"``). One pass per layer
    (``base``'s own cost at each). The layers are ``target_layers`` when given (so a callback that hands every
    method its one ``target_layer`` still refines over several: ``method_kwargs={"refinecam": {"target_layers":
    ["layer2", "layer3", "layer4"]}}``), else ``target_layer`` (a list; one layer gives ``base``'s map).
    ``base`` (default ``"gradcam_pp"``, the peers' default) is any method that derives its map from one capture
    pass (not ``finercam``, ``shapleycam``, ``fullgrad`` or ``legrad``, which run their own), built with
    ``base_kwargs``. Same definition as pytorch-grad-cam's ``RefineCAM``.

    Examples:
        >>> import torch
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> RefineCAM(net, target_layers=["1", "3"], base="gradcam")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "refinecam"
    floor = "the base's, once per layer"
    aliases = ("refine-cam",)

    def __init__(self, model: nn.Module, target_layer: TargetLayer = None, reshape: Reshape = None,
                 base: str = "gradcam_pp", target_layers: Sequence[str | nn.Module] | None = None,
                 base_kwargs: Mapping[str, Any] | None = None, *, output: Output = None,
                 task: Task | str = "multiclass") -> None:
        if target_layers is not None:
            target_layer = list(target_layers)
        super().__init__(model, target_layer, reshape, output=output, task=task)
        base_cls = get_method(base)
        if (base_cls is RefineCAM or not base_cls.shares_capture or base_cls.explain is not BaseCAM.explain
                or base_cls.layer_optional):
            raise ValueError(f"RefineCAM: base={base!r} must be a method whose map comes from one capture pass at a "
                             "layer (gradcam_pp, gradcam, layercam, xgradcam, hirescam, eigencam, scorecam, ...).")
        first = self.target_layers[0] if self.target_layers else None
        self.base = base_cls(model, first, reshape, output=output, task=task, **dict(base_kwargs or {}))

    def needs(self) -> Need:
        return self.base.needs()

    def derive(self, cap: Capture, x: Tensor, extra: ExtraInputs) -> Tensor:
        return self.base.derive(cap, x, extra)

    def postprocess(self, raw: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        return self.base.postprocess(raw, size)

    def combine(self, results: list[CAMResult]) -> CAMResult:
        return several_layers(results, reduce="product")
