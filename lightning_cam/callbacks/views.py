"""The callback's views beyond the per-metric scalars and the probe grid, one switch each:

* the worst-case gallery ``cam/<method>/worst`` (:mod:`.gallery`, ``num_worst``),
* the drift of the probe maps ``cam/<method>/drift`` (:mod:`.drift`, ``log_drift``),
* method agreement ``cam/agreement/<a>__<b>`` (:mod:`.agreement`, ``log_agreement``),
* per-class curves ``cam/<method>/<metric>/<class>`` (:mod:`.per_class`, ``per_class``, opt-in),
* the custom-scalars layout and the summary figure of all ``cam/`` curves (:mod:`.summary`, ``log_summary``).

:class:`CAMViews` is what the hooks call. Per batch it only updates device tensors (no host sync); at epoch
end every rank calls :meth:`CAMViews.log_epoch` (the gallery's one gather and the metric states' syncs);
drift is computed from rank zero's probe history and logged with ``rank_zero_only=True`` (no collective:
it cannot be a ``monitor`` of ``EarlyStopping``/``ModelCheckpoint`` in a multi-process run).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_cam.callbacks.agreement import MethodAgreement, agreement_tag
from lightning_cam.callbacks.drift import probe_drift
from lightning_cam.callbacks.faults import Faults
from lightning_cam.callbacks.gallery import WorstCases, gallery_image
from lightning_cam.callbacks.images import publish_final, send_image
from lightning_cam.callbacks.per_class import PerClassMetrics, class_tag
from lightning_cam.callbacks.probe import History
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.callbacks.summary import Curves, custom_scalars_layout, summary_figure
from lightning_cam.methods import CAMResult
from lightning_cam.mixin import CAMBatch
from lightning_cam.utilities.lightning import TENSORBOARD_LOGGERS, rank_zero_warn

__all__ = ["CAMViews", "ScalarLog", "class_names_of"]

#: ``log(key, value, rank_zero_only=False)``: how the views log a scalar (``pl_module.log`` underneath).
ScalarLog = Callable[..., None]
#: file name of the summary figure, next to the evolution images.
SUMMARY_PNG = "cam_summary.png"


def class_names_of(trainer: Any, pl_module: Any) -> list[str] | None:
    """The class names for per-class keys: the module's ``cam_class_names``, else the datamodule's
    ``class_names``; ``None`` when neither has any."""
    for owner in (pl_module, getattr(trainer, "datamodule", None)):
        names = getattr(owner, "cam_class_names", None) or getattr(owner, "class_names", None)
        if names:
            return [str(n) for n in names]
    return None


class CAMViews:
    """Gallery, drift, agreement, per-class curves and summary of one callback (see the module doc).

    Example:
        >>> views = CAMViews(["gradcam"], ["complexity"], num_worst=4, log_drift=True, log_agreement=True,
        ...                  per_class=False, log_summary=True, tile_size=32, colormap="jet", alpha=0.5,
        ...                  faults=Faults("raise"))
        >>> views.layout_keys(class_names=None, with_probe=True)
        ['cam/gradcam/complexity', 'cam/gradcam/drift']
    """

    def __init__(self, methods: Sequence[str], metrics: Sequence[str], num_worst: int, log_drift: bool,
                 log_agreement: bool, per_class: bool, log_summary: bool, tile_size: int, colormap: str,
                 alpha: float, faults: Faults) -> None:
        self.methods, self.metrics = tuple(methods), tuple(metrics)
        self.drift_on, self.per_class, self.summary_on = log_drift, per_class, log_summary
        self.colormap, self.alpha, self.faults = colormap, alpha, faults
        self.gallery = WorstCases(self.methods, num_worst, tile_size) if num_worst > 0 else None
        self.agreement = MethodAgreement(self.methods) if log_agreement and len(self.methods) > 1 else None
        self.classes: dict[str, PerClassMetrics] = {}
        self.class_names: list[str] | None = None
        self.curves = Curves()
        self._warned_classes = False

    # ------------------------------------------------------------------ fit start / epoch start
    def layout_keys(self, class_names: Sequence[str] | None, with_probe: bool) -> list[str]:
        """Every key these settings log, in chart order (for the custom-scalars layout)."""
        keys = [f"cam/{m}/{k}" for k in self.metrics for m in self.methods]
        if self.drift_on and with_probe:
            keys += [f"cam/{m}/drift" for m in self.methods]
        if self.agreement is not None:
            keys += [agreement_tag(a, b) for a, b in self.agreement.pairs]
        if self.per_class and class_names:
            keys += [f"cam/{m}/{k}/{class_tag(c)}" for m in self.methods for k in self.metrics for c in class_names]
        return keys

    def write_layout(self, trainer: Any, pl_module: Any, with_probe: bool) -> None:
        """Rank zero, start of ``fit``: the custom-scalars layout into every TensorBoard logger."""
        if not (self.summary_on and trainer.is_global_zero):
            return
        layout = custom_scalars_layout(self.layout_keys(class_names_of(trainer, pl_module), with_probe))
        loggers: list[Any] = [lg for lg in trainer.loggers if isinstance(lg, TENSORBOARD_LOGGERS)]
        for logger in loggers:
            try:
                logger.experiment.add_custom_scalars(layout)
            except Exception as err:  # noqa: BLE001 - a failing logger is a reported fault, never fatal
                self.faults.record("logger", f"cannot write the custom-scalars layout: {type(err).__name__}: {err}",
                                   err)

    def start(self, trainer: Any, pl_module: Any, denormalize: Callable[[Tensor], Tensor]
              ) -> None:
        """A new CAM epoch: empty gallery slots, reset agreement and per-class states on the module's device."""
        device = pl_module.device
        if self.gallery is not None:
            self.gallery.start(device, denormalize)
        with torch.inference_mode(False):
            if self.agreement is not None:
                self.agreement.to(device)
                self.agreement.reset()
            if self.per_class and not self.classes:
                self.class_names = class_names_of(trainer, pl_module)
                if self.class_names is None and not self._warned_classes:
                    self._warned_classes = True
                    rank_zero_warn("CAMCallback(per_class=True) found no class names (neither the module's "
                                   "`cam_class_names` nor the datamodule's `class_names`); no per-class curves.")
                else:
                    self.classes = {m: PerClassMetrics(self.metrics, self.class_names or []) for m in self.methods}
            for metric in self.classes.values():
                metric.to(device)
                metric.reset()

    # ------------------------------------------------------------------ per batch (device only)
    def observe(self, name: str, parts: CAMBatch, result: CAMResult, values: Mapping[str, Tensor],
                index: Tensor | None, batch_size: int) -> None:
        """One method's scored samples of a batch (``index``: their positions in the batch of ``batch_size``,
        ``None`` = all). Called by :class:`~lightning_cam.callbacks.accumulate.MetricAccumulator`."""
        try:
            with torch.inference_mode(False):
                if self.gallery is not None:
                    self.gallery.update(name, parts, result, values)
                if self.agreement is not None:
                    self.agreement.add(name, result.maps, index, batch_size)
                if name in self.classes:
                    classes = parts.labels if parts.labels is not None else result.targets
                    self.classes[name].update(values, classes)
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self.faults.record("error", f"{name}: CAM views raised {type(err).__name__}: {err}", err)

    def batch_end(self) -> None:
        """After every method ran on a batch: its pairs enter the agreement."""
        if self.agreement is not None:
            with torch.inference_mode(False):
                self.agreement.update()

    # ------------------------------------------------------------------ epoch end
    def scalar_log(self, pl_module: Any, epoch: int, record: bool, prefix: str = "cam") -> ScalarLog:
        """``log(key, value, rank_zero_only=False)`` through ``pl_module.log`` (an epoch value, identical on
        every rank after the metrics' own sync; ``cam/`` keys under ``prefix``, e.g. ``cam_test`` in
        ``trainer.test()``), recorded in :attr:`curves` when ``record`` (fitting)."""

        def log(key: str, value: Tensor, rank_zero_only: bool = False) -> None:
            pl_module.log(key.replace("cam/", f"{prefix}/", 1), value, on_step=False, on_epoch=True, sync_dist=True,
                          reduce_fx="max", rank_zero_only=rank_zero_only)
            if record:
                self.curves.add(key, epoch, float(value))

        return log

    def log_epoch(self, trainer: Any, log: ScalarLog, step: int, sinks: Sequence[ImageSink],
                  class_names: Sequence[str] | None, prefix: str = "cam") -> None:
        """Every rank: agreement and per-class scalars (their states' syncs) and the gallery's one gather;
        rank zero renders the galleries to ``sinks`` at ``step`` (the step of the scalars)."""
        with torch.inference_mode(False):
            if self.agreement is not None:
                for key, value in self.agreement.values().items():
                    log(key, value)
            for name, metric in self.classes.items():
                for key, value in metric.values(name).items():
                    log(key, value)
            if self.gallery is None:
                return
            gathered = self.gallery.gather(lambda t: trainer.strategy.all_gather(t).reshape(-1, *t.shape[1:]))
        if not trainer.is_global_zero:
            return
        for name, samples in gathered:
            if not samples:
                continue
            try:
                image = gallery_image(samples, class_names, self.colormap, self.alpha)
            except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
                self.faults.record("error", f"{name} worst-case gallery raised {type(err).__name__}: {err}", err)
                continue
            send_image(self.faults, sinks, f"{prefix}/{name}/worst", image, step)

    def log_drift(self, history: History, row: int, log: ScalarLog) -> None:
        """Rank zero, after the probe maps of history row ``row`` were recorded: ``cam/<method>/drift``."""
        if not self.drift_on:
            return
        for name in self.methods:
            value = probe_drift(history, name, row)
            if value is not None:
                log(f"cam/{name}/drift", torch.tensor(value), rank_zero_only=True)

    # ------------------------------------------------------------------ fit end
    def log_summary_figure(self, sinks: Sequence[ImageSink], step: int) -> None:
        """Rank zero, end of ``fit``: the figure of all recorded curves, ``cam/summary`` at ``step`` to every
        sink that shows images and kept by every sink as the file ``cam_summary.png`` (the logger's own place,
        as the evolution image)."""
        if not self.summary_on:
            return
        try:
            image = summary_figure(self.curves)
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self.faults.record("error", f"the CAM summary figure raised {type(err).__name__}: {err}", err)
            return
        if image is None:
            return
        publish_final(self.faults, sinks, "cam/summary", image, step, SUMMARY_PNG)

    def state_dict(self) -> dict[str, Any]:
        return {"curves": self.curves.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.curves.load_state_dict(state.get("curves", {}))
