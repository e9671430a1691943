"""``CAMCallback``: class activation maps, their metrics and heatmap grids, computed during validation.

The hooks only orchestrate; the work is done by small objects of this package: argument checks
(:mod:`.options`), metric accumulation (:mod:`.accumulate`), faults (:mod:`.faults`), the checkpointed probe
state (:mod:`.probe`), image sinks (:mod:`.sinks`) and progress lines (:mod:`.progress`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn
from typing_extensions import override

from lightning_cam.callbacks import options
from lightning_cam.callbacks.accumulate import MetricAccumulator, first_samples
from lightning_cam.callbacks.faults import (
    MISSING_LABELS,
    NO_TENSORBOARD,
    Faults,
    WarnOnce,
    missing_masks,
    short_probe,
)
from lightning_cam.callbacks.images import ProbeImages
from lightning_cam.callbacks.probe import History, ProbeSet
from lightning_cam.callbacks.progress import Progress
from lightning_cam.callbacks.sinks import image_sinks, output_dir
from lightning_cam.callbacks.views import CAMViews
from lightning_cam.methods import BaseCAM
from lightning_cam.metrics.names import DEFAULT_METRICS, check_metric_names
from lightning_cam.mixin import CAMBatch, CAMMixin

# -> lightning_cam.utilities.modes at the merge of issue 8 part A (the only import of eval_mode in callbacks/)
from lightning_cam.utilities.modes import eval_mode

__all__ = ["CAMCallback", "cam_module", "is_active_epoch"]


def cam_module(pl_module: pl.LightningModule) -> CAMMixin:
    """``pl_module`` as the :class:`~lightning_cam.CAMMixin` the callback needs, else a ``TypeError`` naming
    the fix."""
    if not isinstance(pl_module, CAMMixin):
        name = type(pl_module).__name__
        raise TypeError(
            f"CAMCallback needs the LightningModule to mix in lightning_cam.CAMMixin, but {name} does not; "
            f"declare it as `class {name}(CAMMixin, pl.LightningModule)` and set `cam_target_layer` if its "
            "last Conv2d is not the layer to explain."
        )
    return pl_module


def is_active_epoch(fn: TrainerFn | str | None, sanity_checking: bool, epoch: int, every_n_epochs: int,
                    skip_sanity_check: bool) -> bool:
    """Whether a validation epoch gets CAM work: the sanity check unless skipped, every ``every_n_epochs``-th
    epoch of ``fit``, every ``trainer.validate()``; never ``test``/``predict``.

    Example:
        >>> [is_active_epoch(TrainerFn.FITTING, False, e, 2, True) for e in range(4)]
        [True, False, True, False]
        >>> is_active_epoch(TrainerFn.FITTING, True, 0, 1, skip_sanity_check=True)
        False
    """
    if sanity_checking:
        return not skip_sanity_check
    if fn == TrainerFn.FITTING:
        return epoch % every_n_epochs == 0
    return fn == TrainerFn.VALIDATING


class CAMCallback(Callback):
    r"""Compute class activation maps and their metrics while a Lightning classifier validates, and show them.

    At every ``every_n_epochs``-th validation epoch (and in every ``trainer.validate()``), for each method:

    * **metrics** on each rank's own share of the validation data (at most ``ceil(max_samples /
      world_size)`` samples per rank and epoch, from ``dataloader_idx`` only): the CAM and the per-sample
      values of :func:`lightning_cam.evaluate_batch`, accumulated in the ``torchmetrics`` classes of
      :data:`lightning_cam.metrics.METRICS` (sum states, synchronised across ranks) and logged at epoch end
      as ``cam/<method>/<metric>`` through ``pl_module.log``. So a 2-process run reports the same values as
      a 1-process run over the same samples.
    * **a heatmap grid** on rank zero, tag ``cam/<method>/grid``, sent to every ``TensorBoardLogger`` of the
      trainer: a fixed probe set of ``num_images`` validation images (the first ones rank zero sees at the
      first logged epoch, then kept in the callback's state so that every epoch shows the same images),
      each with its colormap overlay (:func:`lightning_cam.render.cam_grid`), framed green when the
      prediction is right and red when wrong, captioned with the predicted and the true class.
    * **an evolution image** at the end of ``fit``: the probe overlays of every logged epoch, one row per
      epoch (:func:`lightning_cam.render.evolution_grid`; at most ``EVOLUTION_ROWS`` = 32 epochs, evenly
      spaced, first and last included), tag ``cam/<method>/evolution`` and a PNG
      ``cam_evolution_<method>.png`` in the first TensorBoard logger's ``log_dir`` (else
      ``trainer.log_dir``; not written when the trainer has no logger at all).

    CAM work runs on ``pl_module.cam_model()`` (never the DDP wrapper), under ``torch.enable_grad()`` and
    outside inference mode even when validation runs without gradients, in the trainer's precision
    context. It draws nothing from the global random number generators, leaves parameter ``.grad`` and
    module modes as it found them, so training with and without the callback is bit-identical. The probe
    set, the history of probe maps and the logged epochs are saved in checkpoints.

    Faults (an exception in a method or in ``cam_inputs``, a non-finite map, logit or metric value, a logger
    or file that fails to write, a batch without labels under ``target="label"``) all go through one policy
    (:class:`~lightning_cam.callbacks.faults.Faults`): with ``on_error="warn"`` the affected samples are left
    out, the faults are counted (summed over ranks) and reported in one warning per epoch (and one for the
    evolution images); training goes on and every rank still takes part in every collective.
    ``on_error="raise"`` re-raises at once.

    Args:
        methods: CAM method names (see :func:`lightning_cam.methods.get_method`; aliases accepted) or
            ``BaseCAM`` subclasses.
        metrics: metric names of :data:`lightning_cam.metrics.METRICS`. Localization metrics
            (``pointing_game``, ``energy_pointing_game``, ``iou``) are computed only on batches that carry
            masks or boxes.
        every_n_epochs: work at epochs ``0, n, 2n, ...`` of ``fit``.
        max_samples: samples per epoch over all ranks for the metrics (``None``: all).
        num_images: size of the probe set shown in the grids (``0``: no images). If rank zero's validation
            data holds fewer images, a warning is given once and the grids show those.
        target: explain the predicted class (``"pred"``) or the true label (``"label"``).
        colormap: matplotlib colormap name of the overlays.
        alpha: weight of the heatmap in the overlays, in ``[0, 1]``.
        on_error: ``"warn"`` (count, report, continue) or ``"raise"``.
        skip_sanity_check: do nothing during the sanity check.
        dataloader_idx: the validation dataloader to use.
        method_kwargs: extra constructor arguments per method name, e.g. ``{"scorecam": {"batch_size": 64}}``.
        metric_kwargs: extra keyword options passed to ``evaluate_batch`` (e.g. ``steps`` for insertion).
        log_evolution: log and save the evolution image at the end of ``fit``.
        tile_size: pixel size of the longer side of each image in the grids.
        progress: rank-zero progress lines: ``None`` only when an epoch's CAM work takes over 10 s,
            ``True`` always, ``False`` never.
        num_worst: size of the worst-case gallery ``cam/<method>/worst`` (the scored samples with the lowest
            energy pointing game / pointing game / IoU, else the highest Average Drop, over all ranks;
            ``0``: off). See :mod:`lightning_cam.callbacks.views` for these views.
        log_drift: log ``cam/<method>/drift``, 1 − mean Pearson of the probe maps with the previous CAM
            epoch (during ``fit``, with ``num_images > 0``; logged from rank zero only).
        log_agreement: log ``cam/agreement/<a>__<b>``, the mean Pearson between two methods' maps.
        per_class: log every metric per class, ``cam/<method>/<metric>/<class name>`` (opt-in).
        log_summary: write the TensorBoard custom-scalars layout at the start of ``fit`` and the summary
            figure of all ``cam/`` curves (``cam/summary``, ``cam_summary.png``) at its end.

    Raises:
        ValueError: at construction, for an unknown method, metric or colormap, a method listed twice,
            ``method_kwargs`` naming an unlisted method, or a number out of range (the message names the fix).
        TypeError: at ``setup``, when the ``LightningModule`` does not mix in ``CAMMixin``, or a method's
            constructor rejects its ``method_kwargs``.

    Example:
        >>> cb = CAMCallback(methods=("gradcam", "gradcam++"), max_samples=64, num_images=4)
        >>> cb.methods
        ('gradcam', 'gradcam++')
        >>> CAMCallback(methods=("no-such-cam",))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ...
    """

    def __init__(
        self,
        methods: str | type[BaseCAM] | Sequence[str | type[BaseCAM]] = ("gradcam",),
        metrics: str | Sequence[str] = DEFAULT_METRICS,
        every_n_epochs: int = 1,
        max_samples: int | None = 256,
        num_images: int = 8,
        target: Literal["pred", "label"] = "pred",
        colormap: str = "jet",
        alpha: float = 0.5,
        on_error: Literal["warn", "raise"] = "warn",
        skip_sanity_check: bool = True,
        dataloader_idx: int = 0,
        method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        metric_kwargs: Mapping[str, Any] | None = None,
        log_evolution: bool = True,
        tile_size: int = 128,
        progress: bool | None = None,
        num_worst: int = 8,
        log_drift: bool = True,
        log_agreement: bool = True,
        per_class: bool = False,
        log_summary: bool = True,
    ) -> None:
        super().__init__()
        self._method_classes = options.resolve_methods(methods)
        self.metrics: tuple[str, ...] = check_metric_names(metrics)
        options.check_schedule(every_n_epochs, max_samples, num_images)
        options.check_target_and_policy(target, on_error)
        options.check_display(colormap, alpha, tile_size)
        self.method_kwargs = options.resolve_method_kwargs(method_kwargs, self._method_classes)
        self.metric_kwargs = options.check_metric_kwargs(metric_kwargs)
        options.check_views(num_worst, log_drift, log_agreement, per_class, log_summary)

        self.methods: tuple[str, ...] = tuple(self._method_classes)
        self.every_n_epochs = every_n_epochs
        self.max_samples = max_samples
        self.num_images = num_images
        self.target = target
        self.colormap = colormap
        self.alpha = float(alpha)
        self.on_error = on_error
        self.skip_sanity_check = skip_sanity_check
        self.dataloader_idx = dataloader_idx
        self.log_evolution = log_evolution
        self.tile_size = tile_size
        self.progress = progress

        # persistent state (checkpointed)
        self.probe = ProbeSet(capacity=num_images)
        self.history = History()
        self.epochs_logged: list[int] = []
        # per-run / per-epoch state
        self._cams: dict[str, BaseCAM] = {}
        self._cams_model: nn.Module | None = None
        self._faults = Faults(on_error)
        self._accumulator = MetricAccumulator(self.methods, self.metrics, max_samples, self._faults,
                                              self.metric_kwargs)
        self._images = ProbeImages(colormap, self.alpha, tile_size, self._faults)
        self._warnings = WarnOnce()
        self._progress = Progress(progress)
        self._active = False
        # issue 12 views: gallery, drift, agreement, per class, summary (callbacks/views.py)
        self.num_worst, self.log_drift, self.log_agreement = num_worst, log_drift, log_agreement
        self.per_class, self.log_summary = per_class, log_summary
        self._views = CAMViews(self.methods, self.metrics, num_worst, log_drift, log_agreement, per_class, log_summary,
                               tile_size, colormap, self.alpha, self._faults)
        self._accumulator.observe = self._views.observe

    # ------------------------------------------------------------------ identity & state
    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(methods=self.methods)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "probe": self.probe.state_dict(),
            "history": self.history.state_dict(),
            "epochs_logged": list(self.epochs_logged),
            "views": self._views.state_dict(),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.probe.load_state_dict(state_dict.get("probe", {}))
        self.history.load_state_dict(state_dict.get("history", {}))
        self.epochs_logged = [int(e) for e in state_dict.get("epochs_logged", [])]
        self._views.load_state_dict(state_dict.get("views", {}))

    # ------------------------------------------------------------------ hooks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._build_methods(cam_module(pl_module))
        if self.num_images and trainer.is_global_zero and not image_sinks(trainer):
            self._warnings.warn("no_tb", NO_TENSORBOARD)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._views.write_layout(trainer, pl_module, with_probe=self.num_images > 0)

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._active = is_active_epoch(trainer.state.fn, trainer.sanity_checking, trainer.current_epoch,
                                       self.every_n_epochs, self.skip_sanity_check)
        if not self._active:
            return
        self._build_methods(cam_module(pl_module))
        self._accumulator.start(pl_module.device, trainer.world_size)
        self._faults.reset()
        self._progress.restart()
        self._views.start(trainer, pl_module, cam_module(pl_module).cam_denormalize)

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active or dataloader_idx != self.dataloader_idx:
            return
        capture = trainer.is_global_zero and self.probe.wanted > 0
        if self._accumulator.remaining <= 0 and not capture:
            return
        parts = self._batch_parts(pl_module, batch)
        if parts is None:
            return
        if capture:
            self.probe.add(parts.images, parts.labels)
        n = self._accumulator.take(parts.images.shape[0])
        if n <= 0:
            return
        targets = parts.labels if self.target == "label" else None
        with self._cam_context(trainer):
            sub = first_samples(parts, n)
            for name, cam in self._cams.items():
                skipped = self._accumulator.measure(name, cam, sub, None if targets is None else sub.labels)
                if skipped:
                    self._warnings.warn("no_masks", missing_masks(skipped))
            self._views.batch_end()
        self._progress.step(f"CAM metrics: {self._accumulator.seen} samples on rank 0")

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active:
            return
        self._active = False
        # one collective for every rank, whatever happened locally: sample counts and fault counts
        totals = self._accumulator.reduce(lambda t: trainer.strategy.reduce(t, reduce_op="sum"),
                                          pl_module.device, extra=self._faults.tally())
        self._faults.set_totals(dict(zip(self._faults.counts, totals)))
        epoch = trainer.current_epoch
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        # pl_module.log(..., sync_dist=True, reduce_fx="max"): the value is identical on every rank after the
        # metric's own sync; `max` keeps it exact while telling Lightning it is a synchronised epoch value.
        log = self._views.scalar_log(pl_module, epoch, record=fitting)
        self._accumulator.log(log)
        self._views.log_epoch(trainer, log, epoch, image_sinks(trainer), getattr(pl_module, "cam_class_names", None))
        if trainer.is_global_zero:
            if fitting and epoch not in self.epochs_logged:
                self.epochs_logged.append(epoch)
            self._log_probe(trainer, pl_module, epoch, record=fitting)  # its faults add to the reduced totals
            if fitting:
                self._views.log_drift(self.history, epoch, log)
        self._freeze_probe(trainer)
        report = self._faults.report(f"in CAM work at epoch {epoch}")
        if report and trainer.is_global_zero:
            rank_zero_warn(report)
        self._progress.done(f"CAM work of epoch {epoch} ({self._accumulator.seen} samples on rank 0)")

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.log_summary and trainer.is_global_zero:  # the figure of all cam/ curves (callbacks/views.py)
            self._faults.reset()
            self._views.log_summary_figure(image_sinks(trainer), output_dir(trainer))
            report = self._faults.report("while saving or logging the CAM summary figure")
            if report:
                rank_zero_warn(report)
        if not (self.log_evolution and trainer.is_global_zero and self.probe.size):
            return
        self._faults.reset()
        self._log_evolution(trainer, pl_module)
        report = self._faults.report("while saving or logging the CAM evolution images")
        if report:
            rank_zero_warn(report)

    # ------------------------------------------------------------------ steps
    def _build_methods(self, module: CAMMixin) -> None:
        """The CAM method objects on ``module.cam_model()``, rebuilt only when that model changes."""
        model = module.cam_model()
        if not (self._cams and self._cams_model is model):
            self._cams = options.build_methods(
                self._method_classes, model, module.cam_layer(), self.method_kwargs, module.cam_method_kwargs()
            )
            self._cams_model = model

    @contextlib.contextmanager
    def _cam_context(self, trainer: pl.Trainer) -> Iterator[None]:
        """Gradients on, inference mode off, the trainer's precision (e.g. bf16 autocast), and the CAM model in
        eval mode with every module's own train/eval flag restored afterwards."""
        modes = eval_mode(self._cams_model) if self._cams_model is not None else contextlib.nullcontext()
        with torch.inference_mode(False), torch.enable_grad(), trainer.precision_plugin.forward_context(), modes:
            yield

    def _batch_parts(self, pl_module: pl.LightningModule, batch: Any) -> CAMBatch | None:
        """``cam_inputs(batch)``, or ``None`` after a fault (it raised, or no labels for ``target='label'``)."""
        try:
            parts = cam_module(pl_module).cam_inputs(batch)
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self._faults.record("error", f"cam_inputs(batch) raised {type(err).__name__}: {err}", err)
            return None
        if self.target == "label" and parts.labels is None:
            self._faults.record("error", MISSING_LABELS, ValueError(MISSING_LABELS))
            return None
        return parts

    def _log_probe(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, record: bool) -> None:
        """Rank zero only, no collectives: the probe grid of every method (recorded in the history when
        ``record``)."""
        if not self.probe.size or not self.num_images:
            return
        sinks = image_sinks(trainer)
        device = pl_module.device
        with self._cam_context(trainer):
            images = self.probe.images.to(device).clone()  # type: ignore[union-attr]
            labels = None if self.probe.labels is None else self.probe.labels.to(device).clone()
            targets = labels if self.target == "label" else None
            display = cam_module(pl_module).cam_denormalize(images).float().cpu()
            names = getattr(pl_module, "cam_class_names", None)
            for name, cam in self._cams.items():
                self._progress.step(f"CAM probe grid of {name}")
                self._images.grid(name, cam, images, targets, display, labels, names, epoch, sinks,
                                  self.history if record else None)

    def _freeze_probe(self, trainer: pl.Trainer) -> None:
        """After the first logged epoch the probe set is final; warn once if it is short of ``num_images``."""
        if self.probe.freeze() and self.probe.size < self.num_images and trainer.is_global_zero:
            self._warnings.warn("short_probe", short_probe(self.num_images, self.probe.size))

    def _log_evolution(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Rank zero, end of ``fit``: each method's evolution image to every sink and as a PNG file."""
        sinks, directory = image_sinks(trainer), output_dir(trainer)
        display = cam_module(pl_module).cam_denormalize(self.probe.images.float()).cpu()  # type: ignore[union-attr]
        for name in self.methods:
            self._images.evolution(name, self.history, display, sinks, directory)
