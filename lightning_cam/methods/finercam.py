"""Finer-CAM: a gradient method explaining the target against the classes the model confuses it with."""

from __future__ import annotations

from torch import Tensor, nn

from lightning_cam.functional.cam_variants import finer_comparisons, finer_score
from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.layers import Reshape
from lightning_cam.methods.registry import get_method, register_method
from lightning_cam.targets.task import Task
from lightning_cam.utilities.outputs import Output

__all__ = ["FinerCAM"]


@register_method
class FinerCAM(BaseCAM):
    r"""Finer-CAM (Zhang et al., CVPR 2025): ``base``'s map (Grad-CAM by default) of a score that compares the
    target with the classes closest to it.

    $$
    s = \frac{\sum_{j \in J} p_j\,(z_c - \alpha z_j)}{\sum_{j \in J} p_j + \epsilon},\qquad L = \mathrm{base}\big(
    \partial s/\partial A,\ A\big)
    $$

    $J$: the ``comparisons`` classes whose logits are closest to the target's (`finer_comparisons`), $p$ the
    softmax (`finer_score`); ``alpha`` (default 1) is how much of the neighbours' evidence is subtracted, so the map
    keeps what tells the class from the ones it is confused with. One forward and one backward, its own (the
    gradient is of $s$, not of $z_c$: never shared with the other methods' pass). Softmax classifiers only
    (``kinds``: ``task="multiclass"``; any other kind is refused at construction). Same definition as
    pytorch-grad-cam's ``FinerCAM`` with its defaults (comparison categories 1-3 of the closeness order, i.e. the 3
    closest classes).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 5))
        >>> FinerCAM(net, "1", alpha=0.8)(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "finercam"
    aliases = ("finer-cam",)
    shares_capture = False
    kinds = ("multiclass",)

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | None = None, reshape: Reshape = None,
                 alpha: float = 1.0, comparisons: int = 3, base: str = "gradcam", *, output: Output = None,
                 task: Task | str = "multiclass") -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)
        if comparisons < 1:
            raise ValueError(f"FinerCAM: comparisons (how many closest classes) must be >= 1, got {comparisons}.")
        base_cls = get_method(base)
        if not base_cls.needs_grad or base_cls.derive is not BaseCAM.derive or base_cls is FinerCAM:
            raise ValueError(f"FinerCAM: base={base!r} must be a gradient method whose map comes from one pass "
                             "(gradcam, gradcam_pp, xgradcam, layercam, hirescam, gradcam_elementwise, ...).")
        self.alpha, self.comparisons = float(alpha), int(comparisons)
        self.base = base_cls(model, target_layer, reshape, output=output, task=task)

    def score(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        return finer_score(logits, targets, finer_comparisons(logits, targets, self.comparisons), self.alpha)

    def raw_map(self, cap: Capture) -> Tensor:
        return self.base.raw_map(cap)
