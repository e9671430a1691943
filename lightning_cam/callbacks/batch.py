"""The per-batch step of CAM work: the probe capture, the batch's parts, and every method's metrics on this
rank's share of the samples (one shared pass, or one lock-step step per method when parameters are sharded)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lightning_cam.callbacks.accumulate import MetricAccumulator
from lightning_cam.callbacks.faults import MISSING_LABELS, Faults, WarnOnce, missing_masks
from lightning_cam.callbacks.probe import ProbeSet
from lightning_cam.callbacks.probe_reuse import ProbeReuse
from lightning_cam.callbacks.runner import CAMRunner
from lightning_cam.methods import BaseCAM
from lightning_cam.mixin import CAMBatch, CAMMixin
from lightning_cam.targets.task import check_task
from lightning_cam.utilities.checks import check_images, check_targets

__all__ = ["BatchPass"]


class BatchPass:
    """One validation (or test) batch of CAM work: ``step(trainer, module, batch)``.

    Rank zero captures the probe images from the first batches it sees; each rank scores the first samples of
    its batches until its quota (:class:`~lightning_cam.callbacks.accumulate.MetricAccumulator`) is spent.
    Without sharding, every method's maps come from one shared pass; with sharded parameters, every rank
    joins each method's step in lock-step, a rank without samples with throw-away forwards.

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> from lightning_cam.methods import GradCAM
        >>> faults = Faults("warn")
        >>> acc = MetricAccumulator(["gradcam"], ["complexity"], max_samples=8, faults=faults)
        >>> step = BatchPass(acc, ProbeSet(capacity=2), CAMRunner({"gradcam": GradCAM}, {}, "warn"), faults,
        ...                  WarnOnce(), target="pred")
        >>> step.target
        'pred'
    """

    def __init__(self, accumulator: MetricAccumulator, probe: ProbeSet, runner: CAMRunner, faults: Faults,
                 warnings: WarnOnce, target: str, after: Callable[[], None] | None = None,
                 reuse: ProbeReuse | None = None) -> None:
        self.accumulator, self.probe, self.runner = accumulator, probe, runner
        self.faults, self.warnings, self.target = faults, warnings, target
        #: the probe's maps taken from the run's first scored batch on rank zero (the grid's forwards saved)
        self.reuse = reuse
        #: called inside the CAM context after every method ran on a batch (e.g. the views' pairing)
        self.after = after

    def step(self, trainer: Any, module: CAMMixin, batch: Any) -> None:
        """The probe capture (rank zero, first run) and each method's metrics on the batch's first samples."""
        capture = trainer.is_global_zero and self.probe.wanted > 0
        sharded, acc = self.runner.sharded, self.accumulator
        if acc.remaining <= 0 and not capture and sharded is None:
            return
        parts, error = None, None
        try:
            parts = self.parts(module, batch) if acc.remaining > 0 or capture else None
        except Exception as err:  # on_error="raise": when sharded, raised after the agreement below
            if sharded is None:
                raise
            error = err
        if parts is not None and capture:
            self.probe.add(parts.images, parts.labels, parts.extra)
        n = 0 if parts is None else acc.take(parts.images.shape[0])
        sub = None if parts is None or n <= 0 else parts
        local = None if sub is None else tuple(sub.images.shape[1:])
        dtype = None if sub is None else sub.images.dtype
        # sharded: every rank joins while any rank has samples (a rank without any joins the others' forwards
        # with throw-away inputs of the agreed shape and dtype: what a real input of this precision would be)
        agreed = (None if local is None or dtype is None else (local, dtype)) if sharded is None else \
            sharded.agree_inputs(local, dtype, error)
        if agreed is None:
            return
        shape, dtype = agreed
        with self.runner.context(trainer):
            sub = None if sub is None else sub.take(torch.arange(n, device=sub.images.device))
            targets = None if sub is None or self.target != "label" else sub.labels
            if sharded is None and sub is not None:  # one shared pass for every method (MethodGroup)
                reuse = self.reuse if trainer.is_global_zero and self.reuse is not None and self.reuse.wanted \
                    else None
                offer = None if reuse is None else functools.partial(reuse.offer, self.probe, sub)
                self.warn_missing(acc.measure_all(self.runner.cams, sub, targets, shared=offer))
            else:  # lock-step: one agreed step per method, every rank the same forwards
                for name, cam in self.runner.cams.items():
                    work = None if sub is None else functools.partial(self.measure, name, cam, sub, targets)
                    self.runner.run(work, shape, cam, dtype)
            if self.after is not None:
                self.after()

    def measure(self, name: str, cam: BaseCAM, sub: CAMBatch, targets: Tensor | None) -> None:
        """One method's metrics on this rank's samples ``sub`` (a fault never escapes, unless ``on_error='raise'``)."""
        self.warn_missing(self.accumulator.measure(name, cam, sub, targets))

    def warn_missing(self, skipped: tuple[str, ...]) -> None:
        if skipped:
            self.warnings.warn("no_masks", missing_masks(skipped))

    def parts(self, module: CAMMixin, batch: Any) -> CAMBatch | None:
        """``cam_inputs(batch)``, or ``None`` after a fault (it raised, or no labels for ``target='label'``)."""
        try:
            parts = module.cam_inputs(batch)
            check_images(parts.images, allow_empty=True)  # before any slicing, by the one rule of each
            if parts.labels is not None:  # one label per image (a multi-hot row for a multi-label model)
                multi = check_task(getattr(module, "cam_task", None)).multilabel
                check_targets(parts.labels, int(parts.images.shape[0]), parts.images.device, multi_hot=multi)
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self.faults.record("error", f"cam_inputs(batch) raised {type(err).__name__}: {err}", err)
            return None
        if self.target == "label" and parts.labels is None:
            self.faults.record("error", MISSING_LABELS, ValueError(MISSING_LABELS))
            return None
        return parts
