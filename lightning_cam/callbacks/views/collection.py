"""``CAMViews``: the views a callback was given (``views=``), built once and called at each hook.

The views are named in ``views=`` like the stages in ``stages=``: a sequence of names
(``("worst", "drift")``), or a mapping of name to options (``{"worst": {"k": 16}, "drift": {}}``);
`resolve_views` checks both against the registered views. Every view also takes ``every_n`` (`EVERY_N`, default 1):
it works at the callback's CAM runs ``0, n, 2n, ...`` only (its batches, its scalars and its images; the same runs
on every rank, counted in the checkpoint), for a view whose cost matters more than its freshness. Every per-batch
hook only updates device tensors (no host sync); at a run's end every rank calls `CAMViews.epoch_end`
(the gallery's one gather and the metric states' syncs).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from lightning_cam.callbacks.probe import ProbeRecord
from lightning_cam.callbacks.scalars import ScalarLog
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.callbacks.views.base import VIEW_REGISTRY, View, ViewContext, default_views
from lightning_cam.record import BatchRecord
from lightning_cam.utilities.stopwatch import timed

__all__ = ["EVERY_N", "CAMViews", "ViewsSpec", "check_every_n", "resolve_views"]

#: the option every view takes: work at every n-th CAM run only (handled here, not by the view)
EVERY_N = "every_n"

#: ``views=``: names, or name -> options.
ViewsSpec = Sequence[str] | Mapping[str, Mapping[str, Any] | None]


def resolve_views(views: ViewsSpec | str | None) -> dict[str, dict[str, Any]]:
    """``views=`` as ``{name: options}`` in the order given, checked against the registered views; ``None``: the
    default views ([`default_views`][lightning_cam.callbacks.views.base.default_views]), ``()``: none.

    Raises:
        ValueError: an unknown view (the valid ones are listed), a view listed twice, options that are not a
            mapping.

    Examples:
        >>> resolve_views(("worst", "drift"))
        {'worst': {}, 'drift': {}}
        >>> resolve_views({"worst": {"k": 16}})
        {'worst': {'k': 16}}
        >>> resolve_views(("gallery",))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown view 'gallery' in `views`; valid views are ['agreement', 'drift', ...].
    """
    if views is None:
        views = default_views()
    names = [views] if isinstance(views, str) else list(views)
    options = views if isinstance(views, Mapping) else {}
    resolved: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in VIEW_REGISTRY:
            raise ValueError(f"unknown view {name!r} in `views`; valid views are {sorted(VIEW_REGISTRY.names())}.")
        if name in resolved:
            raise ValueError(f"view {name!r} is listed twice in `views`; list each view once.")
        opts = options.get(name) or {}
        if not isinstance(opts, Mapping):
            raise ValueError(f"the options of view {name!r} must be a mapping of argument names to values, got "
                             f"{opts!r}; e.g. views={{'worst': {{'k': 16}}}}.")
        resolved[name] = dict(opts)
    return resolved


def check_every_n(name: str, every_n: object) -> int:
    """A view's ``every_n`` (an int of at least 1), else a ``ValueError`` naming the view and the fix.

    Examples:
        >>> check_every_n("worst", 2)
        2
        >>> check_every_n("worst", 0)
        Traceback (most recent call last):
        ...
        ValueError: view 'worst': every_n must be an int >= 1 (1: every CAM run), got 0.
    """
    if isinstance(every_n, bool) or not isinstance(every_n, int) or every_n < 1:
        raise ValueError(f"view {name!r}: every_n must be an int >= 1 (1: every CAM run), got {every_n!r}.")
    return every_n


def build_view(name: str, ctx: ViewContext, options: Mapping[str, Any]) -> View:
    """The view ``name`` with its options (``every_n`` left out: `CAMViews` handles it); an option its constructor
    does not take is a ``ValueError`` naming the ones it does."""
    cls = VIEW_REGISTRY.get(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "ctx")]
    own = {k: v for k, v in options.items() if k != EVERY_N}
    unknown = [k for k in own if k not in accepted]
    if unknown:
        raise ValueError(f"view {name!r} has no option(s) {unknown}; its options are {[*accepted, EVERY_N]}.")
    return cls(ctx, **own)


@contextmanager
def _guard(ctx: ViewContext, what: str) -> Iterator[None]:
    """Outside inference mode (the views' states are updated there); a view's exception is a fault."""
    try:
        with torch.inference_mode(False):
            yield
    except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
        ctx.faults.record("error", f"CAM view {what} raised {type(err).__name__}: {err}", err)


class CAMViews:
    """The views of one callback (see the module docstring), each hook called on every view.

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> ctx = ViewContext(("gradcam",), ("complexity",), 32, "jet", 0.5, Faults("raise"))
        >>> views = CAMViews(ctx, resolve_views(("worst", "drift", "summary")))
        >>> list(views.views), views.keys(class_names=None, with_probe=True)
        (['worst', 'drift', 'summary'], ['cam/gradcam/complexity', 'cam/gradcam/drift'])
    """

    def __init__(self, ctx: ViewContext, views: Mapping[str, Mapping[str, Any]], first: Sequence[View] = ()) -> None:
        self.ctx = ctx
        #: the views of ``views=``, after the callback's own ``first`` ones (the grid view, with a probe)
        self.views: dict[str, View] = {view.name: view for view in first}
        self.views.update({name: build_view(name, ctx, options) for name, options in views.items()})
        #: each view's ``every_n`` (1 unless given)
        self.every_n = {name: check_every_n(name, views.get(name, {}).get(EVERY_N, 1)) for name in self.views}
        #: the CAM runs started so far (checkpointed), and the views that work in the current one
        self.runs = 0
        self.active: dict[str, View] = dict(self.views)

    def keys(self, class_names: Sequence[str] | None, with_probe: bool) -> list[str]:
        """Every scalar key of the callback and its views, in chart order."""
        keys = [f"cam/{m}/{k}" for k in self.ctx.metrics for m in self.ctx.methods]
        for view in self.views.values():
            keys += view.keys(class_names, with_probe)
        return keys

    def fit_start(self, trainer: Any, pl_module: Any, keys: Sequence[str]) -> None:
        for name, view in self.views.items():
            with _guard(self.ctx, name):
                view.fit_start(trainer, pl_module, keys)

    def start(self, trainer: Any, pl_module: Any, denormalize: Callable[[Tensor], Tensor]) -> None:
        """A CAM run starts: the views whose ``every_n`` divides the runs before it work in it (`active`)."""
        self.active = {name: view for name, view in self.views.items() if self.runs % self.every_n[name] == 0}
        self.runs += 1
        for name, view in self.active.items():
            with _guard(self.ctx, name):
                view.start(trainer, pl_module, denormalize)

    def observe(self, record: BatchRecord) -> None:
        """A scored batch's record to every view of the run (an observer of the batch step)."""
        for name, view in self.active.items():
            with _guard(self.ctx, name), timed(f"batch/observe/{name}"):
                view.observe(record)

    def scalar(self, key: str, epoch: int, value: float) -> None:
        """A ``cam/`` scalar logged during ``fit``, to every view (e.g. the summary's curves)."""
        for view in self.views.values():
            view.scalar(key, epoch, value)

    def epoch_end(self, trainer: Any, log: ScalarLog, step: int, sinks: Sequence[ImageSink],
                  class_names: Sequence[str] | None, prefix: str = "cam") -> None:
        """Every rank (each view's collectives); images from rank zero to ``sinks`` at ``step``."""
        for name, view in self.active.items():
            with _guard(self.ctx, name), timed(f"end/{name}"):
                view.epoch_end(trainer, log, step, sinks, class_names, prefix)

    def probe_logged(self, probe: ProbeRecord, log: ScalarLog, sinks: Sequence[ImageSink]) -> None:
        """Rank zero: a run's maps of the probe, to every view of the run (the grid view draws them)."""
        for name, view in self.active.items():
            with _guard(self.ctx, name), timed(f"probe/{name}"):
                view.probe_logged(probe, log, sinks)

    def fit_end(self, sinks: Sequence[ImageSink], step: int) -> None:
        for name, view in self.views.items():
            with _guard(self.ctx, name), timed(f"fit_end/{name}"):
                view.fit_end(sinks, step)

    def state_dict(self) -> dict[str, Any]:
        return {name: view.state_dict() for name, view in self.views.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, view in self.views.items():
            view.load_state_dict(state.get(name, {}))
