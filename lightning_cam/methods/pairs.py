"""Multi-label calls: one map per (image, class) pair.

Under the ``multilabel`` output kind (:mod:`lightning_cam.functional.task`) a method explains an image once
per class: for every positive label when ``targets`` is a ``(B, K)`` multi-hot matrix, for every predicted
positive (sigmoid above the task's ``threshold``, one extra forward to find them) when ``targets`` is
``None``, at most ``max_labels`` per image. The pairs' images are repeated and explained as a batch of their
own, so every pass, metric and reduction treats a pair as a sample; ``CAMResult.samples`` names the image of
each map. ``(B,)`` class indices keep one map per image, as for the other kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lightning_cam.functional.task import Task, predicted_positives, select_pairs
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.result import CAMResult
from lightning_cam.methods.targets import mark_checked
from lightning_cam.utilities.checks import as_multi_hot, check_targets

__all__ = ["Paired", "empty_result", "label_pairs", "pair_up", "prepare"]


@dataclass
class Paired:
    """What a method explains after the pairing: ``images`` ``(P, C, H, W)``, their ``targets`` ``(P,)`` (or
    ``None``: the predicted class), their ``extra`` inputs, and ``samples`` ``(P,)`` (the image of each pair;
    ``None``: no pairing, ``P == B``). ``num_classes`` is the number of logits when the pairing learnt it."""

    images: Tensor
    targets: Tensor | None
    extra: ExtraInputs
    samples: Tensor | None = None
    num_classes: int | None = None


def pair_up(task: Task, images: Tensor, targets: Tensor | None, extra: ExtraInputs,
            logits: Callable[[Tensor, ExtraInputs], Tensor]) -> Paired:
    """The pairs to explain (see the module docstring); ``logits(images, extra)`` is called only to find
    predicted positives.

    Examples:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> hot = torch.tensor([[True, False, True], [False, True, False]])
        >>> p = pair_up(Task("multilabel"), torch.rand(2, 1, 2, 2), hot, ExtraInputs(), lambda x, e: net(x))
        >>> p.images.shape, p.samples.tolist(), p.targets.tolist()
        (torch.Size([3, 1, 2, 2]), [0, 0, 1], [0, 2, 1])
    """
    if not task.multilabel or (targets is not None and targets.ndim == 1):
        return Paired(images, targets, extra)
    num_classes = None
    if targets is None:
        z = logits(images, extra).detach()
        samples, classes = select_pairs(predicted_positives(z, task), z, task.max_labels)
        classes, num_classes = mark_checked(classes), int(z.shape[1])  # column indices of the logits: in range
    else:
        samples, classes = label_pairs(task, targets)
        num_classes = int(targets.shape[1])
    return Paired(images[samples], classes, extra.take(samples, int(images.shape[0])), samples, num_classes)


def label_pairs(task: Task, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(samples, classes)``: the pairs a ``(B, K)`` multi-hot ``labels`` matrix gives (the first
    ``task.max_labels`` positives of each image, in class order).

    Examples:
        >>> import torch
        >>> s, c = label_pairs(Task("multilabel", max_labels=1), torch.tensor([[0, 1, 1], [1, 0, 0]]))
        >>> s.tolist(), c.tolist()
        ([0, 1], [1, 0])
    """
    return select_pairs(as_multi_hot(labels), None, task.max_labels)


def prepare(task: Task, images: Tensor, targets: object, extra: ExtraInputs,
            logits: Callable[[Tensor, ExtraInputs], Tensor], ensure_layer: Callable[[Tensor, ExtraInputs], None]
            ) -> Paired:
    """A method call's checked targets and what it explains (:func:`pair_up`), out of inference mode (usable
    with autograd); with multi-label pairs to find, the target layer is chosen on the images first (the pairs
    may be none)."""
    target_t = check_targets(targets, images.shape[0], images.device, multi_hot=task.multilabel)
    x = images.clone() if images.is_inference() else images.detach()
    if target_t is not None and target_t.is_inference():
        target_t = target_t.clone()  # inference tensors cannot be saved for backward (gather's index)
    if task.multilabel and (target_t is None or target_t.ndim == 2):
        ensure_layer(x, extra)
    return pair_up(task, x, target_t, extra, logits)


def empty_result(job: Paired, size: tuple[int, int]) -> CAMResult:
    """The result of a multi-label call without any pair (no positive label, no predicted positive)."""
    x = job.images
    empty = x.new_zeros((0, *size), dtype=torch.float32)
    return CAMResult(empty, empty, x.new_zeros((0, job.num_classes or 1), dtype=torch.float32),
                     torch.zeros(0, dtype=torch.long, device=x.device), samples=job.samples)
