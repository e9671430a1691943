"""``CAMCallback``: class activation maps, their metrics and heatmap grids, computed during validation.

At every ``every_n_epochs``-th validation run of ``fit`` (counting the runs that happen: composes with
``check_val_every_n_epoch`` and ``val_check_interval``), in every ``trainer.validate()``, and in every
``trainer.test()`` with ``"test"`` in ``stages``, for each method:

* **metrics** on each rank's own share of the data (``max_samples`` over all ranks: the first samples of
  each rank's share, together the first ``max_samples`` a 1-process run scores under Lightning's
  distributed sampler; from ``dataloader_idx`` only): the CAM and the per-sample values of
  [`lightning_cam.evaluate_batch`][lightning_cam.evaluate_batch], accumulated in the ``torchmetrics`` classes of
  `lightning_cam.metrics.METRICS` (sum states, synchronised across ranks) and logged at the run's
  end as ``cam/<method>/<metric>`` (``cam_test/<method>/<metric>`` in ``test``) through ``pl_module.log``.
  ``<method>`` is the canonical name (letters, digits, ``_``: ``gradcam_pp``), the same in every logger.
* **a heatmap grid** on rank zero (computed on every rank in lock-step when the strategy shards the
  parameters: see `lightning_cam.callbacks.distributed`), tag ``cam/<method>/grid``
  (``cam_test/...`` in ``test``), at the step of those scalars, to every logger that can keep images
  (one sink per logger kind, `sinks`: TensorBoard, W&B, MLflow, Comet,
  Neptune, PNG files in the ``log_dir`` of any other): a fixed probe set of ``num_images`` images of the
  stage's own data (validation images for ``fit``/``validate``, test images for ``test``: the first ones
  rank zero sees at the stage's first logged run, then kept in the callback's state so that every run
  shows the same images), each with its colormap overlay
  (`lightning_cam.render.cam_grid`), framed green when the prediction is right and red when wrong,
  captioned with the predicted and the true class.
* **an evolution image** at the end of ``fit``: the probe overlays of every CAM validation of ``fit``,
  one row each, labelled with its epoch and step (`lightning_cam.render.evolution_grid`; at most
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
(`Faults`): with ``on_error="warn"`` the affected samples are left
out, the faults are counted (summed over ranks) and reported in one warning per epoch (and one for the
evolution images); training goes on and every rank still takes part in every collective.
``on_error="raise"`` re-raises at once (under sharding: on every rank, once all ranks finished the
method's step, so that none is left waiting in a forward; the rule is in
`lightning_cam.utilities.lockstep`).

The hooks only orchestrate; the work is done by small objects of this package: argument checks
(`options`), metric accumulation (`accumulate`), faults (`faults`), the checkpointed probe
state (`probe`), image sinks (`sinks`) and progress lines (`progress`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from typing_extensions import override

from lightning_cam.callbacks import options
from lightning_cam.callbacks.accumulate import MetricAccumulator
from lightning_cam.callbacks.bank import BANK_BUILT, CentroidBank
from lightning_cam.callbacks.batch import BatchPass
from lightning_cam.callbacks.distributed import all_gather_objects
from lightning_cam.callbacks.faults import (
    Faults,
    WarnOnce,
)
from lightning_cam.callbacks.probe import History, ProbeSet, When
from lightning_cam.callbacks.probe_pass import ProbePass
from lightning_cam.callbacks.progress import Progress
from lightning_cam.callbacks.runner import CAMRunner
from lightning_cam.callbacks.scalars import ScalarLog, scalar_log
from lightning_cam.callbacks.schedule import (
    DEFAULT_STAGES,
    Schedule,
    check_stages,
    key_prefix,
    setup_warnings,
)
from lightning_cam.callbacks.sinks import ImageSink, image_sinks
from lightning_cam.callbacks.state import CallbackState
from lightning_cam.callbacks.views import CAMViews, ViewContext, resolve_views
from lightning_cam.callbacks.views.collection import ViewsSpec
from lightning_cam.callbacks.views.grid import GridView
from lightning_cam.callbacks.views.per_class import class_names_of
from lightning_cam.callbacks.writer import EXCEPTION_TIMEOUT, BackgroundWriter
from lightning_cam.methods import BaseCAM
from lightning_cam.metrics.registry import check_metric_names
from lightning_cam.mixin import CAMMixin
from lightning_cam.utilities.lightning import CallbackBase, rank_zero_warn, scalar_step, stage_name
from lightning_cam.utilities.lockstep import release_protocol_groups
from lightning_cam.utilities.randomize import release_twins
from lightning_cam.utilities.stopwatch import Stopwatch, timed

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = ["CAMCallback", "cam_module"]


def cam_module(pl_module: pl.LightningModule) -> CAMMixin:
    """``pl_module`` as the [`CAMMixin`][lightning_cam.CAMMixin] the callback needs, else a ``TypeError`` naming
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
    """Compute class activation maps and their metrics while a Lightning model validates, and show them.

    A `Callback` of both Lightning packages at once (`pytorch_lightning` and `lightning.pytorch`), so either
    package's `Trainer` and `LightningCLI` (`class_path: lightning_cam.CAMCallback`) take it. What it does, step
    by step, is in the module docstring. Every argument after `methods` is keyword-only and checked at
    construction.

    Args:
        methods: CAM method names ([`get_method`][lightning_cam.methods.registry.get_method], aliases accepted,
            any registered method) or `BaseCAM` subclasses.
        metrics: metric names (any registered metric; localization ones only on batches with masks or boxes);
            `None`: the default selection (ADCC and its components).
        every_n_epochs: work at validation runs `0, n, 2n, ...` of `fit` (the runs that happen).
        max_samples: samples per run over all ranks (`None`: all); a multi-label model's pairs are scored, images
            are counted.
        num_images: probe images in the grids (`0`: none).
        target: explain the predicted class (`"pred"`) or the true `"label"` (under the module's `cam_task`).
        colormap: a matplotlib colormap for the heatmaps.
        alpha: the heatmap's weight in the overlay, in `[0, 1]`.
        on_error: `"warn"` (count, report, continue) or `"raise"`.
        skip_sanity_check: no CAM work in Lightning's sanity check.
        dataloader_idx: the validation (or test) dataloader to use.
        method_kwargs: constructor arguments per method, e.g. `{"scorecam": {"batch_size": 64}}`.
        metric_kwargs: options of `evaluate_batch` (e.g. `steps` for insertion).
        log_evolution: the evolution image at the end of `fit`.
        tile_size: the longer side of a grid tile, in pixels.
        progress: progress lines (`None`: each CAM run's time at its end, lines during it past 10 s; `True`: a
            line at every step; `False`: none).
        stages: `"fit"` (its validation runs), `"validate"`, `"test"` (opt-in, keys `cam_test/<method>/...`).
        views: the views beyond scalars and grids (`lightning_cam.callbacks.views`), by name or name -> options;
            `None`: the registered default views, `()`: none.
        timing: time each part of the callback's work (`timings`, and the parts in each run's progress line);
            on a GPU this synchronizes the device at every part's boundaries: for measuring, not for every run.

    Raises:
        ValueError: at construction, for any argument out of its range (the message names the fix).
        TypeError: at `setup`, for a module without `CAMMixin` or a method rejecting its `method_kwargs`.

    Examples:
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
        *,
        metrics: str | Sequence[str] | None = None,
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
        views: ViewsSpec | None = None,
        timing: bool = False,
    ) -> None:
        super().__init__()
        self._faults = Faults(on_error)
        self.on_error = on_error
        self.__init_work(methods, metrics, target, method_kwargs, metric_kwargs)
        self.__init_schedule(every_n_epochs, max_samples, stages, skip_sanity_check, dataloader_idx)
        self.__init_display(num_images, colormap, alpha, tile_size, log_evolution, progress)
        self.views = resolve_views(views)
        self.timing = bool(timing)
        self.__init_parts()

    def __init_work(self, methods: Any, metrics: Any, target: str, method_kwargs: Any, metric_kwargs: Any) -> None:
        """What to compute: methods as classes under their canonical names, metrics, target, options."""
        self._method_classes = options.resolve_methods(methods)
        self.methods: tuple[str, ...] = tuple(self._method_classes)
        self.metrics: tuple[str, ...] = check_metric_names(metrics)
        options.check_target(target)
        self.target = target
        self.method_kwargs = options.resolve_method_kwargs(method_kwargs, self._method_classes)
        self.metric_kwargs = options.check_metric_kwargs(metric_kwargs)

    def __init_schedule(self, every_n_epochs: int, max_samples: int | None, stages: Any, skip_sanity_check: bool,
                        dataloader_idx: int) -> None:
        """When and how much: the runs that get CAM work and the sample quota."""
        options.check_schedule(every_n_epochs, max_samples, 0)
        self.every_n_epochs, self.max_samples = every_n_epochs, max_samples
        self.skip_sanity_check, self.dataloader_idx = skip_sanity_check, dataloader_idx
        self.stages = check_stages(stages)
        self._schedule = Schedule(every_n_epochs, skip_sanity_check, self.stages)

    def __init_display(self, num_images: int, colormap: str, alpha: float, tile_size: int, log_evolution: bool,
                       progress: bool | None) -> None:
        """What to show: the probe set's size and the images' look."""
        options.check_schedule(1, None, num_images)
        options.check_display(colormap, alpha, tile_size)
        self.num_images, self.colormap, self.alpha, self.tile_size = num_images, colormap, float(alpha), tile_size
        self.log_evolution, self.progress = log_evolution, progress

    def __init_parts(self) -> None:
        """The small objects the hooks call, and the checkpointed state."""
        self.probe = ProbeSet(capacity=self.num_images)  # validation images (fit and validate)
        self.test_probe = ProbeSet(capacity=self.num_images)  # test images, captured in trainer.test()
        self.history = History()
        self.epochs_logged: list[int] = []
        self._runner = CAMRunner(self._method_classes, self.method_kwargs, self.on_error, self._faults)
        self._accumulator = MetricAccumulator(self.methods, self.metrics, self.max_samples, self._faults)
        self._probe_pass = ProbePass(self.probe, self.history, self._faults, self.num_images, self.target)
        self._bank = CentroidBank()  # an embedding model's class centroids (`lightning_cam.callbacks.bank`)
        self._warnings = WarnOnce()
        self._progress = Progress(self.progress)
        self._active, self._prefix, self._when = False, "cam", When(0, 0, 0)
        self._watch = Stopwatch(enabled=self.timing, sync=True)
        self._writer = BackgroundWriter()  # the images' encoding and writing, off the training thread
        context = ViewContext(self.methods, self.metrics, self.tile_size, self.colormap, self.alpha, self._faults,
                              key_prefix("validation", self.dataloader_idx))
        grid = [GridView(context, evolution=self.log_evolution)] if self.num_images else []  # the probe's images
        self._views = CAMViews(context, self.views, first=grid)
        # every scored batch's record goes to its observers, in this order
        observers = (self._accumulator, self._views, self._probe_pass.reuse)
        self._batch = BatchPass(self._accumulator, self._runner, self._faults, self._warnings, self.target,
                                self.metrics, observers, self.metric_kwargs)
        self._state = CallbackState(self.probe, self.test_probe, self.history, self._schedule, self._views,
                                    self._bank, self.epochs_logged)

    # ------------------------------------------------------------------ identity & state
    @property
    @override
    def state_key(self) -> str:
        # every argument that tells two callbacks of one Trainer apart (e.g. one per validation dataloader)
        return self._generate_state_key(methods=self.methods, metrics=self.metrics, target=self.target,
                                        stages=self.stages, dataloader_idx=self.dataloader_idx, views=tuple(self.views))

    @override
    def state_dict(self) -> dict[str, Any]:
        return self._state.state_dict()

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._state.load_state_dict(state_dict)

    # ------------------------------------------------------------------ hooks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._runner.build(cam_module(pl_module))
        if not trainer.is_global_zero:
            return
        for key, message in setup_warnings(trainer, stage_name(stage), self._schedule, self.num_images):
            self._warnings.warn(key, message)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:  # e.g. the custom-scalars layout of every key the callback can log
            keys = self._views.keys(class_names_of(trainer, pl_module), with_probe=self.num_images > 0)
            self._views.fit_start(trainer, pl_module, keys)

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(trainer, pl_module, "validation")

    @override
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(trainer, pl_module, "test")

    @override
    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._active and dataloader_idx == self.dataloader_idx:
            with self._watch.running("batch/other"):
                self._batch.step(trainer, cam_module(pl_module), batch)
            self._progress.step(f"CAM metrics: {self._accumulator.seen} samples on rank 0")

    on_test_batch_end = on_validation_batch_end  # the same step on the test loop's batches

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        try:
            with self._watch.running("end/other"), self._writer.holding():
                self._end(trainer, pl_module)
        finally:
            release_twins()  # the randomization metric's model copies live for one validation run only

    on_test_epoch_end = on_validation_epoch_end

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        step = scalar_step(trainer) if self._when.step is None else self._when.step  # the last CAM run's step
        with self._faults.reporting("while saving or logging the CAM evolution images and the views' final images"), \
                self._watch.running("fit_end/other"), self._writer.holding():
            self._views.fit_end(self._sinks(trainer), step)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning finalizes the loggers right after this hook and calls no `teardown`: the images already queued
        # are written now, while the loggers are open (for at most EXCEPTION_TIMEOUT seconds: the run is stopping)
        self._writer.finish(self._faults, "while writing the CAM images in the background before the run stopped "
                                          "on an exception", timeout=EXCEPTION_TIMEOUT)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        release_protocol_groups()  # the sharded runs' own process group: none of ours outlives the run
        # every image written before the stage returns (and before Lightning finalizes the loggers)
        self._writer.finish(self._faults, "while writing the CAM images in the background (the last CAM run's, and "
                                          "at the end of fit the evolution images and the views' final images)")

    # ------------------------------------------------------------------ steps
    def _start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loop: str) -> None:
        """A validation or test run starts: decide whether it gets CAM work, and prepare it."""
        self._active = self._schedule.begin(trainer.state.fn, trainer.sanity_checking, loop)
        if not self._active:
            return
        self._watch.reset()
        with self._watch.running("start"):
            self._prepare(trainer, pl_module, loop)

    def _prepare(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loop: str) -> None:
        """The run's parts, ready for its batches."""
        self._prefix = key_prefix(loop, self.dataloader_idx)
        # a probe set per stage: test grids show test images, with the test labels in the captions
        probe = self.test_probe if loop == "test" else self.probe
        self._probe_pass.start(probe, trainer.is_global_zero)
        self._runner.build(cam_module(pl_module))
        self._runner.start(trainer, pl_module.device, self._warnings)  # sharded or not: what the run leaves out
        self._batch.start(probe, self._bank if self._bank.start(self._runner.cams) else None,
                          sharded=self._runner.sharded is not None)
        self._accumulator.start(pl_module.device, trainer.world_size, trainer.global_rank)
        self._views.start(trainer, pl_module, cam_module(pl_module).cam_display)
        self._faults.reset()
        self._progress.restart()

    def _end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The run ends: the one reduce, the scalars, rank zero's grids (at the scalars' step), the report."""
        if not self._active:
            return
        self._active = False
        with timed("end/settle"):  # the previous run's image writes (long done): their faults count in this run
            self._writer.settle(self._faults)
        # one collective for every rank, whatever happened locally: sample counts and fault counts
        with timed("end/reduce"):
            totals = self._accumulator.reduce(lambda t: trainer.strategy.reduce(t, reduce_op="sum"),
                                              pl_module.device, extra=self._faults.tally())
            self._faults.set_totals(dict(zip(self._faults.counts, totals)),
                                    share=all_gather_objects if trainer.world_size > 1 else None)
        epoch, step = trainer.current_epoch, scalar_step(trainer)
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking
        log = scalar_log(pl_module, self._prefix, (lambda k, v: self._views.scalar(k, epoch, v)) if fitting else None)
        with timed("end/metrics"):
            self._accumulator.log(log)
        if self._batch.bank is not None:  # an embedding model: this run's centroids, the next run's bank
            self._end_bank(trainer, pl_module, log)
        zero = trainer.is_global_zero
        self._views.epoch_end(trainer, log, step, self._sinks(trainer) if zero else [],
                              getattr(pl_module, "cam_class_names", None), prefix=self._prefix)
        if zero:
            if fitting and epoch not in self.epochs_logged:
                self.epochs_logged.append(epoch)
            self._when = When(self.history.next_row(), epoch, step)
        # the probe's maps (rank zero; every rank when sharded), drawn by the views: their faults add to the totals
        with timed("probe/passes"):
            probe = self._probe_pass.maps(trainer, cam_module(pl_module), self._runner, self._when, fitting,
                                          self._prefix, self._progress)
        if probe is not None:
            self._views.probe_logged(probe, log, self._sinks(trainer))
        self._probe_pass.freeze(trainer, self._warnings)
        report = self._faults.report(f"in CAM work at epoch {epoch}")
        if report and trainer.is_global_zero:
            rank_zero_warn(report)
        self._progress.done(f"CAM work of epoch {epoch} ({self._accumulator.seen} samples on rank 0)",
                            self._watch.seconds)

    def _end_bank(self, trainer: pl.Trainer, pl_module: pl.LightningModule, log: ScalarLog) -> None:
        """The bank from this run's scored samples (every rank), ``cam/bank/shift``, and the bank on the methods
        from now on: the probe's maps of this run already explain against it."""
        built = self._bank.building
        with timed("end/bank"):
            shift = self._bank.end(lambda t, op: trainer.strategy.reduce(t, reduce_op=op), pl_module.device)
        if shift is not None:
            log("cam/bank/shift", torch.tensor(shift))
        self._bank.start(self._runner.cams)
        if built and trainer.is_global_zero:
            self._warnings.warn("bank_built", BANK_BUILT)

    def _sinks(self, trainer: pl.Trainer) -> list[ImageSink]:
        """The trainer's image sinks, those that allow it written in the background (`BackgroundWriter`)."""
        return self._writer.wrap(image_sinks(trainer), self.on_error)

    # ------------------------------------------------------------------ timing
    @property
    def timings(self) -> dict[str, float]:
        """With ``timing=True``: seconds per part of the last CAM run (and of the end of ``fit`` after it), timed
        in the callback's hooks (`Stopwatch`, exclusive: the parts add up to the callback's
        time): ``batch/passes`` the CAM passes of the scored batches (the methods' forwards and backwards and the
        metrics' forwards: the floor), ``batch/observe/<view>`` each view's per-batch work, ``end/<view>`` its work at
        the run's end, ``probe/passes`` the probe's maps, ``probe/grid`` drawing the grids, ``encode`` each image's
        encoding and writing by the loggers, ``gather`` the collectives of the views; empty otherwise."""
        return dict(self._watch.seconds)

    @property
    def background_seconds(self) -> float:
        """The CPU seconds the image writer's threads spent encoding and writing the images (`BackgroundWriter`),
        over the callback's life: work that runs beside the training, not in the hooks (`timings` leaves it out),
        and that on a machine whose cores the training fills comes out of the training's time."""
        return self._writer.cpu_seconds
