"""The records CAM work passes along: a batch's parts (`CAMBatch`, what `CAMMixin.cam_inputs` returns), and
what the scoring step ([`score_batch`][lightning_cam.scoring.score_batch]) makes of it, one `MethodRecord` per
method in one `BatchRecord`, which every observer (the metric accumulator, each view, the probe reuse) reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.result import CAMResult
from lightning_cam.targets.task import NO_CLASS

__all__ = ["BatchRecord", "CAMBatch", "MethodRecord"]


@dataclass
@dataclass
class CAMBatch:
    """The parts of a batch that CAM work needs.

    Attributes:
        images: ``(B, C, H, W)`` float tensor, in the model's input space (already normalised).
        labels: ``(B,)`` long tensor of true classes, a ``(B, K)`` bool multi-hot matrix (``multilabel``), the
            ``(B, H, W)`` long label masks of a segmenter (``segmentation``), or ``None``.
        masks: ``(B, H, W)`` bool/float ground-truth object masks, ``(B, K, H, W)`` a mask per class, ``(B, H, W)``
            long label masks (``segmentation``), or ``None``.
        boxes: ``(B, 4)`` ``(x0, y0, x1, y1)`` pixel boxes, ``(B, N, 5)`` rows ``(x0, y0, x1, y1, class)``, or
            ``None`` (`class_ground_truth`).
        extra: further model inputs, ``model(images, *args, **kwargs)``: a tuple (positional), a dict
            (keyword) or [`ExtraInputs`][lightning_cam.methods.ExtraInputs]; ``None`` for ``forward(images)``.
            Per-sample tensors (first dimension ``B``) follow the images through every forward.

    Examples:
        >>> parts = CAMBatch(torch.rand(3, 3, 4, 4), torch.tensor([0, 1, 2]), extra=(torch.arange(3),))
        >>> part = parts.take(torch.tensor([2, 0]))
        >>> part.labels.tolist(), part.extra.args[0].tolist()
        ([2, 0], [2, 0])
    """

    images: Tensor
    labels: Tensor | None = None
    masks: Tensor | None = None
    boxes: Tensor | None = None
    extra: ExtraInputs | tuple[Any, ...] | Mapping[str, Any] | None = None

    def take(self, index: Tensor) -> CAMBatch:
        """The samples ``index`` (``(n,)`` long, any order) of every part, detached copies (new tensors, usable
        with autograd outside inference mode); the extra inputs follow their samples. No host sync."""

        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.detach()[index.to(t.device)]

        images = self.images.detach()[index.to(self.images.device)]
        extra = ExtraInputs.of(self.extra).take(index, self.images.shape[0]) if self.extra is not None else None
        return CAMBatch(images, pick(self.labels), pick(self.masks), pick(self.boxes), extra)


    def pairs(self, samples: Tensor, classes: Tensor) -> CAMBatch:
        """The batch of a multi-label call's (image, class) pairs (``CAMResult.samples`` and ``.targets``): every
        part follows its image (`take`; per-class masks and class boxes are narrowed to the pair's class
        by the evaluator), and the labels become the pair's class where the image's labels hold it, else
        `NO_CLASS`.

        Examples:
            >>> parts = CAMBatch(torch.rand(2, 3, 4, 4), torch.tensor([[True, False], [True, True]]))
            >>> parts.pairs(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])).labels.tolist()
            [0, -2, 1]
        """
        part = self.take(samples)
        labels = part.labels
        if labels is not None:
            cls = classes.to(labels.device).long()
            if labels.ndim == 3:  # segmentation label masks: the class is held where any pixel has it
                held = (labels == cls.view(-1, 1, 1)).flatten(1).any(dim=1)
            else:
                held = labels[torch.arange(cls.shape[0], device=cls.device), cls] if labels.ndim == 2 else labels == cls
            part.labels = torch.where(held.bool(), cls, torch.full_like(cls, NO_CLASS))
        return part


@dataclass(frozen=True)
class MethodRecord:
    """One method's scored samples of a batch.

    Attributes:
        name: the method's canonical name.
        parts: the scored samples (one per pair for a paired kind), in the batch's order (the same object for
            every method of an unpaired batch: no copy per method).
        result: their maps (NaN for a left-out sample: a non-finite or blank map), logits and targets.
        values: metric name -> ``(B,)`` per-sample values (NaN for a left-out sample).
        kept: ``(B,)`` bool, the samples that entered the metrics.
        index: ``(B,)`` long, each row's position in the scored batch (so two methods' rows pair up by sample).
        skipped: the requested metrics the batch could not give (localization without masks or boxes).
    """

    name: str
    parts: CAMBatch
    result: CAMResult
    values: Mapping[str, Tensor]
    kept: Tensor
    index: Tensor
    skipped: tuple[str, ...] = ()

    @property
    def batch_size(self) -> int:
        """The number of scored rows (pairs or images)."""
        return int(self.kept.shape[0])


@dataclass(frozen=True)
class BatchRecord:
    """Everything one scored batch produced: what each observer reads, through one ``observe(record)``.

    Attributes:
        parts: the scored samples, in the batch's own order (before any pairing).
        methods: method name -> its [`MethodRecord`][lightning_cam.record.MethodRecord], for the methods that
            produced one (a method that raised is a fault, and has none).
        shared: the shared pass's results in the batch's own order, when every method came from one
            [`MethodGroup`][lightning_cam.methods.group.MethodGroup] pass (the probe reuse reads them).
    """

    parts: CAMBatch
    methods: dict[str, MethodRecord] = field(default_factory=dict)
    shared: Mapping[str, CAMResult] | None = None

    @property
    def skipped(self) -> tuple[str, ...]:
        """The metrics some method could not give on this batch (localization without ground truth)."""
        return tuple(dict.fromkeys(k for rec in self.methods.values() for k in rec.skipped))
