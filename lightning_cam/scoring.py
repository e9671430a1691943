"""``score_batch``: the stateless scoring step. Explain a batch with every method, evaluate the maps, and return
one [`BatchRecord`][lightning_cam.record.BatchRecord] that every observer reads.

For each method, in one pass:

1. the maps: one shared pass for all methods ([`MethodGroup`][lightning_cam.methods.group.MethodGroup]: one
   forward and backward per target layer), or, if that pass raises, each method alone so that a failing method
   is a fault of its own;
2. a paired kind's pairs become the samples (`CAMBatch.pairs`);
3. samples with a non-finite map or logit, and blank maps, are left out of the metrics (each a counted fault);
   they stay in the batch's order (no copy of the images per method: every sample is evaluated on its own),
   masked out (NaN) in the record;
4. the metric values of [`evaluate_batch`][lightning_cam.evaluate.evaluate_batch] for the metrics the batch
   can give (localization ones need masks or boxes).

Nothing is read back to the host (no device sync): fault counts go to ``faults`` as device tensors, formatted
only when a report is read. The step keeps no state; ``faults`` is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from lightning_cam.evaluate import evaluate_batch
from lightning_cam.functional.finite import finite_rows
from lightning_cam.methods import BaseCAM, CAMResult, ExtraInputs, MethodGroup
from lightning_cam.methods.layers import NotExplainable
from lightning_cam.metrics.registry import localization_metrics
from lightning_cam.record import BatchRecord, CAMBatch, MethodRecord
from lightning_cam.targets.task import check_task
from lightning_cam.utilities.stopwatch import timed

__all__ = ["FaultSink", "applicable_metrics", "finite_samples", "score_batch", "score_method"]


class FaultSink(Protocol):
    """Where the scoring step reports faults (the callback's `Faults`: counted, reported, or raised under
    ``on_error="raise"``)."""

    def add(self, kind: Any, count: Tensor, message: Callable[[int], str],
            fatal: Callable[[int], bool] | None = None) -> None: ...

    def record(self, kind: Any, detail: str, err: BaseException | None = None, fatal: bool = True) -> None: ...

    def unexplainable(self, method: str, err: BaseException) -> None: ...


def finite_samples(result: CAMResult) -> Tensor:
    """``(B,)`` bool: the samples whose map and logits are all finite.

    Examples:
        >>> maps, logits = torch.rand(3, 4, 4), torch.zeros(3, 5)
        >>> maps[0, 1, 1], logits[2, 0] = float("nan"), float("inf")
        >>> finite_samples(CAMResult(maps, maps, logits, torch.zeros(3, dtype=torch.long)))
        tensor([False,  True, False])
    """
    return finite_rows(result.maps) & finite_rows(result.logits)


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


def _explain(cam: BaseCAM, parts: CAMBatch, targets: Tensor | None) -> CAMResult:
    extra = ExtraInputs.of(parts.extra)
    # `extra=` only when there is some: a user's BaseCAM subclass may override explain(images, targets)
    return cam.explain(parts.images, targets, extra=extra) if extra else cam.explain(parts.images, targets)


def score_method(
    name: str, cam: BaseCAM, parts: CAMBatch, targets: Tensor | None, metrics: Sequence[str], faults: FaultSink,
    metric_kwargs: Mapping[str, Any] | None = None, result: CAMResult | None = None,
) -> MethodRecord | None:
    """One method's [`MethodRecord`][lightning_cam.record.MethodRecord] of a batch (steps 2-4 of the module
    docstring), from ``result`` (e.g. a shared pass's) or its own ``explain``; ``None`` after a fault (an exception:
    reported, or raised under ``on_error="raise"``)."""
    try:
        if result is None:
            with timed("batch/passes"):
                result = _explain(cam, parts, targets)
        if result.samples is not None:  # a paired kind: the (image, target) pairs are the samples from here on
            parts, result = parts.pairs(result.samples, result.targets), result.paired(None)
        ok = finite_samples(result)
        faults.add("nonfinite", (~ok).sum(), lambda n: f"{name}: {n} sample(s) with a non-finite map or logit")
        size = int(ok.shape[0])
        kind = check_task(getattr(cam, "task", None)).target
        reference = kind.reference(result.logits.detach(), result.targets) if kind.has_reference else None
        if reference is not None:  # pairs without a score (a segmentation class predicted nowhere): left out, counted
            defined = kind.defined(result.logits.detach(), result.targets, reference)
            if defined is not None:  # (said before the blank maps: the precise reason of theirs too)
                empty = ok & ~defined.to(ok.device)
                faults.add("blank", empty.sum(), lambda n: f"{name}: {n} pair(s) left out of the metrics: "
                           f"{kind.undefined}", fatal=lambda n: n == size)
                ok = ok & defined.to(ok.device)
        if result.blank is not None:
            blank = ok & result.blank.to(ok.device)
            why = result.lazy_blank_reason  # formatted only when the fault's text is read; holds no maps
            # fatal under on_error="raise" only when no sample has a map: a misconfiguration
            faults.add("blank", blank.sum(), lambda n: f"{name}: {n} blank (constant) map(s) left out of the "
                       f"metrics; {why()}", fatal=lambda n: n == size)
            ok = ok & ~blank
        # the batch's own order (no copy of the images per method): a left-out sample is a NaN row
        order = torch.arange(int(ok.shape[0]), device=ok.device)
        wanted, skipped = applicable_metrics(metrics, parts)
        values: dict[str, Tensor] = {}
        if wanted:
            with timed("batch/passes"):
                got = evaluate_batch(cam, parts.images, result.targets, parts.masks, metrics=wanted, boxes=parts.boxes,
                                     result=result, extra=parts.extra, **dict(metric_kwargs or {}))
            values = {key: got[key] for key in wanted}
        nan = torch.tensor(float("nan"), device=ok.device)
        shown = CAMResult(torch.where(ok.view(-1, 1, 1), result.maps.float(), nan), result.low_res, result.logits,
                          result.targets, result.blank, result.lazy_blank_reason)
        kept = {key: torch.where(ok, value.float(), nan) for key, value in values.items()}
        return MethodRecord(name, parts, shown, kept, ok, order, skipped)
    except NotExplainable as err:  # the model itself: no map can ever be made (left out of the run, said once)
        faults.unexplainable(name, err)
        return None
    except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
        faults.record("error", f"{name} raised {type(err).__name__}: {err}", err)
        return None


def score_batch(
    cams: Mapping[str, BaseCAM], parts: CAMBatch, targets: Tensor | None, metrics: Sequence[str],
    faults: FaultSink, metric_kwargs: Mapping[str, Any] | None = None,
) -> BatchRecord:
    """Every method on one batch, their maps from one shared pass, as one
    [`BatchRecord`][lightning_cam.record.BatchRecord] (see the module docstring).

    Args:
        cams: method name -> method object, all on the same model.
        parts: the samples to score.
        targets: what to explain (``None``: the prediction, under the methods' target kind).
        metrics: the metric names to compute.
        faults: where faults go (counted on the device, or raised under ``on_error="raise"``).
        metric_kwargs: options of `evaluate_batch`.

    Examples:
        >>> from torch import nn
        >>> from lightning_cam.callbacks.faults import Faults
        >>> from lightning_cam.methods import GradCAM
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                     nn.Linear(4, 2))
        >>> record = score_batch({"gradcam": GradCAM(net, "1")}, CAMBatch(torch.rand(3, 3, 8, 8)), None,
        ...                      ("complexity",), Faults("warn"))
        >>> record.methods["gradcam"].values["complexity"].shape
        torch.Size([3])
    """
    shared: dict[str, CAMResult] | None
    try:
        extra = ExtraInputs.of(parts.extra)
        with timed("batch/passes"):
            shared = MethodGroup(cams).explain(parts.images, targets, extra=extra if extra else None)
    except Exception:  # noqa: BLE001 - each method alone below reports (or raises) its own fault
        shared = None
    record = BatchRecord(parts, shared=shared)
    for name, cam in cams.items():
        scored = score_method(name, cam, parts, targets, metrics, faults, metric_kwargs,
                              None if shared is None else shared[name])
        if scored is not None:
            record.methods[name] = scored
    return record
