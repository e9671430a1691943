"""Per-class curves ``cam/<method>/per_class/<metric>/<class name>`` (view ``"per_class"``, opt-in): every metric's mean
per true class (the explained class when the batch has no labels; a multi-label pair's own class), from the
per-sample values the callback already computes, in ``torchmetrics`` sum states
(`PerClassMetrics`, so DDP-safe).

The keys live under their own branch ``per_class/``: no logged key is a prefix path of another, so loggers
that store keys as paths (MLflow's file store: ``cam/<method>/<metric>`` is a file) keep them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_cam.callbacks.scalars import ScalarLog
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.callbacks.views.base import Chart, View, ViewContext, register_view
from lightning_cam.methods import CAMResult
from lightning_cam.metrics.per_class import PerClassMetrics
from lightning_cam.record import BatchRecord, CAMBatch, MethodRecord
from lightning_cam.utilities.lightning import rank_zero_warn

__all__ = ["PerClassView", "class_names_of", "class_tag", "per_class_tag", "scored_class"]


def class_tag(name: str) -> str:
    """A class name as a key part: letters, digits, ``_`` and ``.`` kept, anything else ``_``.

    Examples:
        >>> class_tag("traffic light/red")
        'traffic_light_red'
    """
    return re.sub(r"[^A-Za-z0-9_.]", "_", str(name)) or "_"


def per_class_tag(method: str, metric: str, class_name: str) -> str:
    """The logged key of one method's metric on one class.

    Examples:
        >>> per_class_tag("gradcam", "iou", "traffic light")
        'cam/gradcam/per_class/iou/traffic_light'
    """
    return f"cam/{method}/per_class/{metric}/{class_tag(class_name)}"


def scored_class(parts: CAMBatch, result: CAMResult) -> Tensor:
    """``(B,)`` long: the class a scored sample counts for: its true class, the explained one without labels, a
    multi-label pair's own class (its label is then the class, or ``NO_CLASS``, which falls back to it).

    Examples:
        >>> r = CAMResult(torch.zeros(2, 2, 2), torch.zeros(2, 1, 1), torch.zeros(2, 3), torch.tensor([2, 1]))
        >>> scored_class(CAMBatch(torch.zeros(2, 3, 2, 2), torch.tensor([0, -2])), r).tolist()
        [0, 1]
    """
    targets = result.targets.to(result.maps.device).long()
    if parts.labels is None:
        return targets
    labels = parts.labels.to(targets.device).long()
    return torch.where(labels >= 0, labels, targets)


def class_names_of(trainer: Any, pl_module: Any) -> list[str] | None:
    """The class names for per-class keys: the module's ``cam_class_names``, else the datamodule's
    ``class_names``; ``None`` when neither has any."""
    for owner in (pl_module, getattr(trainer, "datamodule", None)):
        names = getattr(owner, "cam_class_names", None) or getattr(owner, "class_names", None)
        if names:
            return [str(n) for n in names]
    return None


@register_view
class PerClassView(View):
    """View ``"per_class"``: ``cam/<method>/per_class/<metric>/<class>`` for every class with samples.

    Examples:
        >>> PerClassView.chart("cam/gradcam/per_class/iou/circle")
        ('CAM per class', 'iou per class (gradcam)', 'circle')
    """

    name = "per_class"

    def __init__(self, ctx: ViewContext) -> None:
        super().__init__(ctx)
        self.classes: dict[str, PerClassMetrics] = {}
        self.class_names: list[str] | None = None
        self._warned = False

    def keys(self, class_names: Sequence[str] | None, with_probe: bool) -> list[str]:
        return [per_class_tag(m, k, c) for m in self.ctx.methods for k in self.ctx.metrics for c in class_names or ()]

    @classmethod
    def chart(cls, key: str) -> Chart | None:
        parts = key.split("/")
        if len(parts) < 5 or parts[2] != "per_class":
            return None
        return "CAM per class", f"{parts[3]} per class ({parts[1]})", "/".join(parts[4:])

    def start(self, trainer: Any, pl_module: Any, denormalize: Callable[[Tensor], Tensor]) -> None:
        if not self.classes:
            self.class_names = class_names_of(trainer, pl_module)
            if self.class_names is None:
                if not self._warned:
                    self._warned = True
                    rank_zero_warn("CAMCallback view 'per_class' found no class names (neither the module's "
                                   "`cam_class_names` nor the datamodule's `class_names`); no per-class curves.")
                return
            self.classes = {m: PerClassMetrics(self.ctx.metrics, len(self.class_names)) for m in self.ctx.methods}
        for metric in self.classes.values():
            metric.to(pl_module.device)
            metric.reset()

    def observe(self, record: BatchRecord) -> None:
        for method, scored in record.methods.items():
            if method in self.classes:
                self._add(method, scored)

    def _add(self, method: str, record: MethodRecord) -> None:
        classes = scored_class(record.parts, record.result)  # left-out samples: class 0, their values are NaN
        classes = torch.where(record.kept.to(classes.device), classes, torch.zeros_like(classes))
        self.classes[method].update(record.values, classes)
        k = len(self.class_names or ())
        outside = ((classes < 0) | (classes >= k)).sum()  # a device tally: no host sync
        self.ctx.faults.add("error", outside, lambda n: f"{method}: {n} scored sample(s) whose class is outside the "
                            f"{k} class names, left out of the per-class curves; name every class in the module's "
                            "`cam_class_names` (or the datamodule's `class_names`)")

    def epoch_end(self, trainer: Any, log: ScalarLog, step: int, sinks: Sequence[ImageSink],
                  class_names: Sequence[str] | None, prefix: str) -> None:
        names = [class_tag(c) for c in self.class_names or ()]
        with torch.inference_mode(False):
            for method, metric in self.classes.items():
                for key, value in metric.values(lambda k, c, m=method: per_class_tag(m, k, names[c])).items():
                    log(key, value)
