"""The callback's metric bookkeeping: the per-rank sample quota, the ``torchmetrics`` objects (fed by observing
each scored batch's record), the NaN filter, the one reduce over ranks and the logged scalars
``cam/<method>/<metric>``. It runs no CAM: the scoring step does
([`score_batch`][lightning_cam.scoring.score_batch])."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_cam.callbacks.faults import Faults
from lightning_cam.metrics.registry import metric_spec
from lightning_cam.record import BatchRecord

__all__ = ["MetricAccumulator", "rank_quota"]


def rank_quota(max_samples: int, world_size: int, rank: int) -> int:
    """How many samples rank ``rank`` of ``world_size`` scores so that the ranks together score ``max_samples``:
    its share of the first ``max_samples`` positions under a distributed sampler (``r, r + W, ...``).

    Examples:
        >>> [rank_quota(5, 2, r) for r in range(2)], [rank_quota(24, 5, r) for r in range(5)]
        ([3, 2], [5, 5, 5, 5, 4])
    """
    world = max(1, int(world_size))
    return len(range(int(rank) % world, int(max_samples), world))


def _nonfinite_message(method: str, metrics: Sequence[str]) -> Callable[[int, list[int]], str]:
    """The fault's text: the method, its samples with a non-finite value, and which metrics had them."""
    def message(n: int, per_metric: list[int]) -> str:
        which = ", ".join(f"{k} {c}" for k, c in zip(metrics, per_metric) if c)
        return f"{method}: {n} sample(s) with a non-finite metric value ({which})"

    return message


class MetricAccumulator:
    """One ``torchmetrics`` object per method and metric, fed the per-sample values of each batch, and the
    per-rank sample quota (``max_samples=None``: no limit), `rank_quota`: the total over ranks is
    ``max_samples``, and with Lightning's distributed sampler (rank ``r`` gets samples ``r, r + W, ...`` in
    order) the ranks score exactly the first ``max_samples`` samples, those a 1-process run scores.

    Non-finite values enter the metrics as NaN (which they skip) and are not counted; the per-(method, metric)
    counts of finite samples, summed over ranks in `reduce`, decide what `log` logs, the same way
    on every rank (``compute()`` is a collective).

    Faults (an exception, a non-finite map, logit or value) go to ``faults``, under its ``on_error`` policy.

    Examples:
        >>> acc = MetricAccumulator(["gradcam"], ["complexity"], max_samples=6, faults=Faults("warn"))
        >>> acc.start(torch.device("cpu"), world_size=2, rank=0)
        >>> acc.take(4), acc.take(4)  # rank 0 of 2 scores samples 0, 2, 4 of the first 6
        (3, 0)
        >>> acc.update("gradcam", {"complexity": torch.tensor([0.2, float("nan"), 0.4])})
        (tensor(1), tensor([1]))
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
    ) -> None:
        self.methods = tuple(methods)
        self.metric_names = tuple(metrics)
        self.max_samples = max_samples
        self.faults = faults
        self.objects: dict[str, dict[str, Metric]] = {}
        self.quota: float = 0.0
        self.seen = 0
        self._counts: dict[tuple[str, str], Tensor] = {}  # finite samples per metric, on the device
        self.totals: dict[tuple[str, str], float] = {}

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

    def update(self, method: str, values: Mapping[str, Tensor], valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Add the per-sample ``values`` (metric name -> ``(B,)``) of ``method``; returns (device tensors, no host
        sync) how many samples had a non-finite value, left out of that metric, and how many per metric (``(M,)``,
        in the order of ``values``). ``valid`` (``(B,)`` bool) marks the samples to add; the others are left out
        without being counted as non-finite."""
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
        bad = ~finite if valid is None else ~finite & valid
        return bad.any(0).sum(), bad.sum(1)

    def observe(self, record: BatchRecord) -> None:
        """Add each method's kept values of a scored batch (an observer of
        [`score_batch`][lightning_cam.scoring.score_batch]); a kept sample with a non-finite value is left out of
        that metric and counted as a fault (on the device: no host sync)."""
        for name, scored in record.methods.items():
            if scored.values:
                bad, per_metric = self.update(name, scored.values, valid=scored.kept)
                self.faults.add("nonfinite", bad, _nonfinite_message(name, list(scored.values)), parts=per_metric)

    def reduce(
        self, reduce: Callable[[Tensor], Tensor], device: torch.device, extra: Sequence[int] = ()
    ) -> list[float]:
        """The epoch's one collective: the sample counts and ``extra`` (the fault counts) summed by ``reduce``
        (``lambda t: trainer.strategy.reduce(t, reduce_op="sum")``); every rank calls it, whatever happened
        locally. Keeps the count totals for `log` and returns the totals of ``extra``."""
        keys = list(self._counts)
        with torch.inference_mode(False):
            counts = [self._counts[k].to(device, torch.float64).reshape(1) for k in keys]
            local = torch.cat([*counts, torch.tensor(list(extra), dtype=torch.float64, device=device)])
            total = reduce(local).cpu().tolist()
        self.totals = dict(zip(keys, total[: len(keys)]))
        return total[len(keys):]

    def log(self, log: Callable[[str, Tensor], None]) -> None:
        """``log("cam/<method>/<metric>", value)`` for every metric with samples on some rank (after
        `reduce`), then reset every metric and count (nothing is logged twice)."""
        with torch.inference_mode(False):
            for (name, key), count in self.totals.items():
                metric = self.objects[name][key]
                if count > 0:  # same decision on every rank: compute() is a collective
                    log(f"cam/{name}/{key}", metric.compute().float())
                metric.reset()
        self._counts = {k: torch.zeros_like(v) for k, v in self._counts.items()}
        self.totals = {}
