"""``evaluate_batch``: every requested CAM metric of a batch in the fewest model passes.

Passes, for a batch ``x`` with targets ``c`` (each only when a requested metric needs it):

1. ``cam.explain(x, c)`` (skipped when ``result=`` is given): the maps, and the logits giving ``Y_c``.
2. On ``x ⊙ map`` (the map broadcast over channels, in the model's input space): ``cam.explain`` when a
   metric needs the maps of that image (``"remap"``: coherency, ADCC; its logits give ``O_c`` too, in one
   pass), else one plain forward under ``no_grad`` for ``O_c`` only (``"masked"``). Complexity and the
   localization metrics need no second pass at all. What each metric needs is declared once, in
   the metric registry (`lightning_cam.metrics.registry`).
3. Insertion / Deletion: the perturbed inputs of all samples and steps, ``batch_size`` (or auto) images per
   forward under ``no_grad``; deletion's last and insertion's first point (the full baseline) are
   shared, the unperturbed end points reuse ``Y_c``.

Everything outside the CAM calls runs under ``torch.no_grad()``; methods without gradients (CAM,
Eigen-CAM, Score-CAM, Fake-CAM) go through the same code. The model's train/eval mode is left as the
caller set it (evaluate in eval mode, as validation does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from lightning_cam.functional.finite import finite_rows
from lightning_cam.functional.pairs import other_classes
from lightning_cam.functional.perturbation import insertion_deletion
from lightning_cam.functional.road import road_scores
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.result import CAMResult
from lightning_cam.metrics.registry import (
    MetricInputs,
    check_metric_names,
    localization_metrics,
    metric_needs,
)
from lightning_cam.targets.task import Task, check_task, target_probability
from lightning_cam.utilities.checks import check_images, check_options
from lightning_cam.utilities.modes import eval_mode
from lightning_cam.utilities.outputs import select_logits
from lightning_cam.utilities.randomize import randomized_twin

__all__ = ["evaluate_batch"]

class _Explainer(Protocol):
    model: nn.Module

    def explain(self, images: Tensor, targets: Tensor | None = None, extra: object = None) -> CAMResult: ...


def _check_result(result: CAMResult, images: Tensor, targets: Tensor | None) -> None:
    b, _, h, w = images.shape
    if tuple(result.maps.shape) != (b, h, w):
        raise ValueError(
            f"`result.maps` has shape {tuple(result.maps.shape)} but the images need ({b}, {h}, {w}); pass the "
            "CAMResult computed for these very images."
        )
    if result.logits.ndim < 2 or result.logits.shape[0] != b or tuple(result.targets.shape) != (b,):
        raise ValueError("`result` does not belong to this batch (logits (B, ...) and targets (B,) expected).")
    if targets is not None and targets.ndim == 1 and targets is not result.targets and not torch.equal(
        targets, result.targets.to(targets.device).long()
    ):  # (the callback passes the result's own targets: no comparison, no host sync)
        raise ValueError("`targets` differ from `result.targets`; pass targets=None to use the result's targets.")


def _logits_of(cam: _Explainer) -> Callable[[Tensor, ExtraInputs], Tensor]:
    """How the evaluator's extra passes read logits: the method's own ``forward_logits`` (its ``output`` rule),
    else [`select_logits`][lightning_cam.utilities.outputs.select_logits] on ``cam.model``'s output."""
    own = getattr(cam, "forward_logits", None)
    if own is not None:
        return lambda x, more: own(x, more)
    return lambda x, more: select_logits(more.call(cam.model, x), model=cam.model)


def _sample_forward(forward: Callable[[Tensor, ExtraInputs], Tensor], extra: ExtraInputs,
                    batch: int) -> Callable[[Tensor, Tensor], Tensor]:
    """``forward(x)`` with each row of ``x`` given the extra inputs of its own sample."""
    return lambda x, samples: forward(x, extra.take(samples, batch))


def _maps(result: CAMResult, images: Tensor) -> Tensor:
    """A second pass's ``(B, H, W)`` float32 maps on the images' device."""
    return result.maps.detach().to(images.device, torch.float32)


def _class_count(task: Task, logits: Tensor) -> int:
    """The classes a random other class is drawn from: the kind's, one per output channel (two for one binary
    logit); an embedding's targets are any concept row, not a list of classes."""
    count = task.num_classes(logits)
    if count > max(2, int(logits.shape[1])):
        raise ValueError(f"random_logit explains a random other class, and task={task.kind!r} has no list of classes "
                         "to draw it from; leave random_logit out for this model.")
    return count


def _other_class_maps(cam: _Explainer, images: Tensor, targets: Tensor, task: Task, logits: Tensor,
                      kw: dict[str, Any], seed: int) -> Tensor:
    """The maps of each pair's random other class (`other_classes`), scored against that class's own region of the
    original output for a kind with regions."""
    other = other_classes(targets, _class_count(task, logits), seed)
    region = {"reference": task.target.reference(logits, other)} if task.target.has_reference else {}
    return _maps(cam.explain(images, other, **kw, **region), images)


def evaluate_batch(
    cam: _Explainer,
    images: Tensor,
    targets: Tensor | int | Sequence[int] | None = None,
    masks: Tensor | None = None,
    metrics: str | Iterable[str] | None = None,
    *,
    boxes: Tensor | None = None,
    result: CAMResult | None = None,
    extra: object = None,
    **options: Any,
) -> dict[str, Tensor]:
    r"""Per-sample CAM metrics of one batch, computed with the fewest model passes.

    With ``Y_c`` the probability of class ``c`` on ``x`` and ``O_c`` on ``x ⊙ map`` under the method's output kind
    (``cam.task``: ``softmax(f(x))_c``, or ``sigmoid(f(x)_c)`` for ``multilabel`` and ``binary``; see
    [`lightning_cam.targets.task`][lightning_cam.targets.task], and `lightning_cam.functional.adcc` for the formulas and
    their
    edge cases):

    | name | per-sample value | better |
    |---|---|---|
    | ``average_drop`` | ``100 · max(0, Y_c − O_c) / Y_c`` | lower |
    | ``increase`` | ``100 · [O_c > Y_c]`` | higher |
    | ``coherency`` | ``(ρ(map(x ⊙ map), map) + 1) / 2`` | higher |
    | ``complexity`` | ``‖map‖₁ / (H·W)`` | lower |
    | ``adcc`` | ``3 / (1/coh + 1/(1 − cplx) + 1/(1 − drop/100))`` | higher |
    | ``insertion`` / ``deletion`` | RISE AUC of ``Y_c`` over the revealed/removed fraction | higher / lower |
    | ``pointing_game`` | 1 if the map's maximum is on the object | higher |
    | ``energy_pointing_game`` | share of the map's mass on the object | higher |
    | ``iou`` | IoU of ``map >= threshold`` with the object mask | higher |

    A sample whose map holds a NaN, or is blank (``result.blank``: a constant map, no explanation), gets
    NaN in every metric (the metric classes skip and count it). Like
    ``explain``, the extra forwards run the model in eval mode and restore every module's flag afterwards.

    Args:
        cam: a CAM method (anything with ``explain(images, targets) -> CAMResult`` and ``.model``).
        images: ``(B, C, H, W)`` inputs in the model's input space (normalised).
        targets: classes to explain, ``(B,)`` or one int; ``None`` = the predicted class. Under
            ``task="multilabel"``, a ``(B, K)`` multi-hot matrix or ``None`` explains (image, class) pairs
            (each positive label, or each predicted positive): the values are then per pair, in the order of
            ``result.samples`` (image by image, classes ascending).
        masks: ``(B, H, W)`` ground-truth object masks (bool, or float > 0.5), or ``(B, K, H, W)`` a mask per
            class (each sample or pair is scored against its target class's mask), for localization.
        metrics: names to compute (see the table and `lightning_cam.metrics.registry`); an unknown name
            raises a ``ValueError`` listing the valid ones, and so does a name listed twice.
        boxes: ``(B, 4)`` ``(x0, y0, x1, y1)`` pixel boxes, or ``(B, N, 5)`` rows ``(x0, y0, x1, y1, class)``
            (padded with class ``-1``), used as masks when ``masks`` is None
            (`class_ground_truth`).
        result: a [`CAMResult`][lightning_cam.methods.result.CAMResult] already computed by ``cam`` for these
            images and targets; saves the first pass.
        extra: further model inputs (tuple, dict or ``ExtraInputs``) passed to every forward, per sample.
        **options: ``steps`` (20), ``baseline`` (``"zeros"``, ``"blur"``, ``"mean"`` or a tensor),
            ``sigma`` (5.0, blur baseline), ``batch_size`` (perturbed images per forward; ``None``: from the
            batch and image size, see `lightning_cam.utilities.chunking`),
            ``threshold`` (0.5, IoU), ``tolerance`` (0 px, pointing game), ``top_k`` (1000, top-k intersection),
            ``road_percentiles`` and ``road_noise`` (the ROAD family), ``randomization``,
            ``randomization_layers``, ``randomization_seed`` and ``random_logit_seed`` (the randomisation checks; see
            `lightning_cam.metrics.randomization`); checked by `check_options`.

    Returns:
        ``{name: (B,) float32 tensor}`` on ``images.device``, in the order requested (``(P,)`` for the ``P``
        pairs of a multi-label call).

    Examples:
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
    names = check_metric_names(metrics)
    opts = check_options(options)
    images = check_images(images, allow_empty=True)
    task: Task = check_task(getattr(cam, "task", None))
    b = images.shape[0]
    targets_t = task.target.check_targets(targets, b, images.device)
    wanted_loc = [n for n in names if n in localization_metrics()]
    if wanted_loc and masks is None and boxes is None:
        raise ValueError(
            f"localization metric(s) {wanted_loc} need ground truth: pass `masks` (B, H, W) or `boxes` (B, 4)."
        )
    if b == 0:  # an empty batch: nothing to explain, empty per-sample values
        return {n: torch.empty(0, device=images.device) for n in names}
    more = ExtraInputs.of(extra)
    forward = _logits_of(cam)
    kw: dict[str, Any] = {"extra": more} if more else {}  # duck-typed explainers need not know `extra`
    if result is None:
        result = cam.explain(images, targets_t, **kw)
    if result.samples is not None:  # multi-label pairs: every per-image input follows its pairs
        pairs = result.samples.to(images.device)
        images = images[pairs]
        masks = None if masks is None else masks[pairs.to(masks.device)]
        boxes = None if boxes is None else boxes[pairs.to(boxes.device)]
        more = more.take(pairs, b) if more else more
        kw = {"extra": more} if more else {}
        result, targets_t = result.paired(None), None
        if images.shape[0] == 0:  # no pair to explain (no positive label, no predicted positive)
            return {n: torch.empty(0, device=images.device) for n in names}
    _check_result(result, images, targets_t)
    tgt = result.targets.to(images.device).long()
    size = (int(images.shape[-2]), int(images.shape[-1]))
    gt = task.target.ground_truth(masks, boxes, tgt, size) if wanted_loc else None  # the target kind's region

    specs, needs = metric_needs(names)
    with torch.no_grad(), eval_mode(cam.model):  # as in `explain`: no BatchNorm updates, no dropout draws
        maps = result.maps.detach().to(images.device, torch.float32)
        bad = ~finite_rows(maps)
        blank = getattr(result, "blank", None)
        if blank is not None:
            bad = bad | blank.to(images.device)  # a blank map is a counted fault, never a score
        clean = maps.nan_to_num(nan=0.0)
        logits = result.logits.detach().to(images.device)
        # what each pair is scored against on every changed image, fixed on the original one (a region)
        reference = task.target.reference(logits, tgt) if task.target.has_reference else None
        defined = None if reference is None else task.target.defined(logits, tgt, reference)
        if defined is not None:  # a pair without a score (an empty region) gets no value, never a perfect one
            bad = bad | ~defined.to(images.device)
        probs = target_probability(logits, tgt, task, reference)
        inputs = MetricInputs(clean, probs, truth=gt, options=opts)
        same = {} if reference is None else {"reference": reference}  # a pair's region on every other pass
        if "masked" in needs:  # one pass on x * map: with the CAM when a metric needs its maps
            masked = images.detach() * clean.unsqueeze(1).to(images.dtype)
            if "remap" in needs:
                second = cam.explain(masked, tgt, **kw, **same)
                masked_logits = second.logits
                inputs.masked_maps = second.maps.detach().to(images.device, torch.float32)
            else:
                masked_logits = forward(masked, more)
            inputs.masked_probs = target_probability(masked_logits.detach().to(images.device), tgt, task, reference)
        if "curves" in needs:
            inputs.curves = functools.cache(functools.partial(
                insertion_deletion, cam.model, images.detach(), clean, tgt, probs,
                {s.name for s in specs if "curves" in s.needs}, steps=opts["steps"], baseline=opts["baseline"],
                sigma=opts["sigma"], batch_size=opts["batch_size"], probability=task.target.probability,
                reference=reference,
                sample_forward=_sample_forward(forward, more, b),
            ))
        if "road" in needs:
            inputs.road = functools.cache(functools.partial(
                road_scores, lambda filled: forward(filled, more), images.detach(), clean, probs,
                opts["road_percentiles"], opts["road_noise"],
                probability=lambda out: target_probability(out.detach().to(images.device), tgt, task, reference),
            ))
        if "randomized" in needs:  # the same method and pairs on a weight-randomised copy (once per weights' state)
            twin = randomized_twin(cam, opts["randomization"], opts["randomization_layers"], opts["randomization_seed"])
            inputs.randomized = functools.cache(lambda: _maps(twin.explain(images, tgt, **kw, **same), images))
        if "other_class" in needs:
            inputs.other_class = functools.cache(lambda: _other_class_maps(cam, images, tgt, task, logits, kw,
                                                                           opts["random_logit_seed"]))
        for spec in specs:
            inputs.values[spec.name] = spec.compute(inputs)
        out = inputs.values

        nan = torch.tensor(float("nan"), device=images.device)
        return {n: torch.where(bad, nan, out[n].to(images.device, torch.float32)) for n in names}

