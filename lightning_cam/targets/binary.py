r"""``binary``: one logit $z$ per image, ``(B, 1)``; class 1 is explained through $z$, class 0 through $-z$
(the evidence *against* the positive class, as pytorch-grad-cam's ``BinaryClassifierOutputTarget``), with
probabilities $\sigma(\pm z)$."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_cam.functional.probability import check_probability_inputs
from lightning_cam.targets.base import TargetKind, register_target

__all__ = ["BinaryTarget"]


@register_target
class BinaryTarget(TargetKind):
    """One logit for two classes, 0 and 1.

    Examples:
        >>> from lightning_cam.targets.task import Task
        >>> kind = Task("binary").target
        >>> kind.score(torch.tensor([[1.5], [1.5]]), torch.tensor([1, 0])), kind.predicted(torch.tensor([[-2.0]]))
        (tensor([ 1.5000, -1.5000]), tensor([0]))
        >>> kind.head_weights(torch.tensor([[1.0, -2.0]]), torch.tensor([1, 0]))
        tensor([[ 1., -2.],
                [-1.,  2.]])
    """

    name = "binary"

    def check_output(self, logits: Tensor) -> Tensor:
        if int(super().check_output(logits).shape[-1]) != 1:
            raise ValueError(
                f"task='binary' expects one logit per image (B, 1), got {tuple(logits.shape)}; a two-logit softmax "
                "head is task='multiclass', a sigmoid per class is task='multilabel'."
            )
        return logits

    def num_classes(self, logits: Tensor) -> int:
        return 2

    def predicted(self, logits: Tensor) -> Tensor:
        return (logits.detach()[:, 0] > 0).long()

    def score(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        z = logits[:, 0]
        return torch.where(targets.to(z.device) == 1, z, -z)

    def probability(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        check_probability_inputs(logits, targets)
        return torch.sigmoid(self.score(logits.float(), targets))

    def labels(self, labels: Tensor) -> Tensor:
        return (labels > 0.5).long() if labels.ndim == 1 and labels.is_floating_point() else labels

    def head_weights(self, fc_weight: Tensor, targets: Tensor) -> Tensor:
        row = fc_weight[0].expand(targets.shape[0], -1)
        return torch.where((targets == 1).view(-1, 1).to(row.device), row, -row)
