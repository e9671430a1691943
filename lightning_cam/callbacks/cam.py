"""``CAMCallback``: class activation maps, their metrics and heatmap grids, computed during validation.

The hooks only orchestrate; the work is done by small objects of this package: argument checks
(:mod:`.options`), metric accumulation (:mod:`.accumulate`), faults (:mod:`.faults`), the checkpointed probe
state (:mod:`.probe`), image sinks (:mod:`.sinks`) and progress lines (:mod:`.progress`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn
from typing_extensions import override

from lightning_cam.callbacks import options
from lightning_cam.callbacks.accumulate import MetricAccumulator, first_samples
from lightning_cam.callbacks.distributed import ShardedWork, params_sharded
from lightning_cam.callbacks.faults import (
    MISSING_LABELS,
    Faults,
    WarnOnce,
    missing_masks,
    short_probe,
    stale_monitor,
)
from lightning_cam.callbacks.images import ProbeImages
from lightning_cam.callbacks.probe import History, ProbeSet, When, input_dtype
from lightning_cam.callbacks.progress import Progress
from lightning_cam.callbacks.schedule import (
    DEFAULT_STAGES,
    Schedule,
    check_stages,
    key_prefix,
    never_runs,
    stale_monitors,
)
from lightning_cam.callbacks.sinks import image_sinks, missing_sinks_message
from lightning_cam.callbacks.views import CAMViews
from lightning_cam.methods import BaseCAM
from lightning_cam.metrics.names import DEFAULT_METRICS, check_metric_names
from lightning_cam.mixin import CAMBatch, CAMMixin
from lightning_cam.utilities.compiled import eager_compiled
from lightning_cam.utilities.lightning import CallbackBase, rank_zero_warn, scalar_step, stage_name
from lightning_cam.utilities.modes import eval_mode

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["CAMCallback", "cam_module"]


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


class CAMCallback(CallbackBase):
    r"""Compute class activation maps and their metrics while a Lightning classifier validates, and show them.

    A ``Callback`` of both Lightning packages at once (``pytorch_lightning`` and ``lightning.pytorch``,
    whichever are installed: :mod:`lightning_cam.utilities.lightning`), so either package's ``Trainer`` and
    ``LightningCLI`` (``class_path: lightning_cam.CAMCallback``) take it.

    At every ``every_n_epochs``-th validation run of ``fit`` (counting the runs that happen: composes with
    ``check_val_every_n_epoch`` and ``val_check_interval``), in every ``trainer.validate()``, and in every
    ``trainer.test()`` with ``"test"`` in ``stages``, for each method:

    * **metrics** on each rank's own share of the data (at most ``ceil(max_samples / world_size)`` samples
      per rank and run, from ``dataloader_idx`` only): the CAM and the per-sample values of
      :func:`lightning_cam.evaluate_batch`, accumulated in the ``torchmetrics`` classes of
      :data:`lightning_cam.metrics.METRICS` (sum states, synchronised across ranks) and logged at the run's
      end as ``cam/<method>/<metric>`` (``cam_test/<method>/<metric>`` in ``test``) through ``pl_module.log``.
      ``<method>`` is the canonical name (letters, digits, ``_``: ``gradcam_pp``), the same in every logger.
    * **a heatmap grid** on rank zero (computed on every rank in lock-step when the strategy shards the
      parameters: see :mod:`lightning_cam.callbacks.distributed`), tag ``cam/<method>/grid``
      (``cam_test/...`` in ``test``), at the step of those scalars, to every logger that can keep images
      (one sink per logger kind, :mod:`~lightning_cam.callbacks.sinks`: TensorBoard, W&B, MLflow, Comet,
      Neptune, PNG files in the ``log_dir`` of any other): a fixed probe set of ``num_images`` validation
      images (the first ones rank zero sees at the first logged run, then kept in the callback's state so
      that every run shows the same images), each with its colormap overlay
      (:func:`lightning_cam.render.cam_grid`), framed green when the prediction is right and red when wrong,
      captioned with the predicted and the true class.
    * **an evolution image** at the end of ``fit``: the probe overlays of every CAM validation of ``fit``,
      one row each, labelled with its epoch and step (:func:`lightning_cam.render.evolution_grid`; at most
      ``EVOLUTION_ROWS`` = 32 rows, evenly spaced, first and last included), tag ``cam/<method>/evolution``
      to every sink and the file ``cam_evolution_<method>.png`` kept by each (in the logger's own place;
      nothing without a logger).

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
    ``on_error="raise"`` re-raises at once (under sharding: on every rank, once all ranks finished the
    method's step, so that none is left waiting in a forward; the rule is in
    :mod:`lightning_cam.utilities.lockstep`).

    Args:
        methods: CAM method names (see :func:`lightning_cam.methods.get_method`; aliases accepted) or
            ``BaseCAM`` subclasses.
        metrics: metric names of :data:`lightning_cam.metrics.METRICS`. Localization metrics
            (``pointing_game``, ``energy_pointing_game``, ``iou``) are computed only on batches that carry
            masks or boxes.
        every_n_epochs: work at validation runs ``0, n, 2n, ...`` of ``fit`` (the runs that happen; with
            ``val_check_interval`` there are several per epoch).
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
        stages: where to work: ``"fit"`` (its validation runs), ``"validate"`` (``trainer.validate()``),
            ``"test"`` (``trainer.test()``, opt-in, keys ``cam_test/<method>/...``).
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
        ('gradcam', 'gradcam_pp')
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
        stages: str | Sequence[str] = DEFAULT_STAGES,
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
        self.stages = check_stages(stages)

        # persistent state (checkpointed)
        self.probe = ProbeSet(capacity=num_images)
        self.history = History()
        self.epochs_logged: list[int] = []
        self._schedule = Schedule(every_n_epochs, skip_sanity_check, self.stages)
        self._runs_loaded = True  # False after loading a checkpoint of the first format (no run count)
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
        self._prefix = "cam"
        self._when = When(0, 0, 0)
        self._sharded: ShardedWork | None = None
        #: lock-step over ranks: ``None`` = when the strategy shards the parameters; ``True`` forces it (measuring)
        self._lockstep: bool | None = None
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
            "version": 2,
            "probe": self.probe.state_dict(),
            "history": self.history.state_dict(),
            "epochs_logged": list(self.epochs_logged),
            "validation_runs": self._schedule.runs,
            "views": self._views.state_dict(),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.probe.load_state_dict(state_dict.get("probe", {}))
        self.history.load_state_dict(state_dict.get("history", {}))
        self.epochs_logged = [int(e) for e in state_dict.get("epochs_logged", [])]
        self._schedule.runs = int(state_dict.get("validation_runs", 0))
        self._runs_loaded = "validation_runs" in state_dict
        self._views.load_state_dict(state_dict.get("views", {}))

    # ------------------------------------------------------------------ hooks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._build_methods(cam_module(pl_module))
        if not trainer.is_global_zero:
            return
        stage = stage_name(stage)
        reason = never_runs(trainer, stage, self.stages)
        if reason:
            self._warnings.warn(f"never_{stage}", reason)
        if self.num_images and (stage in self.stages) and (message := missing_sinks_message(trainer)):
            self._warnings.warn("no_images", message)
        stale = stale_monitors(getattr(trainer, "callbacks", [])) if stage == "fit" else []
        if stale and not self._schedule.every_validation:
            self._warnings.warn("stale_monitor", stale_monitor(stale, self.every_n_epochs, self.stages))

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._views.write_layout(trainer, pl_module, with_probe=self.num_images > 0)

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(trainer, pl_module, "validation")

    @override
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(trainer, pl_module, "test")

    @override
    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch(trainer, pl_module, batch, dataloader_idx)

    @override
    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch(trainer, pl_module, batch, dataloader_idx)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end(trainer, pl_module)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end(trainer, pl_module)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.log_summary and trainer.is_global_zero:  # the figure of all cam/ curves (callbacks/views.py)
            self._faults.reset()
            step = scalar_step(trainer) if self._when.step is None else self._when.step  # the last CAM run's
            self._views.log_summary_figure(image_sinks(trainer), step)
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
    def _start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loop: str) -> None:
        """A validation or test run starts: decide whether it gets CAM work, and prepare it."""
        if not self._runs_loaded and trainer.state.fn == "fit":  # first-format checkpoint: one run per epoch
            self._schedule.runs, self._runs_loaded = trainer.current_epoch, True
        self._active = self._schedule.begin(trainer.state.fn, trainer.sanity_checking, loop)
        if not self._active:
            return
        self._prefix = key_prefix(loop)
        self._build_methods(cam_module(pl_module))
        self._accumulator.start(pl_module.device, trainer.world_size)
        self._views.start(trainer, pl_module, cam_module(pl_module).cam_denormalize)
        lockstep = params_sharded(trainer.strategy) if self._lockstep is None else self._lockstep
        self._sharded = None
        if lockstep and trainer.world_size > 1 and self._cams_model is not None:
            self._sharded = ShardedWork(self._cams_model, pl_module.device, self.on_error)
        self._faults.reset()
        self._progress.restart()

    def _batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, dataloader_idx: int) -> None:
        """One batch: the probe capture (rank zero, first run) and each method's metrics on its first samples."""
        if not self._active or dataloader_idx != self.dataloader_idx:
            return
        capture = trainer.is_global_zero and self.probe.wanted > 0
        sharded = self._sharded
        if self._accumulator.remaining <= 0 and not capture and sharded is None:
            return
        parts, error = None, None
        try:
            parts = self._batch_parts(pl_module, batch) if self._accumulator.remaining > 0 or capture else None
        except Exception as err:  # on_error="raise": when sharded, raised after the agreement below
            if sharded is None:
                raise
            error = err
        if parts is not None and capture:
            self.probe.add(parts.images, parts.labels)
        n = 0 if parts is None else self._accumulator.take(parts.images.shape[0])
        sub = None if parts is None or n <= 0 else parts
        local = None if sub is None else tuple(sub.images.shape[1:])
        # sharded: every rank joins while any rank has samples (a rank without any joins the others' forwards)
        shape = local if sharded is None else sharded.agree_shape(local, error)
        if shape is None:
            return
        with self._cam_context(trainer):
            sub = None if sub is None else first_samples(sub, n)
            if sharded is None and sub is not None:  # one shared pass for every method (MethodGroup)
                targets = sub.labels if self.target == "label" else None
                self._warn_missing(self._accumulator.measure_all(self._cams, sub, targets))
            else:  # lock-step: one agreed step per method, every rank the same forwards
                for name, cam in self._cams.items():
                    work = None if sub is None else functools.partial(self._measure, name, cam, sub)
                    self._run(work, shape, cam, torch.float32 if sub is None else sub.images.dtype)
            self._views.batch_end()
        self._progress.step(f"CAM metrics: {self._accumulator.seen} samples on rank 0")

    def _end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The run ends: the one reduce, the scalars, rank zero's grids (at the scalars' step), the report."""
        if not self._active:
            return
        self._active = False
        # one collective for every rank, whatever happened locally: sample counts and fault counts
        totals = self._accumulator.reduce(lambda t: trainer.strategy.reduce(t, reduce_op="sum"),
                                          pl_module.device, extra=self._faults.tally())
        self._faults.set_totals(dict(zip(self._faults.counts, totals)))
        epoch, step = trainer.current_epoch, scalar_step(trainer)
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking
        # pl_module.log(..., sync_dist=True, reduce_fx="max"): the value is identical on every rank after the
        # metric's own sync; `max` keeps it exact while telling Lightning it is a synchronised epoch value.
        log = self._views.scalar_log(pl_module, epoch, record=fitting, prefix=self._prefix)
        self._accumulator.log(log)
        zero = trainer.is_global_zero
        self._views.log_epoch(trainer, log, step, image_sinks(trainer) if zero else [],
                              getattr(pl_module, "cam_class_names", None), prefix=self._prefix)
        if zero:
            if fitting and epoch not in self.epochs_logged:
                self.epochs_logged.append(epoch)
            self._when = When(self.history.next_row(), epoch, step)
        self._log_probe(trainer, pl_module, record=fitting)  # its faults add to the reduced totals
        if zero and fitting:
            self._views.log_drift(self.history, self._when.row, log)
        self._freeze_probe(trainer)
        report = self._faults.report(f"in CAM work at epoch {epoch}")
        if report and trainer.is_global_zero:
            rank_zero_warn(report)
        self._progress.done(f"CAM work of epoch {epoch} ({self._accumulator.seen} samples on rank 0)")

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
        lock = self._sharded.attached() if self._sharded is not None else contextlib.nullcontext()
        with torch.inference_mode(False), torch.enable_grad(), trainer.precision_plugin.forward_context(), modes, \
                eager_compiled(), lock:
            yield

    def _run(self, work: Any, shape: tuple[int, ...], cam: BaseCAM, dtype: torch.dtype) -> None:
        """``work()`` (one method's step; ``None``: nothing to do on this rank), in lock-step when sharded."""
        if self._sharded is not None:
            self._sharded.run(work, shape, cam, dtype)
        elif work is not None:
            work()

    def _measure(self, name: str, cam: BaseCAM, sub: CAMBatch) -> None:
        """One method's metrics on this rank's samples ``sub`` (a fault never escapes, unless ``on_error='raise'``)."""
        targets = sub.labels if self.target == "label" else None
        self._warn_missing(self._accumulator.measure(name, cam, sub, targets))

    def _warn_missing(self, skipped: tuple[str, ...]) -> None:
        if skipped:
            self._warnings.warn("no_masks", missing_masks(skipped))

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

    def _log_probe(self, trainer: pl.Trainer, pl_module: pl.LightningModule, record: bool) -> None:
        """The probe grid of every method at ``self._when`` (recorded in the history when ``record``): on rank
        zero alone, or when sharded on every rank in lock-step from rank zero's probe images, only rank zero
        rendering. The probe (kept in float32) is cast to the model's dtype; maps and display stay float32."""
        sharded, zero = self._sharded, trainer.is_global_zero
        if (sharded is None and not zero) or self._cams_model is None:
            return
        probe = (self.probe.images, self.probe.labels)
        if sharded is not None:  # every rank the same images (a collective: every rank calls it)
            probe = trainer.strategy.broadcast(probe, src=0)
        if probe[0] is None or not self.num_images:
            return
        sinks = image_sinks(trainer) if zero else []
        module = cam_module(pl_module)
        device = pl_module.device
        with self._cam_context(trainer):
            images = probe[0].to(device, input_dtype(self._cams_model)).clone()
            labels = None if probe[1] is None else probe[1].to(device).clone()
            targets = labels if self.target == "label" else None
            display = module.cam_denormalize(probe[0].to(device)).float().cpu()
            names = getattr(pl_module, "cam_class_names", None)
            for name, cam in self._cams.items():
                self._progress.step(f"CAM probe grid of {name}")
                if zero:
                    work = functools.partial(self._images.grid, name, cam, images, targets, display, labels, names,
                                             self._when, sinks, self.history if record else None,
                                             prefix=self._prefix)
                else:  # the same forwards; rank zero reports the probe's faults
                    work = functools.partial(_quiet, cam.explain, images, targets)
                self._run(work, tuple(images.shape[1:]), cam, images.dtype)

    def _freeze_probe(self, trainer: pl.Trainer) -> None:
        """After the first logged epoch the probe set is final; warn once if it is short of ``num_images``."""
        if self.probe.freeze() and self.probe.size < self.num_images and trainer.is_global_zero:
            self._warnings.warn("short_probe", short_probe(self.num_images, self.probe.size))

    def _log_evolution(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Rank zero, end of ``fit``: each method's evolution image to every sink, kept as a file by each."""
        sinks = image_sinks(trainer)
        display = cam_module(pl_module).cam_denormalize(self.probe.inputs(torch.device("cpu"))).float().cpu()
        for name in self.methods:
            self._images.evolution(name, self.history, display, sinks, scalar_step(trainer))


def _quiet(fn: Any, *args: Any) -> None:
    """``fn(*args)``, an exception ignored (another rank reports it)."""
    with contextlib.suppress(Exception):
        fn(*args)
