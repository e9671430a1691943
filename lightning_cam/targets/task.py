r"""``Task``: which target kind a model is explained under, with the kind's options, and the functions every
method, the evaluator and the views call (each asks the task's kind,
[`TargetKind`][lightning_cam.targets.base.TargetKind]).

The classifier kinds:

| task | logits | score $y^c$ (differentiated) | probability $Y_c$ |
|---|---|---|---|
| `multiclass` | `(B, K)`, softmax | $z_c$ | $\mathrm{softmax}(z)_c$ |
| `multilabel` | `(B, K)`, a sigmoid each | $z_c$ | $\sigma(z_c)$ |
| `binary` | `(B, 1)`, one logit | $z$ (`c = 1`), $-z$ (`c = 0`) | $\sigma(\pm z)$ |

The predicted class (`targets=None`) is the argmax for `multiclass`, `z > 0` for `binary`; a `multilabel`
image is explained once per *pair* (image, class), for each predicted positive ($\sigma(z_c) >$ `threshold`)
or each positive label, at most `max_labels` per image.

Binary's negative class is explained through $-z$ (pytorch-grad-cam's `BinaryClassifierOutputTarget` does the
same), so its map shows the evidence *against* the positive class, and its probability is $1 - \sigma(z)$.

Examples:
    >>> z = torch.tensor([[2.0, -1.0]])
    >>> target_probability(z, torch.tensor([0]), "multiclass"), target_probability(z, torch.tensor([0]), "multilabel")
    (tensor([0.9526]), tensor([0.8808]))
    >>> target_probability(torch.tensor([[2.0]]), torch.tensor([0]), "binary")
    tensor([0.1192])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch  # noqa: F401  (used by the doctest examples)
from torch import Tensor

from lightning_cam.functional.probability import read_probability
from lightning_cam.targets.base import TARGET_REGISTRY, TargetKind, available_targets

__all__ = [
    "NO_CLASS",
    "Task",
    "check_task",
    "check_task_logits",
    "predicted_class",
    "predicted_for",
    "target_probability",
    "target_score",
]

#: a multi-label pair's class that the model does not predict (`predicted_for`) or the labels do not hold
#: (captions show it as "none"); ``-1`` stays "unknown" (no labels).
NO_CLASS = -2


@dataclass(frozen=True)
class Task:
    """A model's target kind and its options.

    Attributes:
        kind: a registered target kind: ``"multiclass"`` (default), ``"multilabel"``, ``"binary"`` (the names of
            ``torchmetrics``' ``task=``), or one of your own.
        threshold: a class is a predicted positive when its sigmoid exceeds it (``multilabel``, ``binary``).
        max_labels: at most this many pairs per image (``multilabel``, ``segmentation``): the predicted positives
            with the highest logits (the classes with the largest predicted areas), or the first positive labels in
            class order; ``None``: all.
        min_share: a segmentation pair's class covers at least this share of the image's pixels (predicted, or
            in the label mask).
        ignore_index: a class a segmentation pair never names (the background, or the label value of pixels
            without a class, as torchmetrics' ``ignore_index``); ``None``: every class.

    Examples:
        >>> Task("multilabel", threshold=0.3).kind, check_task("binary")
        ('multilabel', Task(kind='binary', threshold=0.5, max_labels=3, min_share=0.01, ignore_index=None))
        >>> Task("binary").target.name
        'binary'
    """

    kind: str = "multiclass"
    threshold: float = 0.5
    max_labels: int | None = 3
    min_share: float = 0.01
    ignore_index: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in TARGET_REGISTRY:
            raise ValueError(f"unknown task {self.kind!r}; choose one of {available_targets()} (the output kind of "
                             "the model: softmax over classes, a sigmoid per class, one logit, or a kind you "
                             "registered with @register_target).")
        if not 0.0 < float(self.threshold) < 1.0:
            raise ValueError(f"`threshold` must lie in (0, 1) (a sigmoid probability), got {self.threshold}.")
        if self.max_labels is not None and (isinstance(self.max_labels, bool) or int(self.max_labels) < 1):
            raise ValueError(f"`max_labels` must be a positive int or None (all), got {self.max_labels!r}.")
        if not 0.0 < float(self.min_share) <= 1.0:
            raise ValueError(f"`min_share` must lie in (0, 1] (a share of the image's pixels), got {self.min_share}.")
        if self.ignore_index is not None and (isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index,
                                                                                                     int)):
            raise ValueError(f"`ignore_index` must be a class index or None, got {self.ignore_index!r}.")

    @cached_property
    def target(self) -> TargetKind:
        """The task's [`TargetKind`][lightning_cam.targets.base.TargetKind], built once."""
        return TARGET_REGISTRY.get(self.kind)(self)

    @property
    def several(self) -> bool:
        """Whether ``targets=None`` (and labels) explain an image once per pair, several per image."""
        return self.target.several

    def num_classes(self, logits: Tensor) -> int:
        """The number of classes a target may name (the kind's rule: ``K``, or 2 for one binary logit)."""
        return self.target.num_classes(logits)


def check_task(task: object) -> Task:
    """A [`Task`][lightning_cam.targets.task.Task] from ``task``: a kind name, a mapping of its fields, or a Task.

    Examples:
        >>> check_task({"kind": "multilabel", "max_labels": None}).max_labels is None
        True
        >>> check_task("softmax")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown task 'softmax'; choose one of ['multiclass', 'multilabel', 'binary', 'embedding', ...
    """
    if isinstance(task, Task):
        return task
    if task is None:
        return Task()
    if isinstance(task, str):
        return Task(task)
    if isinstance(task, Mapping):
        return Task(**dict[str, Any](task))
    raise TypeError(f"`task` must be one of {available_targets()}, a Task or a mapping of its fields; got {task!r}.")


def check_task_logits(logits: Tensor, task: Task) -> Tensor:
    """The logits must fit the task's kind (e.g. one logit is ``binary`` and only ``binary``).

    Examples:
        >>> check_task_logits(torch.zeros(2, 1), Task())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: the model returns one logit per image ((2, 1)); under task='multiclass' its softmax is ...
    """
    return task.target.check_output(logits)


def target_score(logits: Tensor, targets: Tensor, task: Task | str = "multiclass", reference: Tensor | None = None
                 ) -> Tensor:
    r"""The score $y^c$ each map explains (differentiable): $z_c$, or $\pm z$ for ``binary``.

    Args:
        logits: ``(B, K)`` logits (``(B, 1)`` for ``binary``).
        targets: ``(B,)`` long classes (``0``/``1`` for ``binary``).
        task: the target kind.
        reference: the pairs' reference, fixed on the original image (`TargetKind.reference`), for a kind that
            has one; ``None``: taken from ``logits``.

    Returns:
        ``(B,)`` scores, in the logits' dtype.

    Examples:
        >>> target_score(torch.tensor([[1.5], [1.5]]), torch.tensor([1, 0]), "binary")
        tensor([ 1.5000, -1.5000])
    """
    kind = check_task(task).target
    return kind.score(logits, targets) if reference is None else kind.score(logits, targets, reference)


def target_probability(logits: Tensor, targets: Tensor, task: Task | str = "multiclass",
                       reference: Tensor | None = None) -> Tensor:
    r"""The probability $Y_c$ of each sample's target under the task's kind (the module's table).

    Args:
        logits: ``(B, K)`` logits (``(B, 1)`` for ``binary``).
        targets: ``(B,)`` long class indices.
        task: the target kind.
        reference: as for `target_score`.

    Returns:
        ``(B,)`` float32 probabilities.

    Examples:
        >>> target_probability(torch.tensor([[0.0, 0.0], [0.0, 1e4]]), torch.tensor([0, 1]))
        tensor([0.5000, 1.0000])
        >>> target_probability(torch.tensor([[9.0, 9.0]]), torch.tensor([0]), "multilabel")
        tensor([0.9999])
    """
    return read_probability(check_task(task).target.probability, logits, targets, reference)


def predicted_class(logits: Tensor, task: Task | str = "multiclass") -> Tensor:
    """``(B,)`` long: the target of ``targets=None`` (the argmax, or ``z > 0`` for ``binary``).

    Examples:
        >>> predicted_class(torch.tensor([[0.3], [-2.0]]), "binary").tolist()
        [1, 0]
    """
    return check_task(task).target.predicted(logits)


def predicted_for(logits: Tensor, targets: Tensor, task: Task | str = "multiclass") -> Tensor:
    """``(B,)`` long: what the model predicts about each explained target, as captions compare it with the truth.

    ``multiclass`` and ``binary``: the predicted class; ``multilabel`` (a pair explains one class): the target
    when its sigmoid exceeds the threshold, else `NO_CLASS`.

    Examples:
        >>> predicted_for(torch.tensor([[3.0, -3.0], [3.0, -3.0]]), torch.tensor([0, 1]), "multilabel").tolist()
        [0, -2]
    """
    return check_task(task).target.predicted_for(logits, targets)
