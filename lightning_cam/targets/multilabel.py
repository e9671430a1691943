r"""``multilabel``: a sigmoid per class, ``(B, K)`` logits; an image is explained once per *pair* (image, class):
each positive label of a ``(B, K)`` multi-hot matrix, or each predicted positive ($\sigma(z_c) >$ ``threshold``),
at most ``max_labels`` per image; a pair's probability is $\sigma(z_c)$ and its ground truth the class's mask."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lightning_cam.functional.pairs import predicted_positives, select_pairs
from lightning_cam.functional.probability import sigmoid_probability
from lightning_cam.targets.base import Pairs, TargetKind, refuse_one_logit, register_target
from lightning_cam.targets.task import NO_CLASS
from lightning_cam.utilities.checks import as_multi_hot

__all__ = ["MultilabelTarget"]


@register_target
class MultilabelTarget(TargetKind):
    """A sigmoid per class, one pair per positive.

    Examples:
        >>> from lightning_cam.targets.task import Task
        >>> kind = Task("multilabel", max_labels=1).target
        >>> samples, classes, k = kind.pairs(torch.tensor([[0, 1, 1], [1, 0, 0]]), lambda: torch.zeros(2, 3))
        >>> samples.tolist(), classes.tolist(), k
        ([0, 1], [1, 0], 3)
    """

    name = "multilabel"
    several = True

    def check_output(self, logits: Tensor) -> Tensor:
        return refuse_one_logit(super().check_output(logits), self.name, "there is nothing to pair")

    def pairs(self, targets: Tensor | None, logits: Callable[[], Tensor]) -> Pairs | None:
        if targets is not None and targets.ndim == 1:
            return None  # one class per image, as for the other kinds
        if targets is None:
            z = logits().detach()
            samples, classes = select_pairs(predicted_positives(z, self.task.threshold), z, self.task.max_labels)
            return samples, classes, int(z.shape[1])
        samples, classes = select_pairs(as_multi_hot(targets), None, self.task.max_labels)
        return samples, classes, int(targets.shape[1])

    def probability(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        return sigmoid_probability(logits, targets)

    def predicted_for(self, logits: Tensor, targets: Tensor) -> Tensor:
        hit = self.probability(logits.detach(), targets) > self.task.threshold
        return torch.where(hit, targets.long(), torch.full_like(targets.long(), NO_CLASS))
