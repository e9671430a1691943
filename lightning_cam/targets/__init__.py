"""Target kinds: what is explained for each kind of model output (one file each, registered with
`@register_target`), and the [`Task`][lightning_cam.targets.task.Task] that picks one.

Examples:
    >>> available_targets()
    ['multiclass', 'multilabel', 'binary', 'embedding', 'segmentation']
"""

from lightning_cam.targets.base import TARGET_REGISTRY, Pairs, TargetKind, available_targets, register_target

# isort: split
# The import order below is the registration order (the design table's): one block per kind.
from lightning_cam.targets.multiclass import MulticlassTarget

# isort: split
from lightning_cam.targets.multilabel import MultilabelTarget

# isort: split
from lightning_cam.targets.binary import BinaryTarget

# isort: split
from lightning_cam.targets.task import (
    NO_CLASS,
    Task,
    check_task,
    check_task_logits,
    predicted_class,
    predicted_for,
    target_probability,
    target_score,
)

TARGET_REGISTRY.load()  # any other target kind of this package, in name order

__all__ = [
    "NO_CLASS",
    "BinaryTarget",
    "MulticlassTarget",
    "MultilabelTarget",
    "TARGET_REGISTRY",
    "Pairs",
    "TargetKind",
    "Task",
    "available_targets",
    "check_task",
    "check_task_logits",
    "predicted_class",
    "predicted_for",
    "register_target",
    "target_probability",
    "target_score",
]
