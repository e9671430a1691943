"""The callback's metric bookkeeping: the per-rank sample quota, the ``torchmetrics`` objects, the NaN filter,
the one reduce over ranks and the logged scalars ``cam/<method>/<metric>``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_cam.callbacks.faults import Faults
from lightning_cam.evaluate import evaluate_batch
from lightning_cam.methods import BaseCAM, CAMResult, ExtraInputs, MethodGroup
from lightning_cam.metrics.registry import localization_metrics, metric_spec
from lightning_cam.mixin import CAMBatch

__all__ = [
    "MetricAccumulator",
    "rank_quota",
    "applicable_metrics",
    "finite_samples",
]


def finite_samples(result: CAMResult) -> Tensor:
    """``(B,)`` bool: the samples whose map and logits are all finite.

    Examples:
        >>> maps, logits = torch.rand(3, 4, 4), torch.zeros(3, 5)
        >>> maps[0, 1, 1], logits[2, 0] = float("nan"), float("inf")
        >>> finite_samples(CAMResult(maps, maps, logits, torch.zeros(3, dtype=torch.long)))
        tensor([False,  True, False])
    """
    return torch.isfinite(result.maps).flatten(1).all(1) & torch.isfinite(result.logits).flatten(1).all(1)


def rank_quota(max_samples: int, world_size: int, rank: int) -> int:
    """How many samples rank ``rank`` of ``world_size`` scores so that the ranks together score ``max_samples``:
    its share of the first ``max_samples`` positions under a distributed sampler (``r, r + W, ...``).

    Examples:
        >>> [rank_quota(5, 2, r) for r in range(2)], [rank_quota(24, 5, r) for r in range(5)]
        ([3, 2], [5, 5, 5, 5, 4])
    """
    world = max(1, int(world_size))
    return len(range(int(rank) % world, int(max_samples), world))


def applicable_metrics(metrics: Sequence[str], parts: CAMBatch) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(wanted, skipped)``: localization metrics need masks or boxes in the batch; the others always apply.

    Examples:
        >>> applicable_metrics(("adcc", "iou"), CAMBatch(torch.zeros(1, 3, 8, 8)))
        (('adcc',), ('iou',))
    """
    grounded = parts.masks is not None or parts.boxes is not None
    local = localization_metrics()
    wanted = tuple(k for k in metrics if grounded or k not in local)
    return wanted, tuple(k for k in metrics if k not in wanted)


class MetricAccumulator:
    """One ``torchmetrics`` object per method and metric, fed the per-sample values of each batch, and the
    per-rank sample quota (``max_samples=None``: no limit), :func:`rank_quota`: the total over ranks is
    ``max_samples``, and with Lightning's distributed sampler (rank ``r`` gets samples ``r, r + W, ...`` in
    order) the ranks score exactly the first ``max_samples`` samples, those a 1-process run scores.

    Non-finite values enter the metrics as NaN (which they skip) and are not counted; the per-(method, metric)
    counts of finite samples, summed over ranks in :meth:`reduce`, decide what :meth:`log` logs, the same way
    on every rank (``compute()`` is a collective).

    Faults (an exception, a non-finite map, logit or value) go to ``faults``, under its ``on_error`` policy.

    Examples:
        >>> acc = MetricAccumulator(["gradcam"], ["complexity"], max_samples=6, faults=Faults("warn"))
        >>> acc.start(torch.device("cpu"), world_size=2, rank=0)
        >>> acc.take(4), acc.take(4)  # rank 0 of 2 scores samples 0, 2, 4 of the first 6
        (3, 0)
        >>> acc.update("gradcam", {"complexity": torch.tensor([0.2, float("nan"), 0.4])})
        tensor(1)
        >>> acc.reduce(lambda t: t, torch.device("cpu"), extra=[5])  # one process: the sums are the values
        [5.0]
        >>> logged = {}
        >>> acc.log(lambda key, value: logged.update({key: round(float(value), 4)}))
        >>> logged
        {'cam/gradcam/complexity': 0.3}
    """

    def __init__(
        self,
        methods: Sequence[str],
        metrics: Sequence[str],
        max_samples: int | None,
        faults: Faults,
        metric_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.methods = tuple(methods)
        self.metric_names = tuple(metrics)
        self.max_samples = max_samples
        self.faults = faults
        self.metric_kwargs = dict(metric_kwargs or {})
        self.objects: dict[str, dict[str, Metric]] = {}
        self.quota: float = 0.0
        self.seen = 0
        self._counts: dict[tuple[str, str], Tensor] = {}  # finite samples per metric, on the device
        self.totals: dict[tuple[str, str], float] = {}
        #: called with ``(method, parts, result, values, index, batch_size)`` after each scored batch
        self.observe: Callable[..., None] | None = None

    @property
    def counts(self) -> dict[tuple[str, str], int]:
        """Finite samples added per ``(method, metric)`` on this rank (read back from the device: not per batch)."""
        return {k: int(v) for k, v in self._counts.items()}

    def start(self, device: torch.device, world_size: int, rank: int = 0) -> None:
        """A new epoch: metric objects created (once) and reset on ``device``, quota and counts cleared."""
        with torch.inference_mode(False):  # states must not be inference tensors: updates run outside it
            if not self.objects:
                self.objects = {m: {k: metric_spec(k).metric() for k in self.metric_names} for m in self.methods}
            for per_method in self.objects.values():
                for metric in per_method.values():
                    metric.to(device)
                    metric.reset()
        self.quota = math.inf if self.max_samples is None else float(rank_quota(self.max_samples, world_size, rank))
        self.seen = 0
        with torch.inference_mode(False):
            zero = torch.zeros((), dtype=torch.long, device=device)
            self._counts = {(m, k): zero.clone() for m in self.methods for k in self.metric_names}
        self.totals = {}

    @property
    def remaining(self) -> float:
        """Samples this rank may still use this epoch (``inf`` without a limit)."""
        return max(0.0, self.quota - self.seen)

    def take(self, batch_size: int) -> int:
        """How many of a batch's ``batch_size`` samples to use (the first ones), counted as seen."""
        n = int(min(self.remaining, batch_size))
        self.seen += n
        return n

    def update(self, method: str, values: Mapping[str, Tensor], valid: Tensor | None = None) -> Tensor:
        """Add the per-sample ``values`` (metric name -> ``(B,)``) of ``method``; returns (a 0-d device tensor,
        no host sync) how many samples had a non-finite value, left out of that metric. ``valid`` (``(B,)``
        bool) marks the samples to add; the others are left out without being counted as non-finite."""
        keys = list(values)
        stacked = torch.stack([values[k].detach().float().reshape(-1) for k in keys])  # (M, B)
        finite = torch.isfinite(stacked)
        if valid is not None:
            valid = valid.to(stacked.device)
            stacked = torch.where(valid, stacked, torch.full_like(stacked, float("nan")))
            finite = finite & valid
        stacked = torch.where(finite, stacked, torch.full_like(stacked, float("nan")))
        for key, row, ok_row in zip(keys, stacked, finite):
            self.objects[method][key].update(row)
            count = self._counts[(method, key)]
            self._counts[(method, key)] = count + ok_row.sum().to(count.device)
        bad = ~finite.all(0)
        return (bad & valid).sum() if valid is not None else bad.sum()

    def measure(
        self, name: str, cam: BaseCAM, parts: CAMBatch, targets: Tensor | None, result: CAMResult | None = None
    ) -> tuple[str, ...]:
        """One method on one batch: the CAM (or ``result``, e.g. from a
        :class:`~lightning_cam.methods.MethodGroup`), the samples with a non-finite map or logit left out (a
        fault), blank maps left out (a fault), the metric values of :func:`lightning_cam.evaluate_batch` added
        (non-finite ones left out, a fault). Returns the metrics skipped for want of masks or boxes. An
        exception is a fault too.

        No value is read back to the host (no device sync) under ``on_error="warn"``: the left-out samples are
        moved behind the kept ones (a stable reordering, so the batch the evaluator sees starts as the kept
        samples would) and masked out of the metrics, and the fault tallies stay on the device
        (:meth:`Faults.add`)."""
        try:
            if result is None:
                extra = ExtraInputs.of(parts.extra)
                # `extra=` only when there is some: a user's BaseCAM subclass may override explain(images, targets)
                result = (cam.explain(parts.images, targets, extra=extra) if extra
                          else cam.explain(parts.images, targets))
            if result.samples is not None:  # multi-label: the (image, class) pairs are the samples from here on
                parts, result = parts.pairs(result.samples, result.targets), result.paired(None)
            ok = finite_samples(result)
            self.faults.add("nonfinite", (~ok).sum(), lambda n: f"{name}: {n} sample(s) with a non-finite map or logit")
            if result.blank is not None:
                blank = ok & result.blank.to(ok.device)
                size = int(ok.shape[0])
                why = result.lazy_blank_reason  # formatted only when the fault's text is read; holds no maps
                # fatal under on_error="raise" only when no sample has a map: a misconfiguration
                self.faults.add("blank", blank.sum(), lambda n: f"{name}: {n} blank (constant) map(s) left out of the "
                                f"metrics; {why()}", fatal=lambda n: n == size)
                ok = ok & ~blank
            order = torch.argsort((~ok).to(torch.uint8), stable=True)  # kept samples first, in their order
            result, parts = result.take(order), parts.take(order)
            ok = ok[order]
            wanted, skipped = applicable_metrics(self.metric_names, parts)
            if wanted:
                values = evaluate_batch(cam, parts.images, result.targets, parts.masks, metrics=wanted,
                                        boxes=parts.boxes, result=result, extra=parts.extra, **self.metric_kwargs)
                nbad = self.update(name, {key: values[key] for key in wanted}, valid=ok)
                self.faults.add("nonfinite", nbad, lambda n: f"{name}: {n} sample(s) with a non-finite metric value")
                if self.observe is not None:  # the callback's views (gallery, agreement, per class)
                    self._observe(name, parts, result, {key: values[key] for key in wanted}, ok, order)
            return skipped
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self.faults.record("error", f"{name} raised {type(err).__name__}: {err}", err)
            return ()

    def _observe(self, name: str, parts: CAMBatch, result: CAMResult, values: Mapping[str, Tensor], ok: Tensor,
                 order: Tensor) -> None:
        """The views see the reordered batch with the left-out samples as NaN (which every view skips) and each
        row's original position ``order`` (so two methods' maps pair up by sample): no host sync."""
        assert self.observe is not None
        nan = torch.tensor(float("nan"), device=ok.device)
        shown = CAMResult(torch.where(ok.view(-1, 1, 1), result.maps.float(), nan), result.low_res, result.logits,
                          result.targets, result.blank, result.lazy_blank_reason)
        kept = {key: torch.where(ok, value.float(), nan) for key, value in values.items()}
        self.observe(name, parts, shown, kept, order, int(ok.shape[0]))

    def measure_all(
        self, cams: Mapping[str, BaseCAM], parts: CAMBatch, targets: Tensor | None,
        shared: Callable[[Mapping[str, CAMResult]], None] | None = None,
    ) -> tuple[str, ...]:
        """Every method on one batch, their maps from one shared pass (:class:`~lightning_cam.methods.MethodGroup`:
        one forward and backward per target layer instead of one per method), then :meth:`measure` per method
        with its result. If the shared pass raises, each method runs alone so that a failing method is a fault
        of its own. ``shared`` is handed the shared pass's results when it succeeded (e.g. the probe's maps,
        :class:`~lightning_cam.callbacks.probe_reuse.ProbeReuse`). Returns the metrics skipped for want of masks
        or boxes."""
        results: dict[str, CAMResult] | None = None
        try:
            extra = ExtraInputs.of(parts.extra)
            results = MethodGroup(cams).explain(parts.images, targets, extra=extra if extra else None)
        except Exception:  # noqa: BLE001 - each method alone below reports (or raises) its own fault
            results = None
        if results is not None and shared is not None:
            shared(results)
        skipped: tuple[str, ...] = ()
        for name, cam in cams.items():
            skipped = self.measure(name, cam, parts, targets, None if results is None else results[name]) or skipped
        return skipped

    def reduce(
        self, reduce: Callable[[Tensor], Tensor], device: torch.device, extra: Sequence[int] = ()
    ) -> list[float]:
        """The epoch's one collective: the sample counts and ``extra`` (the fault counts) summed by ``reduce``
        (``lambda t: trainer.strategy.reduce(t, reduce_op="sum")``); every rank calls it, whatever happened
        locally. Keeps the count totals for :meth:`log` and returns the totals of ``extra``."""
        keys = list(self._counts)
        with torch.inference_mode(False):
            counts = [self._counts[k].to(device, torch.float64).reshape(1) for k in keys]
            local = torch.cat([*counts, torch.tensor(list(extra), dtype=torch.float64, device=device)])
            total = reduce(local).cpu().tolist()
        self.totals = dict(zip(keys, total[: len(keys)]))
        return total[len(keys):]

    def log(self, log: Callable[[str, Tensor], None]) -> None:
        """``log("cam/<method>/<metric>", value)`` for every metric with samples on some rank (after
        :meth:`reduce`), then reset every metric and count (nothing is logged twice)."""
        with torch.inference_mode(False):
            for (name, key), count in self.totals.items():
                metric = self.objects[name][key]
                if count > 0:  # same decision on every rank: compute() is a collective
                    log(f"cam/{name}/{key}", metric.compute().float())
                metric.reset()
        self._counts = {k: torch.zeros_like(v) for k, v in self._counts.items()}
        self.totals = {}
