r"""The output kind of a classifier: what a target class's score and probability are, and which classes a
multi-label image is explained for. One table, read by every method, the evaluator, the metrics' passes and
the callback.

==============  =============================  ==================================  =========================
task            logits                         score :math:`y^c` (differentiated)  probability :math:`Y_c`
==============  =============================  ==================================  =========================
``multiclass``  ``(B, K)``, softmax            :math:`z_c`                         :math:`\mathrm{softmax}(z)_c`
``multilabel``  ``(B, K)``, a sigmoid each     :math:`z_c`                         :math:`\sigma(z_c)`
``binary``      ``(B, 1)``, one logit          :math:`z` (``c = 1``), :math:`-z`   :math:`\sigma(\pm z)`
                                               (``c = 0``)
==============  =============================  ==================================  =========================

The predicted class (``targets=None``) is the argmax for ``multiclass``, ``z > 0`` for ``binary``; a
``multilabel`` image is explained once per *pair* (image, class), for each predicted positive
(:math:`\sigma(z_c) >` ``threshold``) or each positive label, at most ``max_labels`` per image
(:func:`select_pairs`).

Binary's negative class is explained through :math:`-z` (pytorch-grad-cam's ``BinaryClassifierOutputTarget``
does the same), so its map shows the evidence *against* the positive class, and its probability is
:math:`1 - \sigma(z)`.

Examples:
    >>> z = torch.tensor([[2.0, -1.0]])
    >>> target_probability(z, torch.tensor([0]), "multiclass"), target_probability(z, torch.tensor([0]), "multilabel")
    (tensor([0.9526]), tensor([0.8808]))
    >>> target_probability(torch.tensor([[2.0]]), torch.tensor([0]), "binary")
    tensor([0.1192])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "NO_CLASS",
    "TASKS",
    "Task",
    "check_task",
    "check_task_logits",
    "predicted_class",
    "predicted_for",
    "predicted_positives",
    "select_pairs",
    "target_probability",
    "target_score",
]

#: the output kinds, in the order of the module's table.
TASKS: tuple[str, ...] = ("multiclass", "multilabel", "binary")
#: a multi-label pair's class that the model does not predict (:func:`predicted_for`) or the labels do not hold
#: (captions show it as "none"); ``-1`` stays "unknown" (no labels).
NO_CLASS = -2


@dataclass(frozen=True)
class Task:
    """A classifier's output kind and, for ``multilabel``, how the pairs of an image are chosen.

    Attributes:
        kind: ``"multiclass"`` (default), ``"multilabel"`` or ``"binary"`` (the names of ``torchmetrics``'
            ``task=``).
        threshold: a class is a predicted positive when its sigmoid exceeds it (``multilabel``, ``binary``).
        max_labels: at most this many pairs per image (``multilabel``): the predicted positives with the
            highest logits, or the first positive labels in class order; ``None``: all.

    Examples:
        >>> Task("multilabel", threshold=0.3).kind, check_task("binary")
        ('multilabel', Task(kind='binary', threshold=0.5, max_labels=3))
    """

    kind: str = "multiclass"
    threshold: float = 0.5
    max_labels: int | None = 3

    def __post_init__(self) -> None:
        if self.kind not in TASKS:
            raise ValueError(f"unknown task {self.kind!r}; choose one of {list(TASKS)} (the output kind of the "
                             "classifier: softmax over classes, a sigmoid per class, or one logit).")
        if not 0.0 < float(self.threshold) < 1.0:
            raise ValueError(f"`threshold` must lie in (0, 1) (a sigmoid probability), got {self.threshold}.")
        if self.max_labels is not None and (isinstance(self.max_labels, bool) or int(self.max_labels) < 1):
            raise ValueError(f"`max_labels` must be a positive int or None (all), got {self.max_labels!r}.")

    @property
    def multilabel(self) -> bool:
        return self.kind == "multilabel"

    def num_classes(self, logits: Tensor) -> int:
        """The number of classes a target may name: ``K``, or 2 for one binary logit."""
        return 2 if self.kind == "binary" else int(logits.shape[-1])


def check_task(task: object) -> Task:
    """A :class:`Task` from ``task``: a kind name, a mapping of :class:`Task` fields, or a :class:`Task`.

    Examples:
        >>> check_task({"kind": "multilabel", "max_labels": None}).max_labels is None
        True
        >>> check_task("softmax")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown task 'softmax'; choose one of ['multiclass', 'multilabel', 'binary'] ...
    """
    if isinstance(task, Task):
        return task
    if task is None:
        return Task()
    if isinstance(task, str):
        return Task(task)
    if isinstance(task, Mapping):
        return Task(**dict[str, Any](task))
    raise TypeError(f"`task` must be one of {list(TASKS)}, a Task or a mapping of its fields; got {task!r}.")


def check_task_logits(logits: Tensor, task: Task) -> Tensor:
    """The logits must fit the output kind: one logit is ``binary`` and only ``binary``.

    Examples:
        >>> check_task_logits(torch.zeros(2, 1), Task())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: the model returns one logit per image ((2, 1)); under task='multiclass' its softmax is ...
    """
    k = int(logits.shape[-1])
    if task.kind != "binary" and k == 1:
        raise ValueError(
            f"the model returns one logit per image ({tuple(logits.shape)}); under task={task.kind!r} its softmax "
            "is always 1 and every metric would measure nothing. For a one-logit binary classifier "
            "(BCEWithLogitsLoss) set task='binary' (on CAMMixin: `cam_task = 'binary'`)."
        )
    if task.kind == "binary" and k != 1:
        raise ValueError(
            f"task='binary' expects one logit per image (B, 1), got {tuple(logits.shape)}; a two-logit softmax head "
            "is task='multiclass', a sigmoid per class is task='multilabel'."
        )
    return logits


def target_score(logits: Tensor, targets: Tensor, task: Task | str = "multiclass") -> Tensor:
    r"""The score :math:`y^c` each map explains (differentiable): :math:`z_c`, or :math:`\pm z` for ``binary``.

    Args:
        logits: ``(B, K)`` logits (``(B, 1)`` for ``binary``).
        targets: ``(B,)`` long classes (``0``/``1`` for ``binary``).

    Returns:
        ``(B,)`` scores, in the logits' dtype.

    Examples:
        >>> target_score(torch.tensor([[1.5], [1.5]]), torch.tensor([1, 0]), "binary")
        tensor([ 1.5000, -1.5000])
    """
    if check_task(task).kind == "binary":
        z = logits[:, 0]
        return torch.where(targets.to(z.device) == 1, z, -z)
    return logits.gather(1, targets.long().view(-1, 1)).squeeze(1)


def target_probability(logits: Tensor, targets: Tensor, task: Task | str = "multiclass") -> Tensor:
    r"""The probability :math:`Y_c` of each sample's target class under the output kind (the module's table).

    Args:
        logits: ``(B, K)`` logits (``(B, 1)`` for ``binary``).
        targets: ``(B,)`` long class indices.
        task: the output kind.

    Returns:
        ``(B,)`` float32 probabilities.

    Examples:
        >>> target_probability(torch.tensor([[0.0, 0.0], [0.0, 1e4]]), torch.tensor([0, 1]))
        tensor([0.5000, 1.0000])
        >>> target_probability(torch.tensor([[9.0, 9.0]]), torch.tensor([0]), "multilabel")
        tensor([0.9999])
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(
            f"expected logits (B, K) and targets (B,), got {tuple(logits.shape)} and {tuple(targets.shape)}."
        )
    kind = check_task(task).kind
    if kind == "multiclass":
        probs = torch.softmax(logits.float(), dim=1)
        return probs.gather(1, targets.long().view(-1, 1)).squeeze(1)
    return torch.sigmoid(target_score(logits.float(), targets, kind))


def predicted_class(logits: Tensor, task: Task | str = "multiclass") -> Tensor:
    """``(B,)`` long: the argmax (``multiclass``, and the top class of ``multilabel``), or ``z > 0`` (``binary``).

    Examples:
        >>> predicted_class(torch.tensor([[0.3], [-2.0]]), "binary").tolist()
        [1, 0]
    """
    if check_task(task).kind == "binary":
        return (logits.detach()[:, 0] > 0).long()
    return logits.detach().argmax(dim=1)


def predicted_for(logits: Tensor, targets: Tensor, task: Task | str = "multiclass") -> Tensor:
    """``(B,)`` long: what the model predicts about each explained target, as captions compare it with the truth.

    ``multiclass`` and ``binary``: the predicted class (:func:`predicted_class`); ``multilabel`` (a pair
    explains one class): the target when its sigmoid exceeds the threshold, else :data:`NO_CLASS`.

    Examples:
        >>> predicted_for(torch.tensor([[3.0, -3.0], [3.0, -3.0]]), torch.tensor([0, 1]), "multilabel").tolist()
        [0, -2]
    """
    t = check_task(task)
    if not t.multilabel:
        return predicted_class(logits, t)
    hit = target_probability(logits.detach(), targets, t) > t.threshold
    return torch.where(hit, targets.long(), torch.full_like(targets.long(), NO_CLASS))


def select_pairs(positive: Tensor, rank: Tensor | None = None, max_per_image: int | None = None
                 ) -> tuple[Tensor, Tensor]:
    """The (image, class) pairs of a ``(B, K)`` bool matrix, at most ``max_per_image`` per image.

    Kept per image: the positives with the highest ``rank`` (``(B, K)``, e.g. the logits), or the first in
    class order without one. The pairs come image by image, classes ascending (``positive.nonzero()``'s
    order); the count of pairs is read back from the device (one host sync).

    Returns:
        ``(samples, classes)``, two ``(P,)`` long tensors.

    Examples:
        >>> pos = torch.tensor([[True, True, True], [False, False, False], [False, True, False]])
        >>> s, c = select_pairs(pos, torch.tensor([[0.1, 0.9, 0.5], [0, 0, 0], [0, 0, 0]]), max_per_image=2)
        >>> s.tolist(), c.tolist()
        ([0, 0, 2], [1, 2, 1])
    """
    if positive.ndim != 2:
        raise ValueError(f"expected a (B, K) matrix of positives, got shape {tuple(positive.shape)}.")
    positive = positive.bool()
    if max_per_image is not None and max_per_image < positive.shape[1]:
        k = positive.shape[1]
        key = (rank.detach().float() if rank is not None else
               -torch.arange(k, device=positive.device, dtype=torch.float32).expand_as(positive))
        key = torch.where(positive, key.nan_to_num(nan=-math.inf), torch.full_like(key, -math.inf))
        order = key.argsort(dim=1, descending=True, stable=True)
        kept = torch.zeros_like(positive)
        kept.scatter_(1, order[:, :max_per_image], True)
        positive = positive & kept
    pairs = positive.nonzero()
    return pairs[:, 0], pairs[:, 1]


def predicted_positives(logits: Tensor, task: Task) -> Tensor:
    """``(B, K)`` bool: the classes whose sigmoid exceeds ``task.threshold`` (``z > logit(threshold)``)."""
    cut = math.log(task.threshold / (1.0 - task.threshold))
    return logits.detach().float() > cut
