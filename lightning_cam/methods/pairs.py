"""Pairs: when the target kind explains an image more than once (one map per (image, target) pair).

The kind's [`pairs`][lightning_cam.targets.base.TargetKind.pairs] hook says which pairs (e.g. ``multilabel``:
every positive label of a ``(B, K)`` multi-hot matrix, or every predicted positive, found with one extra
forward). The pairs' images are repeated and explained as a batch of their own, so every pass, metric and
reduction treats a pair as a sample; ``CAMResult.samples`` names the image of each map. A kind without pairs
keeps one map per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.result import CAMResult
from lightning_cam.methods.targets import mark_checked
from lightning_cam.targets.task import Task

__all__ = ["Paired", "check_reference", "empty_result", "pair_up", "prepare"]


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
    """The pairs to explain (the kind's [`pairs`][lightning_cam.targets.base.TargetKind.pairs]);
    ``logits(images, extra)`` is called only when the kind needs the predictions to find them.

    Examples:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> hot = torch.tensor([[True, False, True], [False, True, False]])
        >>> p = pair_up(Task("multilabel"), torch.rand(2, 1, 2, 2), hot, ExtraInputs(), lambda x, e: net(x))
        >>> p.images.shape, p.samples.tolist(), p.targets.tolist()
        (torch.Size([3, 1, 2, 2]), [0, 0, 1], [0, 2, 1])
    """
    found = task.target.pairs(targets, lambda: logits(images, extra))
    if found is None:
        return Paired(images, targets, extra)
    samples, classes, num_classes = found
    if targets is None:
        classes = mark_checked(classes)  # column indices of the logits: in range
    return Paired(images[samples], classes, extra.take(samples, int(images.shape[0])), samples, num_classes)


def prepare(task: Task, images: Tensor, targets: object, extra: ExtraInputs,
            logits: Callable[[Tensor, ExtraInputs], Tensor], ensure_layer: Callable[[Tensor, ExtraInputs], None]
            ) -> Paired:
    """A method call's checked targets and what it explains (`pair_up`), out of inference mode (usable
    with autograd); with multi-label pairs to find, the target layer is chosen on the images first (the pairs
    may be none)."""
    target_t = task.target.check_targets(targets, images.shape[0], images.device)
    x = images.clone() if images.is_inference() else images.detach()
    if target_t is not None and target_t.is_inference():
        target_t = target_t.clone()  # inference tensors cannot be saved for backward (gather's index)
    if task.several and (target_t is None or target_t.ndim >= 2):
        ensure_layer(x, extra)
    return pair_up(task, x, target_t, extra, logits)


def check_reference(reference: Tensor | None, job: Paired) -> None:
    """A given ``reference`` goes with one given target per image (one row each), never with pairs found here.

    Examples:
        >>> job = Paired(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), ExtraInputs())
        >>> check_reference(torch.zeros(2, 2, 2, dtype=torch.bool), job)
        >>> check_reference(torch.zeros(3, 2, 2, dtype=torch.bool), job)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `reference` must have one row per explained target (2, one per image) ...
    """
    if reference is None:
        return
    n = int(job.images.shape[0])
    if job.targets is None or job.samples is not None or int(reference.shape[0]) != n:
        raise ValueError(
            f"`reference` must have one row per explained target ({n}, one per image) and come with (B,) targets, got "
            f"{tuple(reference.shape)} with targets {'None' if job.targets is None else tuple(job.targets.shape)}; "
            "pass the pairs themselves (one image and one class per row) with their reference."
        )


def empty_result(job: Paired, size: tuple[int, int]) -> CAMResult:
    """The result of a multi-label call without any pair (no positive label, no predicted positive)."""
    x = job.images
    empty = x.new_zeros((0, *size), dtype=torch.float32)
    return CAMResult(empty, empty, x.new_zeros((0, job.num_classes or 1), dtype=torch.float32),
                     torch.zeros(0, dtype=torch.long, device=x.device), samples=job.samples)
