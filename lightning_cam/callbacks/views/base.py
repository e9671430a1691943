"""The view contract: what a view of [`CAMCallback`][lightning_cam.callbacks.cam.CAMCallback] may do at each moment
of a run, and the registry of views by name.

A view is one class in one file, decorated with [`register_view`][lightning_cam.callbacks.views.base.register_view]
(the built-in views are the modules of `lightning_cam.callbacks.views`, found when the registry is first read; a
view of your own registers when your module runs). It overrides only the hooks it needs; every hook is a
documented no-op here, and the callback calls them all (the Lightning `Callback` pattern):

| hook | when, on which ranks | what it may do |
|---|---|---|
| `keys` | setup; rank zero | name the scalar keys it logs (layout) |
| `chart` | any time (class method) | place one of its keys on a summary chart |
| `fit_start` | start of `fit`; rank zero | write something once (layout) |
| `start` | a CAM run starts; every rank | reset its device states |
| `observe` | a scored batch's record (every method); all | update device tensors only (no host sync) |
| `epoch_end` | the run ends; every rank | collectives, scalars; images on rank zero |
| `probe_logged` | the probe's maps of a run; rank zero | draw them (grid), read the history (drift) |
| `scalar` | every scalar logged during `fit` | record curves |
| `fit_end` | end of `fit`; rank zero | final images |

A view's options are the keyword arguments of its constructor after the context
(`views={"worst": {"k": 16}}`), and `every_n` for any view (handled by the callback: the view's `start`, `observe`,
`epoch_end` and `probe_logged` run at every n-th CAM run only); a wrong name or value is a `ValueError` when the
callback is built. Its
state (`state_dict`) is saved in the callback's checkpoint under its name. A view with `default = True` is on
when `views=` is not given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from torch import Tensor

from lightning_cam.callbacks.faults import Faults
from lightning_cam.callbacks.probe import ProbeRecord
from lightning_cam.callbacks.scalars import ScalarLog
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.record import BatchRecord
from lightning_cam.utilities.registry import Registry, check_key_name

__all__ = ["VIEW_REGISTRY", "Chart", "ScalarLog", "View", "ViewContext", "default_views", "register_view"]

#: ``(category, chart title, series label)`` of a logged key on the summary charts.
Chart = tuple[str, str, str]


@dataclass(frozen=True)
class ViewContext:
    """What every view is built with: the callback's methods and metrics, its display settings and its faults.

    Examples:
        >>> ViewContext(("gradcam",), ("adcc",), 64, "jet", 0.5, Faults("warn")).methods
        ('gradcam',)
    """

    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    tile_size: int
    colormap: str
    alpha: float
    faults: Faults
    #: the prefix of the keys and tags of ``fit`` (``cam``, or ``cam_dl<i>`` for the dataloader ``i > 0``)
    prefix: str = "cam"


class View:
    """Base class of the callback's views: every hook a no-op (see the module docstring for when each runs).

    Examples:
        >>> class Count(View):
        ...     name = "count"
        ...     def start(self, trainer, pl_module, denormalize): self.n = 0
        ...     def observe(self, record): self.n += sum(r.batch_size for r in record.methods.values())
        >>> view = Count(ViewContext(("gradcam",), ("adcc",), 64, "jet", 0.5, Faults("warn")))
        >>> view.keys(None, with_probe=True), view.state_dict()
        ([], {})
    """

    #: the name in ``views=`` (letters, digits, ``_``)
    name: ClassVar[str] = ""
    #: on when ``views=`` is not given
    default: ClassVar[bool] = False

    def __init__(self, ctx: ViewContext) -> None:
        self.ctx = ctx

    def keys(self, class_names: Sequence[str] | None, with_probe: bool) -> list[str]:
        """The scalar keys (``cam/...``) this view logs, for the custom-scalars layout."""
        return []

    @classmethod
    def chart(cls, key: str) -> Chart | None:
        """Where one of this view's keys goes on the summary charts; ``None`` for keys it does not log."""
        return None

    def fit_start(self, trainer: Any, pl_module: Any, keys: Sequence[str]) -> None:
        """Rank zero, start of ``fit``; ``keys``: every scalar key of the callback and its views."""

    def start(self, trainer: Any, pl_module: Any, denormalize: Callable[[Tensor], Tensor]) -> None:
        """Every rank, a CAM run starts (``denormalize`` makes model inputs displayable)."""

    def observe(self, record: BatchRecord) -> None:
        """Every rank: a scored batch's [`BatchRecord`][lightning_cam.record.BatchRecord], one
        [`MethodRecord`][lightning_cam.record.MethodRecord] per method (left-out samples NaN in maps and values;
        ``index``: each row's position in the batch). Device tensors only: no host sync."""

    def epoch_end(self, trainer: Any, log: ScalarLog, step: int, sinks: Sequence[ImageSink],
                  class_names: Sequence[str] | None, prefix: str) -> None:
        """Every rank, the run ends: collectives and scalars; images (rank zero) to ``sinks`` at ``step``,
        tagged under ``prefix`` (``cam`` or ``cam_test``)."""

    def probe_logged(self, probe: ProbeRecord, log: ScalarLog, sinks: Sequence[ImageSink]) -> None:
        """Rank zero: a run's maps of the probe (`ProbeRecord`; in
        ``fit`` also recorded in its history, ``probe.recorded``); images go to ``sinks``."""

    def scalar(self, key: str, epoch: int, value: float) -> None:
        """A ``cam/`` scalar logged during ``fit`` (every rank)."""

    def fit_end(self, sinks: Sequence[ImageSink], step: int) -> None:
        """Rank zero, end of ``fit``."""

    def state_dict(self) -> dict[str, Any]:
        """What the checkpoint keeps of this view."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore [`state_dict`][lightning_cam.callbacks.views.base.View.state_dict]."""


#: view name -> class, filled by [`register_view`][lightning_cam.callbacks.views.base.register_view].
VIEW_REGISTRY: Registry[type[View]] = Registry("view", package="lightning_cam.callbacks.views", loose=False)
V = TypeVar("V", bound=type[View])


def register_view(cls: V) -> V:
    """Class decorator: register a `View` subclass under its `name`.

    Examples:
        >>> @register_view
        ... class Nothing(View):
        ...     name = "nothing_doc"
        >>> VIEW_REGISTRY.remove("nothing_doc") is Nothing
        True
    """
    VIEW_REGISTRY.add(check_key_name(cls.name, f"view {cls.__name__}"), cls)
    return cls


def default_views() -> tuple[str, ...]:
    """The registered views with `default = True`, in registration order (read when called).

    Examples:
        >>> default_views()
        ('agreement', 'drift', 'worst', 'strategies', 'summary')
    """
    return tuple(VIEW_REGISTRY.names(lambda cls: cls.default))
