"""The worst-case gallery ``cam/<method>/worst`` (view ``"worst"``, option ``k``: gallery size, default 8): per
CAM epoch and method, the ``k`` scored samples with the worst score, gathered across ranks.

The score of a sample (its *badness*, higher is worse, in ``[0, 1]``) is the first of these that the batch
has a finite value of (`SCORES`): ``1 − energy pointing game``, ``1 − pointing game``, ``1 − IoU``
(localization, when the batch carries masks or boxes), else ``Average Drop / 100``, else ``1 − ADCC``. With none of
them among the callback's metrics the gallery has nothing to rank by: said once, when the callback is built.
Ties (the pointing game is 0 or 1) are broken by a content key of the input image (the sum of its values), so the
gallery is a function of the set of scored samples: a 2-process run shows what a 1-process run over the same
samples shows.

Cheap by construction: each rank keeps only its current ``k`` worst (the input and the map letterboxed to
``tile × tile`` pixels, ``uint8``), merged on the device batch by batch without a host sync; at epoch end
one ``all_gather`` of one ``uint8`` tensor (every method's slots and their scores packed in it) and rank
zero renders the grid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lightning_cam.callbacks.images import send_image
from lightning_cam.callbacks.scalars import ScalarLog
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.callbacks.views.base import View, ViewContext, register_view
from lightning_cam.methods import CAMResult
from lightning_cam.record import BatchRecord, CAMBatch
from lightning_cam.render import (
    CORRECT_COLOR,
    UNKNOWN_COLOR,
    WRONG_COLOR,
    class_name,
    letterbox,
    overlay_columns,
    to_uint8,
)
from lightning_cam.targets.task import Task, predicted_for
from lightning_cam.utilities.lightning import rank_zero_warn

__all__ = ["SCORES", "WorstCases", "WorstSample", "WorstView", "badness", "content_key", "gallery_image",
           "worst_first"]

#: ``(metric name, caption label, lower_is_worse)`` in order of preference for the gallery's score.
SCORES: tuple[tuple[str, str, bool], ...] = (
    ("energy_pointing_game", "EPG", True),
    ("pointing_game", "PG", True),
    ("iou", "IoU", True),
    ("average_drop", "drop %", False),
    ("adcc", "ADCC", True),
)
_META = 6  # float32 fields per slot: badness, content key, raw value, label, pred, score kind


def badness(values: Mapping[str, Tensor]) -> tuple[Tensor, int] | None:
    """``(badness (B,), kind)``: the per-sample badness from the first metric of `SCORES` in
    ``values`` (``kind`` is its index there), ``-inf`` where the value is not finite; ``None`` if none is.

    Examples:
        >>> badness({"average_drop": torch.tensor([10.0, 90.0]), "pointing_game": torch.tensor([1.0, 0.0])})
        (tensor([0., 1.]), 1)
        >>> badness({"complexity": torch.tensor([0.5])}) is None
        True
    """
    for kind, (key, _, lower_is_worse) in enumerate(SCORES):
        if key in values:
            v = values[key].detach().float().reshape(-1)
            bad = 1.0 - v if lower_is_worse else v / 100.0
            return torch.where(torch.isfinite(bad), bad, torch.full_like(bad, -torch.inf)), kind
    return None


def worst_first(bad: Tensor, content: Tensor) -> Tensor:
    """Indices ordering samples worst first: by ``bad`` descending, ties by ``content`` descending (a total
    order on distinct images, so each rank's ``k`` worst merge into the global ``k`` worst). No host sync.

    Examples:
        >>> worst_first(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([5.0, 1.0, 2.0])).tolist()
        [2, 1, 0]
    """
    order = torch.argsort(content, descending=True, stable=True)
    return order[torch.argsort(bad[order], descending=True, stable=True)]


def content_key(images: Tensor) -> Tensor:
    """``(B,)`` float32: the sum of each image's values, the tie-break of `worst_first`.

    Examples:
        >>> content_key(torch.ones(2, 3, 4, 4)).tolist()
        [48.0, 48.0]
    """
    return images.flatten(1).float().sum(1)


@dataclass
class _Slots:
    """One method's current ``k`` worst on this rank (``meta`` rows: see ``_META``)."""

    meta: Tensor  # (k, _META) float32
    tiles: Tensor  # (k, 3, t, t) uint8
    maps: Tensor  # (k, t, t) uint8
    regions: Tensor  # (k, t, t) uint8, 1 inside the region the map is about (`TargetKind.region`), else 0


class WorstCases:
    """Keep, per method, the ``k`` worst scored samples of this rank; gather and render them at epoch end.

    Examples:
        >>> from lightning_cam.methods import CAMResult
        >>> wc = WorstCases(["gradcam"], k=2, tile_size=16)
        >>> wc.start(torch.device("cpu"), denormalize=lambda x: x.clamp(0, 1))
        >>> images = torch.linspace(0.1, 0.3, 3).view(3, 1, 1, 1).expand(3, 3, 8, 8)  # ties: by content
        >>> result = CAMResult(torch.rand(3, 8, 8), torch.rand(3, 2, 2), torch.zeros(3, 5), torch.zeros(3).long())
        >>> wc.update("gradcam", CAMBatch(images, torch.tensor([0, 1, 2])), result,
        ...           {"pointing_game": torch.tensor([1.0, 0.0, 1.0])})
        >>> (found,) = wc.gather(lambda t: t)
        >>> [round(s.value, 1) for s in found[1]], [s.label for s in found[1]]
        ([0.0, 1.0], [1, 2])
    """

    def __init__(self, methods: Sequence[str], k: int, tile_size: int) -> None:
        self.methods = tuple(methods)
        self.k = int(k)
        self.tile = int(tile_size)
        #: the model's output kind (what "predicted" means in the captions), set by the view at each start
        self.task = Task()
        self.slots: dict[str, _Slots] = {}
        self.denormalize: Callable[[Tensor], Tensor] = lambda x: x
        self.device = torch.device("cpu")

    def _empty(self) -> _Slots:
        k, t, dev = self.k, self.tile, self.device
        meta = torch.zeros(k, _META, device=dev)
        meta[:, 0] = -torch.inf
        return _Slots(meta, torch.zeros(k, 3, t, t, dtype=torch.uint8, device=dev),
                      torch.zeros(k, t, t, dtype=torch.uint8, device=dev), torch.zeros(k, t, t, dtype=torch.uint8,
                                                                                         device=dev))

    def start(self, device: torch.device, denormalize: Callable[[Tensor], Tensor]) -> None:
        """A new epoch: empty slots on ``device``; ``denormalize`` makes model inputs displayable
        (``CAMMixin.cam_denormalize``)."""
        self.device = device
        self.denormalize = denormalize
        with torch.inference_mode(False):
            self.slots = {m: self._empty() for m in self.methods}

    def update(self, method: str, parts: CAMBatch, result: CAMResult, values: Mapping[str, Tensor],
               content: Tensor | None = None) -> None:
        """Merge the scored samples of one batch (``parts``/``result``/``values`` aligned, ``(B, ...)``) into
        ``method``'s slots: only the batch's own ``k`` worst are letterboxed. All on the device. ``content``:
        the images' `content_key` when the caller has it (the methods of a batch share their images)."""
        scored = badness(values)
        if scored is None or method not in self.slots:
            return
        bad, kind = scored
        key = SCORES[kind][0]
        images = parts.images.detach()
        content = content_key(images) if content is None else content
        pick = worst_first(bad, content)[: min(self.k, bad.shape[0])]
        labels = parts.labels if parts.labels is not None else torch.full_like(result.targets, -1)
        preds = predicted_for(result.logits, result.targets, self.task)
        meta = torch.stack([bad, content, values[key].detach().float().reshape(-1), labels.float(),
                            preds.float(), torch.full_like(bad, float(kind))], dim=1)[pick]
        with torch.no_grad():
            tiles = to_uint8(letterbox(self.denormalize(images[pick]).float(), self.tile))
            maps = to_uint8(letterbox(result.maps.detach()[pick][:, None], self.tile)[:, 0])
            region = self.task.target.region(result.logits, result.targets)  # what each map is about, or None
            regions = (maps.new_zeros(maps.shape) if region is None else
                       (letterbox(region[pick][:, None].float(), self.tile)[:, 0] > 0.5).to(torch.uint8))
        old = self.slots[method]
        meta, tiles, maps = torch.cat([old.meta, meta]), torch.cat([old.tiles, tiles]), torch.cat([old.maps, maps])
        regions = torch.cat([old.regions, regions])
        keep = worst_first(meta[:, 0], meta[:, 1])[: self.k]
        self.slots[method] = _Slots(meta[keep], tiles[keep], maps[keep], regions[keep])

    def gather(self, all_gather: Callable[[Tensor], Tensor]) -> list[tuple[str, list[WorstSample]]]:
        """Every rank calls it once (one collective): each method's global ``k`` worst, worst first.

        ``all_gather`` maps a ``(n, ...)`` tensor to the ranks' tensors concatenated along dim 0 (e.g.
        ``lambda t: strategy.all_gather(t).reshape(-1, *t.shape[1:])``)."""
        t = self.tile
        with torch.inference_mode(False):
            if not self.slots:
                self.start(self.device, self.denormalize)
            packed = torch.stack([torch.cat([
                s.meta.contiguous().view(torch.uint8).reshape(self.k, -1),
                s.tiles.reshape(self.k, -1), s.maps.reshape(self.k, -1), s.regions.reshape(self.k, -1)], dim=1)
                for s in self.slots.values()])
            everything = all_gather(packed.reshape(len(self.slots) * self.k, -1)).cpu()
        everything = everything.reshape(-1, len(self.slots), self.k, packed.shape[-1]).transpose(0, 1)
        out: list[tuple[str, list[WorstSample]]] = []
        nmeta = _META * 4
        for name, rows in zip(self.slots, everything):
            rows = rows.reshape(-1, packed.shape[-1])
            meta = rows[:, :nmeta].contiguous().view(torch.float32).reshape(-1, _META)
            order = worst_first(meta[:, 0], meta[:, 1])[: self.k]
            samples = []
            for i in order.tolist():
                if meta[i, 0] == -torch.inf:
                    break
                tile = rows[i, nmeta:nmeta + 3 * t * t].reshape(3, t, t).float() / 255.0
                cam = rows[i, nmeta + 3 * t * t:nmeta + 4 * t * t].reshape(t, t).float() / 255.0
                region = rows[i, nmeta + 4 * t * t:].reshape(t, t).bool()
                m = meta[i].tolist()
                samples.append(WorstSample(SCORES[int(m[5])][1], m[2], int(m[3]), int(m[4]), tile, cam, region))
            out.append((name, samples))
        return out


@dataclass
class WorstSample:
    """One sample of the gallery: its score (``label`` names the metric), classes (``label`` ``-1``: none),
    the displayable input ``(3, t, t)`` and the map ``(t, t)``, both in ``[0, 1]``, and the region the map is about
    ``(t, t)`` bool (outlined; ``None`` or all ``False``: none)."""

    score_name: str
    value: float
    label: int
    pred: int
    image: Tensor
    cam: Tensor
    region: Tensor | None = None


def gallery_image(samples: Sequence[WorstSample], class_names: Sequence[str] | None, colormap: str,
                  alpha: float) -> Tensor:
    """The grid of a method's worst cases, worst first: input on top, overlay framed green (right) or red
    (wrong) below, and a caption with the score and the classes. ``(3, H, W)`` float in ``[0, 1]``.

    Examples:
        >>> s = WorstSample("EPG", 0.125, 1, 0, torch.rand(3, 32, 32), torch.rand(32, 32))
        >>> gallery_image([s, s], ["circle", "square"], "jet", 0.5).shape
        torch.Size([3, 92, 70])
    """

    def name(i: int) -> str:
        return class_name(class_names, i)

    colors = [UNKNOWN_COLOR if s.label == -1 else CORRECT_COLOR if s.label == s.pred else WRONG_COLOR for s in samples]
    texts = [f"{s.score_name} {s.value:.3g}\npred: {name(s.pred)}" + ("" if s.label == -1 else f" / {name(s.label)}")
             for s in samples]
    regions = [s.region for s in samples]
    outlines = (torch.stack([r if r is not None else torch.zeros_like(s.cam, dtype=torch.bool)
                             for r, s in zip(regions, samples)])
                if any(r is not None and bool(r.any()) for r in regions) else None)
    return overlay_columns(torch.stack([s.image for s in samples]), torch.stack([s.cam for s in samples]), colors,
                           texts, colormap, alpha, outlines=outlines)


@register_view
class WorstView(View):
    """View ``"worst"``: the gallery ``cam/<method>/worst`` of the ``k`` worst scored samples per CAM run.

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> WorstView(ViewContext(("gradcam",), ("adcc",), 32, "jet", 0.5, Faults("warn")), k=4).cases.k
        4
    """

    name = "worst"
    default = True

    def __init__(self, ctx: ViewContext, k: int = 8) -> None:
        super().__init__(ctx)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"view 'worst': `k` (samples in the worst-case gallery) must be an int >= 1, got {k!r}; "
                             "leave 'worst' out of `views` to turn the gallery off.")
        self.cases = WorstCases(ctx.methods, k, ctx.tile_size)
        if not {key for key, _, _ in SCORES} & set(ctx.metrics):
            rank_zero_warn(f"CAMCallback: the worst-case gallery ranks the samples by one of {[s[0] for s in SCORES]}, "
                           f"and none is among metrics={list(ctx.metrics)}: it will show nothing. Add average_drop "
                           "(or a localization metric) to `metrics`, or leave 'worst' out of `views`.")

    def start(self, trainer: Any, pl_module: Any, denormalize: Callable[[Tensor], Tensor]) -> None:
        self.cases.task = pl_module.cam_target_task()
        self.cases.start(pl_module.device, denormalize)

    def observe(self, record: BatchRecord) -> None:
        keys: dict[int, Tensor] = {}  # per image batch (alive for the call): the methods of a batch share it
        for method, scored in record.methods.items():
            images = scored.parts.images
            if id(images) not in keys:
                keys[id(images)] = content_key(images.detach())
            self.cases.update(method, scored.parts, scored.result, scored.values, keys[id(images)])

    def epoch_end(self, trainer: Any, log: ScalarLog, step: int, sinks: Sequence[ImageSink],
                  class_names: Sequence[str] | None, prefix: str) -> None:
        """Every rank: the one gather; rank zero renders each method's gallery."""
        with torch.inference_mode(False):
            gathered = self.cases.gather(lambda t: trainer.strategy.all_gather(t).reshape(-1, *t.shape[1:]))
        if not trainer.is_global_zero:
            return
        for name, samples in gathered:
            if not samples:
                continue
            try:
                image = gallery_image(samples, class_names, self.ctx.colormap, self.ctx.alpha)
            except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
                self.ctx.faults.record("error", f"{name} worst-case gallery raised {type(err).__name__}: {err}", err)
                continue
            send_image(self.ctx.faults, sinks, f"{prefix}/{name}/worst", image, step)
