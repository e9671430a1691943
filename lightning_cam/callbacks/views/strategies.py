"""The strategies of each class, found in the maps themselves (view ``"strategies"``, on by default): a Clever
Hans detector that needs no masks or boxes.

Every CAM run, each method's maps of the scored samples (already computed for the metrics: no extra forward)
are kept downscaled to ``size x size`` with 32-pixel thumbnails of their image (as the model sees it: the sameness
below reads it, unclamped; and as shown: the module's ``cam_display`` of that thumbnail, one downscale per batch
instead of a display of the full image); at the run's end they are
gathered from every rank (one collective), and per class (the true class; the explained one without labels;
a multi-label pair's own class) clustered by spectral relevance analysis
([`spectral_clusters`][lightning_cam.functional.spray.spectral_clusters]). Each cluster is a *strategy*, described by

* its share of the class's maps;
* its *focus* ([`focus`][lightning_cam.functional.spray.focus]): 1 when every map looks at the same place;
* its *sameness* ([`sameness`][lightning_cam.functional.spray.sameness]): 1 when the pixels at the peak of its mean
  map are the same in every member image (a watermark, a tag, a marker), near 0 when they vary like any
  image's pixels there (an object: its colour, size and place change from image to image).

A strategy is *fixed-place* when it holds at least ``min_share`` of the class and ``min_members`` maps (10), with
a focus of at least
``focus`` (0.8) and a sameness of at least ``same`` (0.4): the model looks at one place, and what it sees there
is the same thing in every image, whatever the image shows. Focus alone does not tell a shortcut: the maps of
objects at similar places cluster together with a focus of 0.8-0.9 on clean data, but their pixels vary
(sameness at most 0.3 on the clean Shapes runs, 0.6-1.0 on the runs with a cue: README, Catching a shortcut
without masks).

Logged, per method and class (keys ``cam_strategies/<method>/<stat>/<class>``, a section of their own, to the
loggers only: not in ``callback_metrics`` nor Lightning's results table):
``count`` (the number of strategies, the eigengap's choice), ``fixed`` (the share of the class's maps in
fixed-place strategies), ``focus`` and ``same`` (the largest among the strategies of at least ``min_share``); and
``cam/<method>/strategy/alarm``, the number of classes with a fixed-place strategy (logged only when some class
had maps enough to analyse: a run without maps logs no alarm count, never a reassuring 0). When a class gains one, a
warning names the class, its share and where to look: the image ``cam/<method>/strategies`` (per class, each
strategy's mean map over the mean of its images with its share, focus and sameness, framed red when fixed-place,
then a few of its members). ``views={"strategies": {"alarm": False}}`` keeps the scalars and the image but not
the warning.

The canonical order of the gathered maps (by class, then by the maps' own values) makes the clusters those of
one process over the same samples, whatever the ranks' shares. Classes with fewer than ``min_maps`` maps are
not clustered (too few to say).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cam.callbacks.accumulate import rank_quota
from lightning_cam.callbacks.distributed import all_gather_rows
from lightning_cam.callbacks.images import send_image
from lightning_cam.callbacks.scalars import ScalarLog
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.callbacks.views.base import Chart, View, ViewContext, register_view
from lightning_cam.callbacks.views.per_class import class_names_of, class_tag, scored_class
from lightning_cam.functional.finite import finite_rows
from lightning_cam.functional.spray import focus, sameness, spectral_clusters
from lightning_cam.methods import CAMResult
from lightning_cam.record import BatchRecord, CAMBatch
from lightning_cam.render import (
    BACKGROUND,
    PADDING,
    UNKNOWN_COLOR,
    WRONG_COLOR,
    as_rgb,
    class_name,
    fit_longer_side,
    letterbox,
    overlay_columns,
    text_tiles,
    text_width,
    to_uint8,
)
from lightning_cam.utilities.lightning import rank_zero_warn
from lightning_cam.utilities.stopwatch import timed

__all__ = ["ClassStrategies", "Strategy", "StrategiesView", "strategies_image", "strategies_legend", "strategy_tag"]

#: the per-class statistics, in the order of the module docstring
STATS = ("count", "fixed", "focus", "same")
_THUMB = 32  # thumbnail side kept per scored map (for the member overlays)
_LEGEND_PT = 7.0  # the legend's font size, points


def strategy_tag(method: str, stat: str, class_name: str | None = None) -> str:
    """The logged key of a statistic: per class in a section of their own (``cam_strategies/``, so that the
    main section opens with the metric curves), the method's alarm count with its metrics.

    Examples:
        >>> strategy_tag("gradcam", "fixed", "horse"), strategy_tag("gradcam", "alarm")
        ('cam_strategies/gradcam/fixed/horse', 'cam/gradcam/strategy/alarm')
    """
    if class_name is None:
        return f"cam/{method}/strategy/{stat}"
    return f"cam_strategies/{method}/{stat}/{class_tag(class_name)}"


@dataclass
class Strategy:
    """One cluster of a class's maps: its members (row indices), share of the class, focus and mean map; whether
    it is large enough to count (``counted``: at least ``min_share``) and fixed-place (counted, and focused)."""

    members: Tensor
    share: float
    focus: float
    same: float
    mean: Tensor
    counted: bool = True
    fixed: bool = False


@dataclass
class ClassStrategies:
    """A class's strategies, largest first, and its statistics."""

    cls: int
    size: int
    strategies: list[Strategy] = field(default_factory=list)

    def stats(self) -> dict[str, float]:
        """``{"count", "fixed", "focus"}`` (see the module docstring)."""
        counted = [s for s in self.strategies if s.counted]
        return {"count": float(len(self.strategies)),
                "fixed": float(sum(s.share for s in self.strategies if s.fixed)),
                "focus": float(max((s.focus for s in counted), default=0.0)),
                "same": float(max((s.same for s in counted), default=0.0))}


def analyse(maps: Tensor, classes: Tensor, images: Tensor, min_maps: int, neighbors: int, max_clusters: int,
            min_share: float, fixed_focus: float, fixed_same: float, min_members: int = 10) -> list[ClassStrategies]:
    """Per class with at least ``min_maps`` maps, its strategies (the module docstring's rule); ``maps``
    ``(n, s, s)`` float in ``[0, 1]`` in canonical order, ``classes`` ``(n,)``, ``images`` ``(n, 3, t, t)``
    float thumbnails of the model's inputs (every class's: the reference of
    [`sameness`][lightning_cam.callbacks.views.strategies.sameness])."""
    out = []
    for cls in sorted(set(classes.tolist())):
        rows = (classes == cls).nonzero().squeeze(1)
        if rows.numel() < min_maps:
            continue
        mine = maps[rows]
        labels, count, _ = spectral_clusters(mine, neighbors=neighbors, max_clusters=max_clusters)
        found = ClassStrategies(int(cls), int(rows.numel()))
        for j in range(count):
            members = rows[labels == j]
            if members.numel() == 0:
                continue
            share = members.numel() / rows.numel()
            mean = maps[members].mean(dim=0)
            f, same = float(focus(maps[members])), float(sameness(images[members], images, mean))
            counted = share >= min_share
            fixed = counted and members.numel() >= min_members and f >= fixed_focus and same >= fixed_same
            found.strategies.append(Strategy(members, share, f, same, mean, counted, fixed))
        found.strategies.sort(key=lambda s: -s.share)
        out.append(found)
    return out


@register_view
class StrategiesView(View):
    """View ``"strategies"``: per class, the strategies found by clustering its maps (see the module docstring).

    Options: ``size`` (side of the downscaled maps, 16), ``neighbors`` (10), ``max_clusters`` (6),
    ``min_maps`` (a class's fewest maps to cluster, 12), ``min_share`` (a strategy's smallest share to count,
    0.1), ``focus`` (a fixed-place strategy's smallest focus, 0.8), ``same`` (its smallest sameness, 0.4), ``alarm``
    (warn when a class gains one), ``max_maps`` (the most maps kept per method and run over all ranks, the
    first ones scored: 2048, about 19 MB per method), ``min_members`` (a fixed-place strategy's fewest maps, 10:
    the sameness of a handful of images is noise).

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> view = StrategiesView(ViewContext(("gradcam",), ("adcc",), 32, "jet", 0.5, Faults("warn")))
        >>> view.keys(["cat"], with_probe=False)[:3]
        ['cam/gradcam/strategy/alarm', 'cam_strategies/gradcam/count/cat', 'cam_strategies/gradcam/fixed/cat']
    """

    name = "strategies"
    default = True

    def __init__(self, ctx: ViewContext, size: int = 16, neighbors: int = 10, max_clusters: int = 6,
                 min_maps: int = 12, min_share: float = 0.1, focus: float = 0.8, same: float = 0.4,
                 alarm: bool = True, max_maps: int = 2048, min_members: int = 10) -> None:
        super().__init__(ctx)
        for option, value, low in (("size", size, 2), ("neighbors", neighbors, 1), ("max_clusters", max_clusters, 1),
                                   ("min_maps", min_maps, 2), ("max_maps", max_maps, 2),
                                   ("min_members", min_members, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"view 'strategies': `{option}` must be an int >= {low}, got {value!r}.")
        for option, fraction in (("min_share", min_share), ("focus", focus), ("same", same)):
            if not 0.0 < float(fraction) <= 1.0:
                raise ValueError(f"view 'strategies': `{option}` must lie in (0, 1], got {fraction!r}.")
        self.size, self.neighbors, self.max_clusters, self.min_maps = size, neighbors, max_clusters, min_maps
        self.min_share, self.focus, self.same, self.alarm = float(min_share), float(focus), float(same), bool(alarm)
        self.max_maps, self.min_members = max_maps, min_members
        self.rows: dict[str, list[Tensor]] = {}
        self.room: dict[str, int] = {}  # maps this rank may still keep per method (its share of ``max_maps``)
        self.denormalize: Callable[[Tensor], Tensor] = lambda x: x
        self.class_names: list[str] | None = None
        #: the classes with a fixed-place strategy at the previous run, per method (a class *gaining* one warns)
        self.alarmed: dict[str, set[int]] = {}

    def keys(self, class_names: Sequence[str] | None, with_probe: bool) -> list[str]:
        out = []
        for m in self.ctx.methods:
            out.append(strategy_tag(m, "alarm"))
            out += [strategy_tag(m, stat, c) for c in class_names or () for stat in STATS]
        return out

    @classmethod
    def chart(cls, key: str) -> Chart | None:
        """On the summary charts: each method's fixed-place share per class and the classes alarmed (the other
        statistics stay in the logger: every chart costs its drawing at the end of ``fit``)."""
        parts = key.split("/")
        if parts[0] == "cam_strategies" and len(parts) == 4 and parts[2] == "fixed":
            return ("CAM strategies", f"{parts[1]}: fixed-place share", parts[3])
        if parts[0] == "cam" and parts[2:] == ["strategy", "alarm"]:
            return ("CAM strategies", "classes with a fixed-place strategy", parts[1])
        return None

    def start(self, trainer: Any, pl_module: Any, denormalize: Callable[[Tensor], Tensor]) -> None:
        self.rows = {m: [] for m in self.ctx.methods}
        quota = rank_quota(self.max_maps, getattr(trainer, "world_size", 1), getattr(trainer, "global_rank", 0))
        self.room = dict.fromkeys(self.ctx.methods, quota)
        self.denormalize = denormalize
        self.class_names = class_names_of(trainer, pl_module)

    def observe(self, record: BatchRecord) -> None:
        thumbnails: dict[int, tuple[Tensor, Tensor]] = {}  # per image batch: the methods of a batch share it
        for method, scored in record.methods.items():
            self._add(method, scored.parts, scored.result, thumbnails)

    def _add(self, method: str, parts: CAMBatch, result: CAMResult, thumbnails: dict[int, tuple[Tensor, Tensor]]
             ) -> None:
        n = min(self.room.get(method, 0), int(result.maps.shape[0]))  # shapes only: no host sync
        if n <= 0:
            return
        self.room[method] -= n
        maps = result.maps.detach()[:n].float()
        ok = finite_rows(maps)  # left-out samples come as NaN: not this view's
        small = F.adaptive_avg_pool2d(maps.nan_to_num(0.0)[:, None], self.size)[:, 0]
        classes = scored_class(parts, result)[:n]
        key = id(parts.images)  # alive for the whole `observe` call: the id names this batch's images
        if key not in thumbnails:
            thumbnails[key] = self._thumbnails(parts.images)
        thumbs, content = (t[:n] for t in thumbnails[key])
        packed = torch.cat([ok.to(torch.uint8)[:, None], classes[:, None].contiguous().view(torch.uint8),
                            to_uint8(small).flatten(1), thumbs, content], dim=1)
        self.rows[method].append(packed)

    def _thumbnails(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, 3 t t)`` uint8 rows of what each image shows, and ``(B, 2 * 3 t t)`` uint8 rows holding the
        float16 thumbnail of what the model sees (unclamped: a display clamps what it cannot show), for the
        sameness; one downscale of the inputs, then the display of the thumbnail (not of the image)."""
        with torch.no_grad():
            fitted = fit_longer_side(images.detach().float(), _THUMB)
            thumbs = to_uint8(letterbox(self.denormalize(fitted).float(), _THUMB)).flatten(1)
            content = letterbox(as_rgb(fitted), _THUMB).to(torch.float16).flatten(1).contiguous()
        return thumbs, content.view(torch.uint8)

    def _gather(self, trainer: Any, method: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Every rank: all ranks' rows (one collective for the counts, one for the rows), kept ones only, in the
        canonical order, on the CPU: ``maps`` ``(n, s, s)`` float, ``classes`` ``(n,)``, ``thumbs`` ``(n, 3, t, t)``
        uint8 (displayed) and ``content`` ``(n, 3, t, t)`` float (the model's inputs, unclamped)."""
        pixels = 3 * _THUMB * _THUMB
        width = 1 + 8 + self.size * self.size + pixels + 2 * pixels
        device = trainer.strategy.root_device
        local = torch.cat(self.rows[method]) if self.rows[method] else torch.zeros(0, width, dtype=torch.uint8)
        rows = all_gather_rows(trainer, local.to(device))
        rows = rows[rows[:, 0] == 1]
        classes = rows[:, 1:9].reshape(-1).clone().view(torch.int64)  # (a 1-D copy: viewable as int64)
        maps_u8 = rows[:, 9 : 9 + self.size * self.size]
        start = 9 + self.size * self.size
        thumbs = rows[:, start : start + pixels].reshape(-1, 3, _THUMB, _THUMB)
        content = rows[:, start + pixels :].reshape(-1).clone().view(torch.float16).reshape(-1, 3, _THUMB, _THUMB)
        # canonical order: by class, then by a fixed projection of the map (identical maps are interchangeable)
        probe = torch.linspace(1.0, 2.0, maps_u8.shape[1], dtype=torch.float64).sin()
        key = maps_u8.double() @ probe
        order = torch.argsort(key, stable=True)
        order = order[torch.argsort(classes[order], stable=True)]
        maps = maps_u8[order].float().reshape(-1, self.size, self.size) / 255.0
        return maps, classes[order], thumbs[order], content[order].float()

    def epoch_end(self, trainer: Any, log: ScalarLog, step: int, sinks: Sequence[ImageSink],
                  class_names: Sequence[str] | None, prefix: str) -> None:
        names = self.class_names or ([str(n) for n in class_names] if class_names else None)
        for method in self.ctx.methods:
            maps, classes, thumbs, content = self._gather(trainer, method)
            with timed("end/strategies/clustering"):
                found = analyse(maps, classes, content, self.min_maps, self.neighbors, self.max_clusters,
                                self.min_share, self.focus, self.same, self.min_members)
            alarmed = {f.cls for f in found if any(s.fixed for s in f.strategies)}
            with torch.inference_mode(False):
                for f in found:
                    for stat, value in f.stats().items():
                        log(strategy_tag(method, stat, class_name(names, f.cls)), torch.tensor(value), detail=True)
                if found:  # no class with maps enough to analyse: no alarm count (0 would reassure falsely)
                    log(strategy_tag(method, "alarm"), torch.tensor(float(len(alarmed))))
            new = alarmed - self.alarmed.get(method, set())
            self.alarmed[method] = alarmed
            if not trainer.is_global_zero:
                continue
            if self.alarm and new:
                rank_zero_warn(alarm_message(method, [f for f in found if f.cls in new], names, prefix))
            if found:
                try:
                    with timed("end/strategies/drawing"):
                        image = strategies_image(found, maps, thumbs, names, self.ctx.colormap, self.ctx.alpha,
                                                 legend=strategies_legend(self.focus, self.same))
                except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
                    self.ctx.faults.record("error", f"{method} strategies image raised {type(err).__name__}: {err}",
                                           err)
                    continue
                send_image(self.ctx.faults, sinks, f"{prefix}/{method}/strategies", image, step)
        self.rows = {m: [] for m in self.ctx.methods}

    def state_dict(self) -> dict[str, Any]:
        return {"alarmed": {m: sorted(c) for m, c in self.alarmed.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.alarmed = {m: set(c) for m, c in state.get("alarmed", {}).items()}


def alarm_message(method: str, found: Sequence[ClassStrategies], names: Sequence[str] | None, prefix: str) -> str:
    """The warning of classes that gained a fixed-place strategy."""
    parts = []
    for f in found:
        fixed = [s for s in f.strategies if s.fixed]
        share = sum(s.share for s in fixed)
        parts.append(f"class {class_name(names, f.cls)!r}: {100 * share:.0f} % of its {f.size} scored maps look at one "
                     f"fixed place (focus {max(s.focus for s in fixed):.2f})")
    return (f"CAMCallback: {method}: {'; '.join(parts)}, whatever the image shows. A model that looks at the same "
            "place in many images of a class often relies on a cue there (a watermark, a tag, a ruler, a border) "
            f"instead of the object: see the image {prefix}/{method}/strategies. Turn this warning off with "
            "views={'strategies': {'alarm': False}}.")


def strategies_legend(focus: float, same: float) -> str:
    """The legend drawn under the strategies image: what its rows, captions and frames say.

    Examples:
        >>> print(strategies_legend(0.8, 0.4).splitlines()[1])
        f: focus (map at one place)   s: sameness (same pixels there in every image)
    """
    return (
        "row: a class; group: a strategy's mean map (class, share), then 2 of its maps\n"
        "f: focus (map at one place)   s: sameness (same pixels there in every image)\n"
        f"red frame: fixed-place (f >= {focus:.2f}, s >= {same:.2f}): a cue rather than the object?"
    )


def strategies_image(found: Sequence[ClassStrategies], maps: Tensor, thumbs: Tensor, names: Sequence[str] | None,
                     colormap: str, alpha: float, members: int = 2, most: int = 3, tile: int = 56,
                     legend: str | None = None) -> Tensor:
    """One row per class: for each of its ``most`` largest strategies, the mean map over the mean of its images
    (captioned with the class, share, focus ``f`` and sameness ``s``; framed red when fixed-place), then
    ``members`` of its maps; ``legend`` (`strategies_legend`) in a band below. All captions in one drawing.
    As wide as the widest row (no column that every row leaves blank). ``(3, H, W)`` float in ``[0, 1]``."""
    width = max(sum(1 + min(members, s.members.numel()) for s in f.strategies[:most]) for f in found)
    images, cams, colors, texts, blank = [], [], [], [], []
    for f in found:
        row = 0
        for s in f.strategies[:most]:
            frame = WRONG_COLOR if s.fixed else UNKNOWN_COLOR
            picked = s.members[:members].tolist()
            images += [thumbs[s.members].float().mean(dim=0) / 255.0, *(thumbs[i].float() / 255.0 for i in picked)]
            cams += [s.mean / s.mean.max().clamp(min=1e-12), *(maps[i] for i in picked)]
            colors += [frame] * (1 + len(picked))
            scores = f"f{s.focus:.2f} s{s.same:.2f}".replace("0.", ".")
            texts += [f"{class_name(names, f.cls)} {100 * s.share:.0f}%\n{scores}", *([""] * len(picked))]
            row += 1 + len(picked)
        blank += list(range(len(images), len(images) + width - row))  # pad the row to the common width
        images += [torch.zeros(3, _THUMB, _THUMB)] * (width - row)
        cams += [torch.zeros_like(maps[0])] * (width - row)
        colors += [(BACKGROUND,) * 3] * (width - row)
        texts += [""] * (width - row)
    grid = overlay_columns(letterbox(torch.stack(images), tile), torch.stack(cams), colors, texts, colormap, alpha,
                           nrow=width, padding=PADDING)
    cell_w = (grid.shape[-1] - PADDING) // width  # make_grid's cells: tile plus padding
    cell_h = (grid.shape[-2] - PADDING) // len(found)
    for i in blank:  # the padding cells: background, not an overlay of nothing
        r, c = divmod(i, width)
        grid[:, r * cell_h + PADDING : (r + 1) * cell_h, c * cell_w + PADDING : (c + 1) * cell_w] = BACKGROUND
    if legend:
        wide = max(int(grid.shape[-1]), text_width(legend, _LEGEND_PT))  # a narrow image: widened for its legend
        grid = F.pad(grid, (0, wide - int(grid.shape[-1])), value=BACKGROUND)
        band = text_tiles([legend], height=13 * (legend.count("\n") + 1) + 4, width=wide, fontsize=_LEGEND_PT)[0]
        grid = torch.cat([grid, band.to(grid.dtype)], dim=1)
    return grid
