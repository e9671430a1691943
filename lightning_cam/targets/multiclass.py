"""``multiclass``: a softmax classifier, ``(B, K)`` logits; a pair is (image, class), its score the class's logit
$z_c$, its probability $\\mathrm{softmax}(z)_c$, its ground truth the image's object (or the class's mask)."""

from __future__ import annotations

from torch import Tensor

from lightning_cam.functional.probability import softmax_probability
from lightning_cam.targets.base import TargetKind, refuse_one_logit, register_target

__all__ = ["MulticlassTarget"]


@register_target
class MulticlassTarget(TargetKind):
    """Softmax over classes (the default kind).

    Examples:
        >>> import torch
        >>> from lightning_cam.targets.task import Task
        >>> Task("multiclass").target.probability(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
        tensor([0.9526])
    """

    name = "multiclass"

    def check_output(self, logits: Tensor) -> Tensor:
        why = "its softmax is always 1 and every metric would measure nothing"
        return refuse_one_logit(super().check_output(logits), self.name, why)

    def probability(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        return softmax_probability(logits, targets)
