"""The per-batch step of CAM work: the probe capture, the batch's parts, and every method's metrics on this
rank's share of the samples (one shared pass, or one lock-step step per method when parameters are sharded)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from lightning_cam.callbacks.accumulate import MetricAccumulator
from lightning_cam.callbacks.bank import NO_LABELS, SHARDED_BANK, CentroidBank
from lightning_cam.callbacks.faults import MISSING_LABELS, Faults, WarnOnce, missing_masks
from lightning_cam.callbacks.probe import ProbeSet
from lightning_cam.callbacks.runner import CAMRunner
from lightning_cam.methods import BaseCAM
from lightning_cam.metrics.registry import metric_spec
from lightning_cam.mixin import CAMMixin
from lightning_cam.record import BatchRecord, CAMBatch
from lightning_cam.scoring import score_batch, score_method
from lightning_cam.utilities.checks import check_images
from lightning_cam.utilities.modes import eval_mode
from lightning_cam.utilities.randomize import SHARDED_REFUSAL
from lightning_cam.utilities.stopwatch import timed

__all__ = ["BatchPass", "Observer"]


class Observer(Protocol):
    """What reads a scored batch: ``observe(record)`` (the metric accumulator, the views, the probe reuse)."""

    def observe(self, record: BatchRecord) -> None: ...


class BatchPass:
    """One validation (or test) batch of CAM work: ``step(trainer, module, batch)``.

    Rank zero captures the probe images from the first batches it sees; each rank scores the first samples of
    its batches until its quota (`MetricAccumulator`) is spent, with
    the stateless step [`score_batch`][lightning_cam.scoring.score_batch] (one shared pass for every method), or,
    when the parameters are sharded, one lock-step step per method (every rank joins each method's step, a rank
    without samples with throw-away forwards). The batch's record then goes to every observer, in order.

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> from lightning_cam.methods import GradCAM
        >>> faults = Faults("warn")
        >>> acc = MetricAccumulator(["gradcam"], ["complexity"], max_samples=8, faults=faults)
        >>> step = BatchPass(acc, CAMRunner({"gradcam": GradCAM}, {}, "warn"), faults, WarnOnce(), target="pred",
        ...                  metrics=("complexity",), observers=[acc])
        >>> step.target
        'pred'
    """

    def __init__(self, accumulator: MetricAccumulator, runner: CAMRunner, faults: Faults, warnings: WarnOnce,
                 target: str, metrics: Sequence[str], observers: Sequence[Observer],
                 metric_kwargs: Mapping[str, Any] | None = None) -> None:
        self.accumulator, self.runner = accumulator, runner
        self.faults, self.warnings, self.target = faults, warnings, target
        #: the metrics asked for, and those of the current run (`start`: a sharded run leaves some out)
        self.configured, self.metric_kwargs = tuple(metrics), dict(metric_kwargs or {})
        self.metrics = self.configured
        self.observers = list(observers)
        #: the stage's probe set, captured from the first batches rank zero sees (`start`)
        self.probe: ProbeSet | None = None
        #: an embedding model's class centroids (`CentroidBank`), fed the scored samples; ``None``: another kind
        self.bank: CentroidBank | None = None

    def start(self, probe: ProbeSet, bank: CentroidBank | None = None, sharded: bool = False) -> None:
        """A CAM run starts: its stage's probe set, the bank it feeds when it explains an embedding model, and its
        metrics: under ``sharded`` parameters those that cannot run so (`MetricSpec.shardable`) are left out on
        every rank, before any forward, with one warning each (instead of a fault at every batch)."""
        self.probe, self.bank = probe, bank
        self.metrics = self.configured
        if sharded:
            left = [name for name in self.configured if not metric_spec(name).shardable]
            self.metrics = tuple(name for name in self.configured if name not in left)
            for name in left:
                self.warnings.warn(f"unshardable_metric:{name}",
                                   f"CAMCallback: the metric {name} is left out of this run: {SHARDED_REFUSAL}")

    def step(self, trainer: Any, module: CAMMixin, batch: Any) -> None:
        """The probe capture (rank zero, first run), the scored batch, and its record to every observer."""
        capture = trainer.is_global_zero and self.probe is not None and self.probe.wanted > 0
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
        if parts is not None and capture and self.probe is not None:
            self.probe.add(parts.images, parts.labels, parts.extra)
        if self.bank is not None and sharded is not None:  # the same decision on every rank: the bank is theirs
            self.faults.record("error", SHARDED_BANK, NotImplementedError(SHARDED_BANK))
            return
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
            record: BatchRecord | None
            if self.bank is not None and sub is not None and self.bank.building:  # nothing to explain against yet
                with timed("batch/passes"):
                    self._feed_bank(sub, None)
                return
            if sharded is None and sub is not None:  # one shared pass for every method
                record = score_batch(self.runner.cams, sub, targets, self.metrics, self.faults, self.metric_kwargs)
                self.runner.drop(self.faults.unexplained, self.warnings)
            else:  # lock-step: one agreed step per method, every rank the same forwards
                assert sharded is not None  # unsharded, only a rank with samples gets here
                self.runner.drop(sharded.choose_layers(self.runner.cams, sub, shape, dtype), self.warnings)
                record = BatchRecord(sub) if sub is not None else None
                for name, cam in self.runner.cams.items():
                    work = None if record is None else functools.partial(self._score_one, record, name, cam, targets)
                    self.runner.run(work, shape, cam, dtype)
                for name, why in self.faults.unexplained.items():  # a named layer of this rank only: the ranks
                    if name not in self.runner.dropped:  # cannot drop it together, so it stays a counted fault
                        self.faults.record("error", f"{name} raised NotExplainable: {why}")
                self.faults.unexplained = {k: v for k, v in self.faults.unexplained.items() if k in self.runner.dropped}
            if record is not None:
                if self.bank is not None:
                    self._feed_bank(record.parts, record)
                self.publish(record)

    def _feed_bank(self, parts: CAMBatch, record: BatchRecord | None) -> None:
        """The scored samples' embeddings and labels to the bank: the output of the record's passes, else one
        forward (the run that only builds the bank)."""
        assert self.bank is not None
        if not self.runner.cams:  # every method left the run: nothing to explain, nothing to build a bank for
            return
        if parts.labels is None:
            self.warnings.warn("bank_labels", NO_LABELS)
            return
        first = next(iter(record.methods.values()), None) if record is not None else None
        if first is not None and first.batch_size == int(parts.images.shape[0]):
            embeddings = first.result.logits
        else:
            cam = next(iter(self.runner.cams.values()))
            with eval_mode(cam.model):  # as `explain` runs: no BatchNorm update, no dropout draw
                embeddings = cam.forward_logits(parts.images, parts.extra)
        self.bank.add(embeddings, parts.labels)

    def _score_one(self, record: BatchRecord, name: str, cam: BaseCAM, targets: Tensor | None) -> None:
        """One method's step of a sharded run, added to the batch's ``record``."""
        scored = score_method(name, cam, record.parts, targets, self.metrics, self.faults, self.metric_kwargs)
        if scored is not None:
            record.methods[name] = scored

    def publish(self, record: BatchRecord) -> None:
        """The record to every observer, in order; a metric the batch could not give is warned about once."""
        for observer in self.observers:
            with timed(f"batch/observe/{type(observer).__name__}"):
                observer.observe(record)
        if record.skipped:
            self.warnings.warn("no_masks", missing_masks(record.skipped))

    def parts(self, module: CAMMixin, batch: Any) -> CAMBatch | None:
        """``cam_inputs(batch)``, or ``None`` after a fault (it raised, or no labels for ``target='label'``)."""
        try:
            with timed("batch/inputs"):
                parts = module.cam_inputs(batch)
            check_images(parts.images, allow_empty=True)  # before any slicing, by the one rule of each
            if parts.labels is not None:  # in a form the kind explains (multi-hot rows, segmentation label masks)
                kind = module.cam_target_task().target
                kind.check_targets(parts.labels, int(parts.images.shape[0]), parts.images.device)
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self.faults.record("error", f"cam_inputs(batch) raised {type(err).__name__}: {err}", err)
            return None
        if self.target == "label" and parts.labels is None:
            self.faults.record("error", MISSING_LABELS, ValueError(MISSING_LABELS))
            return None
        return parts
