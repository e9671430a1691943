"""The checked-targets cache: target tensors known to hold valid class indices, so that checking them again
(a read back to the host, i.e. a device sync) is skipped on every later pass of the same call."""

from __future__ import annotations

import weakref

from torch import Tensor

from lightning_cam.targets.task import Task, predicted_class
from lightning_cam.utilities.checks import check_target_range

__all__ = ["is_checked", "mark_checked", "resolve_targets"]

# Target tensors known to be in range (an argmax, or already checked), by id: checking again would read the
# tensor back to the host (a device sync) at every pass, e.g. the evaluator's second pass on x * map.
_CHECKED: weakref.WeakValueDictionary[int, Tensor] = weakref.WeakValueDictionary()


def mark_checked(targets: Tensor) -> Tensor:
    """Mark ``targets`` as valid class indices (no range check, hence no host sync, when passed again); returns it.

    Only for tensors derived from checked ones (an argmax of the logits, a reordering of checked targets).

    Examples:
        >>> import torch
        >>> t = mark_checked(torch.tensor([0, 2]))
        >>> is_checked(t), is_checked(t.clone())
        (True, False)
    """
    _CHECKED[id(targets)] = targets
    return targets


def is_checked(targets: Tensor) -> bool:
    """Whether ``targets`` was marked by `mark_checked`."""
    return _CHECKED.get(id(targets)) is targets


def resolve_targets(logits: Tensor, targets: Tensor | None, task: Task, trusted: bool = False) -> Tensor:
    """The classes a pass explains: the predicted class of ``logits`` under ``task``, or ``targets`` range-checked
    against the task's classes (a host sync) unless ``trusted`` or already checked; marked as checked.

    Examples:
        >>> import torch
        >>> resolve_targets(torch.tensor([[0.2, 0.9]]), None, Task()).tolist()
        [1]
    """
    if targets is None:
        return mark_checked(predicted_class(logits, task))
    if not (trusted or is_checked(targets)):
        check_target_range(targets, task.num_classes(logits))
    return mark_checked(targets)
