"""Method agreement ``cam/agreement/<a>__<b>`` (view ``"agreement"``, with two methods or more): the mean
per-sample Pearson correlation between two methods' maps on the same scored samples
(`MethodAgreement`).

The maps come from the metric pass (no extra forward); the sums live in a ``torchmetrics`` state summed
across ranks, so a 2-process run logs what a 1-process run over the same samples logs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_cam.callbacks.scalars import ScalarLog
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.callbacks.views.base import Chart, View, ViewContext, register_view
from lightning_cam.metrics.agreement import MethodAgreement
from lightning_cam.record import BatchRecord

__all__ = ["AgreementView", "agreement_tag"]


def agreement_tag(a: str, b: str) -> str:
    """The logged key of a pair of methods.

    Examples:
        >>> agreement_tag("gradcam", "eigencam")
        'cam/agreement/gradcam__eigencam'
    """
    return f"cam/agreement/{a}__{b}"


@register_view
class AgreementView(View):
    """View ``"agreement"``: ``cam/agreement/<a>__<b>`` for every pair of the callback's methods (nothing with
    one method).

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> view = AgreementView(ViewContext(("gradcam", "eigencam"), ("adcc",), 32, "jet", 0.5, Faults("warn")))
        >>> view.keys(None, with_probe=False), AgreementView.chart("cam/agreement/gradcam__eigencam")
        (['cam/agreement/gradcam__eigencam'], ('CAM agreement and drift', 'agreement', 'gradcam__eigencam'))
    """

    name = "agreement"
    default = True

    def __init__(self, ctx: ViewContext) -> None:
        super().__init__(ctx)
        self.metric = MethodAgreement(ctx.methods) if len(ctx.methods) > 1 else None

    def keys(self, class_names: Sequence[str] | None, with_probe: bool) -> list[str]:
        return [agreement_tag(a, b) for a, b in itertools.combinations(self.ctx.methods, 2)]

    @classmethod
    def chart(cls, key: str) -> Chart | None:
        parts = key.split("/")
        return ("CAM agreement and drift", "agreement", "/".join(parts[2:])) if parts[1:2] == ["agreement"] else None

    def start(self, trainer: Any, pl_module: Any, denormalize: Callable[[Tensor], Tensor]) -> None:
        if self.metric is not None:
            self.metric.to(pl_module.device)
            self.metric.reset()

    def observe(self, record: BatchRecord) -> None:
        if self.metric is not None:
            for method, scored in record.methods.items():
                self.metric.add_maps(method, scored.result.maps, scored.index, scored.batch_size)
            self.metric.update()  # the batch's pairs of methods

    def epoch_end(self, trainer: Any, log: ScalarLog, step: int, sinks: Sequence[ImageSink],
                  class_names: Sequence[str] | None, prefix: str) -> None:
        if self.metric is not None:
            with torch.inference_mode(False):
                for key, value in self.metric.values(agreement_tag).items():
                    log(key, value)
