"""``evaluate_batch``: every requested CAM metric of a batch in the fewest model passes.

Passes, for a batch ``x`` with targets ``c`` (each only when a requested metric needs it):

1. ``cam.explain(x, c)`` (skipped when ``result=`` is given): the maps, and the logits giving ``Y_c``.
2. On ``x ⊙ map`` (the map broadcast over channels, in the model's input space): ``cam.explain`` when
   coherency/ADCC is requested (its logits give ``O_c`` and its maps the coherency map, in one pass), else
   one plain forward under ``no_grad`` for ``O_c`` only. Complexity and the localization metrics need
   no second pass at all.
3. Insertion / Deletion: the perturbed inputs of all samples and steps, ``batch_size`` images per
   forward under ``no_grad``; deletion's last and insertion's first point (the full baseline) are
   shared, the unperturbed end points reuse ``Y_c``.

Everything outside the CAM calls runs under ``torch.no_grad()``; methods without gradients (CAM,
Eigen-CAM, Score-CAM, Fake-CAM) go through the same code. The model's train/eval mode is left as the
caller set it (evaluate in eval mode, as validation does).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from lightning_cam.functional.localization import boxes_to_masks, energy_pointing_game, iou, pointing_game
from lightning_cam.functional.metrics import (
    adcc,
    average_drop,
    coherency,
    complexity,
    increase_in_confidence,
    target_probability,
)
from lightning_cam.functional.perturbation import (
    BASELINES,
    curve_auc,
    make_baseline,
    perturb,
    perturbation_counts,
    rank_positions,
)
from lightning_cam.methods.base import ExtraInputs, eval_mode
from lightning_cam.methods.result import CAMResult

__all__ = ["ADCC_METRICS", "DEFAULT_OPTIONS", "METRIC_NAMES", "evaluate_batch"]

#: every metric name ``evaluate_batch`` understands (the keys of ``lightning_cam.metrics.METRICS``).
METRIC_NAMES = (
    "average_drop",
    "increase",
    "coherency",
    "complexity",
    "adcc",
    "insertion",
    "deletion",
    "pointing_game",
    "energy_pointing_game",
    "iou",
)
#: the default selection: ADCC and its components.
ADCC_METRICS = ("average_drop", "increase", "coherency", "complexity", "adcc")
_LOCALIZATION = frozenset({"pointing_game", "energy_pointing_game", "iou"})
_NEEDS_MASKED_LOGITS = frozenset({"average_drop", "increase", "adcc"})
_NEEDS_MASKED_MAPS = frozenset({"coherency", "adcc"})

#: keyword options of ``evaluate_batch`` and their defaults.
DEFAULT_OPTIONS: dict[str, Any] = {
    "steps": 20,  # insertion/deletion: number of perturbation steps (>= 1)
    "baseline": "zeros",  # insertion/deletion: "zeros", "blur", "mean" or a tensor
    "sigma": 5.0,  # insertion/deletion: blur baseline's Gaussian sigma in pixels
    "batch_size": 32,  # insertion/deletion: perturbed images per forward (memory cap)
    "threshold": 0.5,  # iou: map threshold in (0, 1)
    "tolerance": 0,  # pointing_game: pixels by which the object is grown
}


class _Explainer(Protocol):
    model: nn.Module

    def explain(self, images: Tensor, targets: Tensor | None = None, **kwargs: Any) -> CAMResult: ...


def _select_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid names are {list(METRIC_NAMES)}.")
    if not names:
        raise ValueError(f"no metric requested; choose from {list(METRIC_NAMES)}.")
    return tuple(dict.fromkeys(names))


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for evaluate_batch; valid options are {sorted(DEFAULT_OPTIONS)}.")
    opts = {**DEFAULT_OPTIONS, **options}
    steps = opts["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be an integer >= 1, got {steps!r}.")
    batch_size = opts["batch_size"]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")
    if not isinstance(opts["threshold"], (int, float)) or not 0.0 < float(opts["threshold"]) < 1.0:
        raise ValueError(f"`threshold` must lie in (0, 1) (maps are in [0, 1]), got {opts['threshold']!r}.")
    tolerance = opts["tolerance"]
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"`tolerance` must be an integer >= 0 (pixels), got {tolerance!r}.")
    baseline = opts["baseline"]
    if not isinstance(baseline, Tensor) and baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; use one of {list(BASELINES)} or a tensor.")
    if not float(opts["sigma"]) > 0:
        raise ValueError(f"`sigma` must be > 0 pixels, got {opts['sigma']!r}.")
    return opts


def _check_targets(targets: Tensor | int | Sequence[int] | None, batch: int, device: torch.device) -> Tensor | None:
    if targets is None:
        return None
    t = torch.as_tensor(targets, device=device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,) or t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(
            f"`targets` must be an integer class index or a (B,) = ({batch},) integer tensor, got "
            f"{tuple(t.shape)} {t.dtype}."
        )
    return t.long()


def _ground_truth(masks: Tensor | None, boxes: Tensor | None, images: Tensor) -> Tensor | None:
    b, _, h, w = images.shape
    if masks is not None:
        m = masks.to(images.device)
        if m.ndim == 4 and m.shape[1] == 1:
            m = m[:, 0]
        if m.shape != (b, h, w):
            raise ValueError(
                f"`masks` must be (B, H, W) = ({b}, {h}, {w}) like the images, got {tuple(masks.shape)}."
            )
        return m
    if boxes is not None:
        if boxes.shape != (b, 4):
            raise ValueError(f"`boxes` must be (B, 4) = ({b}, 4) as (x0, y0, x1, y1) pixels, got {tuple(boxes.shape)}.")
        return boxes_to_masks(boxes.to(images.device), h, w)
    return None


def _check_result(result: CAMResult, images: Tensor, targets: Tensor | None) -> None:
    b, _, h, w = images.shape
    if tuple(result.maps.shape) != (b, h, w):
        raise ValueError(
            f"`result.maps` has shape {tuple(result.maps.shape)} but the images need ({b}, {h}, {w}); pass the "
            "CAMResult computed for these very images."
        )
    if result.logits.ndim != 2 or result.logits.shape[0] != b or tuple(result.targets.shape) != (b,):
        raise ValueError("`result` does not belong to this batch (logits (B, K) and targets (B,) expected).")
    if targets is not None and not torch.equal(targets, result.targets.to(targets.device).long()):
        raise ValueError("`targets` differ from `result.targets`; pass targets=None to use the result's targets.")


def _insertion_deletion(
    model: nn.Module,
    images: Tensor,
    maps: Tensor,
    targets: Tensor,
    probs: Tensor,
    want: set[str],
    opts: dict[str, Any],
    extra: ExtraInputs | None = None,
) -> dict[str, Tensor]:
    b, _, h, w = images.shape
    extra = extra or ExtraInputs()
    n = h * w
    counts = perturbation_counts(n, opts["steps"])
    t = len(counts)
    fractions = torch.tensor(counts, device=images.device, dtype=torch.float32) / n
    # Per-sample job template: (pixel count, insertion?, deletion column, insertion column); -1 = unused.
    template: list[tuple[int, bool, int, int]] = [(n, False, t - 1, 0)]  # the full baseline, shared
    for i in range(1, t - 1):
        if "deletion" in want:
            template.append((counts[i], False, i, -1))
        if "insertion" in want:
            template.append((counts[i], True, -1, i))
    tj = len(template)
    job_counts = torch.tensor([j[0] for j in template], device=images.device).repeat(b)
    job_insert = torch.tensor([j[1] for j in template], device=images.device).repeat(b)
    job_samples = torch.arange(b, device=images.device).repeat_interleave(tj)

    baseline = make_baseline(images, opts["baseline"], sigma=float(opts["sigma"]))
    ranks = rank_positions(maps)
    job_probs = torch.empty(b * tj, device=images.device, dtype=torch.float32)
    for start in range(0, b * tj, opts["batch_size"]):
        sl = slice(start, start + opts["batch_size"])
        batch = perturb(images, baseline, ranks, job_samples[sl], job_counts[sl], job_insert[sl])
        more = extra.take(job_samples[sl], b)  # each perturbed image gets its own sample's extra inputs
        job_probs[sl] = target_probability(model(batch, *more.args, **more.kwargs), targets[job_samples[sl]])
    job_probs = job_probs.view(b, tj)

    out: dict[str, Tensor] = {}
    for name, col, end in (("deletion", 2, 0), ("insertion", 3, t - 1)):
        if name not in want:
            continue
        curve = torch.empty(b, t, device=images.device, dtype=torch.float32)
        curve[:, end] = probs  # the unperturbed image
        jobs = [k for k, job in enumerate(template) if job[col] >= 0]
        curve[:, [template[k][col] for k in jobs]] = job_probs[:, jobs]
        out[name] = curve_auc(curve, fractions)
    return out


def evaluate_batch(
    cam: _Explainer,
    images: Tensor,
    targets: Tensor | int | Sequence[int] | None = None,
    masks: Tensor | None = None,
    metrics: str | Iterable[str] = ADCC_METRICS,
    *,
    boxes: Tensor | None = None,
    result: CAMResult | None = None,
    extra: object = None,
    **options: Any,
) -> dict[str, Tensor]:
    r"""Per-sample CAM metrics of one batch, computed with the fewest model passes.

    With ``Y_c = softmax(f(x))_c`` and ``O_c = softmax(f(x ⊙ map))_c`` (see
    :mod:`lightning_cam.functional.metrics` for the formulas and their edge cases):

    ============================  =====================================================  ========
    name                          per-sample value                                       better
    ============================  =====================================================  ========
    ``average_drop``              ``100 · max(0, Y_c − O_c) / Y_c``                      lower
    ``increase``                  ``100 · [O_c > Y_c]``                                  higher
    ``coherency``                 ``(ρ(map(x ⊙ map), map) + 1) / 2``                     higher
    ``complexity``                ``‖map‖₁ / (H·W)``                                     lower
    ``adcc``                      ``3 / (1/coh + 1/(1 − cplx) + 1/(1 − drop/100))``      higher
    ``insertion`` / ``deletion``  RISE AUC of ``Y_c`` over the revealed/removed fraction  higher / lower
    ``pointing_game``             1 if the map's maximum is on the object                higher
    ``energy_pointing_game``      share of the map's mass on the object                  higher
    ``iou``                       IoU of ``map >= threshold`` with the object mask       higher
    ============================  =====================================================  ========

    A sample whose map holds a NaN, or is blank (``result.blank``: a constant map, no explanation), gets
    NaN in every metric (the metric classes skip and count it). Like
    ``explain``, the extra forwards run the model in eval mode and restore every module's flag afterwards.

    Args:
        cam: a CAM method (anything with ``explain(images, targets) -> CAMResult`` and ``.model``).
        images: ``(B, C, H, W)`` inputs in the model's input space (normalised).
        targets: classes to explain, ``(B,)`` or one int; ``None`` = the predicted class.
        masks: ``(B, H, W)`` ground-truth object masks (bool, or float > 0.5), for localization.
        metrics: names to compute (see the table); unknown names raise a ``ValueError`` listing the valid ones.
        boxes: ``(B, 4)`` ``(x0, y0, x1, y1)`` pixel boxes, used as masks when ``masks`` is None.
        result: a :class:`~lightning_cam.methods.result.CAMResult` already computed by ``cam`` for these
            images and targets; saves the first pass.
        extra: further model inputs (tuple, dict or ``ExtraInputs``) passed to every forward, per sample.
        **options: ``steps`` (20), ``baseline`` (``"zeros"``, ``"blur"``, ``"mean"`` or a tensor),
            ``sigma`` (5.0, blur baseline), ``batch_size`` (32 perturbed images per forward),
            ``threshold`` (0.5, IoU), ``tolerance`` (0 px, pointing game).

    Returns:
        ``{name: (B,) float32 tensor}`` on ``images.device``, in the order requested.

    Example:
        >>> from lightning_cam.methods.result import CAMResult
        >>> class Ones:  # a stand-in CAM method whose map is all ones
        ...     model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        ...     def explain(self, images, targets=None):
        ...         logits = self.model(images)
        ...         t = logits.argmax(1) if targets is None else targets
        ...         ones = torch.ones(images.shape[0], *images.shape[2:])
        ...         return CAMResult(ones, ones, logits.detach(), t)
        >>> values = evaluate_batch(Ones(), torch.randn(2, 3, 2, 2))
        >>> values["average_drop"], values["complexity"], values["adcc"]
        (tensor([0., 0.]), tensor([1., 1.]), tensor([0., 0.]))
    """
    names = _select_metrics(metrics)
    opts = _check_options(options)
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(
            f"`images` must be a (B, C, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}."
        )
    b = images.shape[0]
    targets_t = _check_targets(targets, b, images.device)
    wanted_loc = [n for n in names if n in _LOCALIZATION]
    gt = _ground_truth(masks, boxes, images) if wanted_loc else None  # unused ground truth is not validated
    if wanted_loc and gt is None:
        raise ValueError(
            f"localization metric(s) {wanted_loc} need ground truth: pass `masks` (B, H, W) or `boxes` (B, 4)."
        )
    if b == 0:  # an empty batch: nothing to explain, empty per-sample values
        return {n: torch.empty(0, device=images.device) for n in names}
    want = set(names)
    if "adcc" in want:
        want |= {"average_drop", "coherency", "complexity"}

    more = ExtraInputs.of(extra)
    kw: dict[str, Any] = {"extra": more} if more else {}  # duck-typed explainers need not know `extra`
    if result is None:
        result = cam.explain(images, targets_t, **kw)
    else:
        _check_result(result, images, targets_t)
    tgt = result.targets.to(images.device).long()

    out: dict[str, Tensor] = {}
    with torch.no_grad(), eval_mode(cam.model):  # as in `explain`: no BatchNorm updates, no dropout draws
        maps = result.maps.detach().to(images.device, torch.float32)
        bad = torch.isnan(maps).flatten(1).any(dim=1)
        if getattr(result, "blank", None) is not None:
            bad = bad | result.blank.to(images.device)  # a blank map is a counted fault, never a score
        clean = maps.nan_to_num(nan=0.0)
        probs = target_probability(result.logits.detach().to(images.device), tgt)

        if want & (_NEEDS_MASKED_LOGITS | _NEEDS_MASKED_MAPS):
            masked = images.detach() * clean.unsqueeze(1).to(images.dtype)
            if want & _NEEDS_MASKED_MAPS:
                second = cam.explain(masked, tgt, **kw)
                masked_logits, masked_maps = second.logits, second.maps.detach().to(images.device, torch.float32)
                out["coherency"] = coherency(clean, masked_maps)
            else:
                masked_logits = cam.model(masked, *more.args, **more.kwargs)
            masked_probs = target_probability(masked_logits.detach().to(images.device), tgt)
            out["average_drop"] = average_drop(probs, masked_probs)
            out["increase"] = increase_in_confidence(probs, masked_probs)
        if want & {"complexity"}:
            out["complexity"] = complexity(clean)
        if "adcc" in want:
            out["adcc"] = adcc(out["coherency"], out["complexity"], out["average_drop"])
        if want & {"insertion", "deletion"}:
            out.update(_insertion_deletion(cam.model, images.detach(), clean, tgt, probs, want, opts, more))
        if gt is not None:
            if "pointing_game" in want:
                out["pointing_game"] = pointing_game(clean, gt, tolerance=opts["tolerance"])
            if "energy_pointing_game" in want:
                out["energy_pointing_game"] = energy_pointing_game(clean, gt)
            if "iou" in want:
                out["iou"] = iou(clean, gt, threshold=float(opts["threshold"]))

        nan = torch.tensor(float("nan"), device=images.device)
        return {n: torch.where(bad, nan, out[n].to(images.device, torch.float32)) for n in names}
