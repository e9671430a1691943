r"""The target contract: what is explained for one kind of model output, in one small class per kind.

A *target kind* says, for a batch and the model's output, everything the methods, the evaluator, the metrics
and the views need to know about what is explained; nothing downstream reads the kind's name:

| hook | what it answers |
|---|---|
| `check_output(logits)` | the output has this kind's shape (else a `ValueError` naming the fix) |
| `check_targets(targets, batch, device)` | the forms `targets` may take (else a `ValueError` naming the fix) |
| `num_classes(logits)` | how many targets a pair may name |
| `pairs(targets, logits)` | the (sample, target) pairs when one image is explained several times, else `None` |
| `predicted(logits)` | the target of `targets=None` |
| `reference(logits, targets)` | what a pair's score is measured against, fixed on the original image (or `None`) |
| `defined(logits, targets, reference)` | which pairs have a score at all (see `TargetKind.defined`) |
| `score(logits, targets, reference)` | the differentiable score each map explains, $y^c$ |
| `probability(logits, targets, reference)` | the probability the metrics read, $Y_c$ (and $O_c$ on $x \odot map$) |
| `ground_truth(masks, boxes, targets, size)` | the region the localization metrics read |
| `predicted_for(logits, targets)` | what the model predicts about each target, for captions |
| `region(logits, targets)` | the region each pair's map is about, outlined on the grids (or `None`) |
| `labels(labels)` | a batch's labels in the form `targets` take |
| `label_masks(labels)` | the ground-truth masks the labels themselves are (a segmenter's label masks), or `None` |
| `head_weights(fc_weight, targets)` | the rows of a linear head that give the score (CAM) |

A kind whose score depends on the original image (a segmentation pair's region: the pixels the model
predicts as the class) says so with `has_reference`: its `reference` is computed once from the original output,
and every pass on a changed image (the masked image of the metrics, Score-CAM's masked copies, Smooth
Grad-CAM++'s noisy copies, the insertion and deletion steps) scores the pair against it.

The built-in kinds are the modules of this package (`multiclass`, `multilabel`, `binary`, `embedding`,
`segmentation`); a new kind is one file with a `TargetKind` subclass decorated with
[`register_target`][lightning_cam.targets.base.register_target]. A kind is built for one
[`Task`][lightning_cam.targets.task.Task] (its options: `threshold`, `max_labels`) and reached as
`task.target`.

Examples:
    >>> from lightning_cam.targets.task import Task
    >>> kind = Task("multiclass").target
    >>> kind.probability(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))
    tensor([0.5000])
    >>> available_targets()
    ['multiclass', 'multilabel', 'binary', 'embedding', 'segmentation']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar

import torch
from torch import Tensor

from lightning_cam.functional.localization import class_ground_truth
from lightning_cam.utilities.checks import check_targets
from lightning_cam.utilities.registry import Registry, check_key_name

if TYPE_CHECKING:
    from lightning_cam.targets.task import Task

__all__ = ["TARGET_REGISTRY", "Pairs", "TargetKind", "available_targets", "refuse_one_logit", "register_target",
           "rows_of"]

#: ``(samples, targets, num_classes)``: the image of each pair, the target each pair explains, and the number of
#: targets when the pairing learnt it (``None`` otherwise).
Pairs = tuple[Tensor, Tensor, int | None]


def refuse_one_logit(logits: Tensor, kind: str, why: str) -> Tensor:
    """``logits`` unless the model returns one logit per image, which only ``binary`` reads: then a ``ValueError``
    that says ``why`` nothing would be measured under ``kind`` and names the fix.

    Examples:
        >>> refuse_one_logit(torch.zeros(2, 3), "multiclass", "").shape
        torch.Size([2, 3])
    """
    if int(logits.shape[-1]) == 1:
        raise ValueError(
            f"the model returns one logit per image ({tuple(logits.shape)}); under task={kind!r} {why}. For a "
            "one-logit binary classifier (BCEWithLogitsLoss) set task='binary' (on CAMMixin: `cam_task = 'binary'`)."
        )
    return logits


def rows_of(reference: Tensor | None, index: Tensor) -> Tensor | None:
    """The rows ``index`` of a kind's `reference` (``None`` stays ``None``): the reference of the pairs that
    a chunk of changed images scores.

    Examples:
        >>> rows_of(torch.tensor([[1], [2]]), torch.tensor([1, 1, 0])).tolist(), rows_of(None, torch.tensor([0]))
        ([[2], [2], [1]], None)
    """
    return None if reference is None else reference[index.to(reference.device)]


class TargetKind:
    """Base class of the target kinds: a classifier's defaults, every hook documented (see the module docstring).

    Args:
        task: the [`Task`][lightning_cam.targets.task.Task] whose options the kind reads.
    """

    #: the kind's name in ``task=`` and ``cam_task``
    name: ClassVar[str] = ""
    #: whether ``targets=None`` (and labels) explain an image once per *pair* (image, target), several per image
    several: ClassVar[bool] = False
    #: whether a pair's score is measured against a `reference` fixed on the original image
    has_reference: ClassVar[bool] = False

    def __init__(self, task: Task) -> None:
        self.task = task

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.task!r})"

    def check_output(self, logits: Tensor) -> Tensor:
        """``logits`` when they fit this kind (a classifier's ``(B, K)``); else a ``ValueError`` naming the fix."""
        if logits.ndim != 2:
            raise ValueError(
                f"the model returned shape {tuple(logits.shape)}; task={self.name!r} explains (B, num_classes) class "
                "scores. A (B, K, H, W) output of a segmentation model is task='segmentation'; otherwise wrap the "
                "model so that forward(images) returns the logits."
            )
        return logits

    def check_targets(self, targets: object, batch: int, device: torch.device) -> Tensor | None:
        """``targets`` in a form this kind explains (`check_targets`: ``None``, an int or ``(B,)`` class
        indices, and ``(B, K)`` multi-hot rows when `several`), on ``device``."""
        return check_targets(targets, batch, device, multi_hot=self.several)

    def num_classes(self, logits: Tensor) -> int:
        """How many targets a pair may name: ``K`` for ``(B, K)`` logits."""
        return int(logits.shape[-1])

    def pairs(self, targets: Tensor | None, logits: Callable[[], Tensor]) -> Pairs | None:
        """The pairs to explain when an image is explained more than once (``logits()`` runs a forward, called
        only when needed); ``None``: one target per image."""
        return None

    def predicted(self, logits: Tensor) -> Tensor:
        """``(B,)`` long: the target of ``targets=None`` (the argmax)."""
        return logits.detach().argmax(dim=1)

    def reference(self, logits: Tensor, targets: Tensor) -> Tensor | None:
        """``(B, ...)``: what each pair's score is measured against, from the output on the original image
        (``None``, the default: the score reads only the output it is given)."""
        return None

    def defined(self, logits: Tensor, targets: Tensor, reference: Tensor) -> Tensor | None:
        """``(B,)`` bool: the pairs that have a score and a probability on their original image's ``logits``
        against their `reference` (``None``, the default: all). A pair without one is left out of every metric, a
        counted fault that says why (`undefined`), never a value: a segmentation class predicted nowhere, an
        embedding with no positive similarity to its concept."""
        return None

    #: why a pair has no score, in the fault's message (a kind whose `defined` can be False says it)
    undefined: ClassVar[str] = ""

    def score(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        """``(B,)`` the differentiable score $y^c$ each map explains (the target's logit $z_c$); ``reference``
        (`reference`'s rows for these pairs) fixes what the score is measured against on a changed image."""
        return logits.gather(1, targets.long().view(-1, 1)).squeeze(1)

    def probability(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        """``(B,)`` float32: the probability $Y_c$ of each target (``reference`` as for `score`)."""
        raise NotImplementedError(f"{type(self).__name__} must define the probability of a target.")

    def predicted_for(self, logits: Tensor, targets: Tensor) -> Tensor:
        """``(B,)`` long: what the model predicts about each explained target, as captions compare it with the
        truth (default: the predicted target)."""
        return self.predicted(logits)

    def region(self, logits: Tensor, targets: Tensor) -> Tensor | None:
        """``(B, h, w)`` bool: the region each pair's map is about, outlined on the grids (default: none)."""
        return None

    def labels(self, labels: Tensor) -> Tensor:
        """A batch's ``labels`` in the form ``targets`` take (default: as they are)."""
        return labels

    def label_masks(self, labels: Tensor | None) -> Tensor | None:
        """The ground-truth masks a batch's ``labels`` are, when the batch has no others (default: none)."""
        return None

    def ground_truth(self, masks: Tensor | None, boxes: Tensor | None, targets: Tensor, size: tuple[int, int]
                     ) -> Tensor | None:
        """``(B, H, W)`` bool: the region of each pair's target
        (`class_ground_truth`); ``None`` without
        ground truth."""
        return class_ground_truth(masks, boxes, targets, size)

    def head_weights(self, fc_weight: Tensor, targets: Tensor) -> Tensor:
        """``(B, C)``: the rows of a linear head's ``(K, C)`` weight whose product with the pooled activation is
        each target's score (CAM's weights)."""
        return fc_weight[targets]


#: kind name -> class; the built-in kinds are the modules of `lightning_cam.targets`.
TARGET_REGISTRY: Registry[type[TargetKind]] = Registry("target kind", package="lightning_cam.targets", loose=False)
K = TypeVar("K", bound=type[TargetKind])


def register_target(cls: K) -> K:
    """Class decorator: register a `TargetKind` subclass under its `name`.

    Examples:
        >>> @register_target
        ... class Doubled(TargetKind):
        ...     name = "doubled_doc"
        ...     def probability(self, logits, targets):
        ...         return torch.sigmoid(2 * self.score(logits, targets).float())
        >>> "doubled_doc" in available_targets()
        True
        >>> TARGET_REGISTRY.remove("doubled_doc") is Doubled
        True
    """
    TARGET_REGISTRY.add(check_key_name(cls.name, f"target kind {cls.__name__}"), cls)
    return cls


def available_targets() -> list[str]:
    """The registered target kinds, in registration order (read when called)."""
    return TARGET_REGISTRY.names()
