"""View ``"summary"``: one picture per metric: the TensorBoard custom-scalars layout written at the start of
``fit`` (every method's curve of a metric on one chart) and, at the end of ``fit``, a matplotlib figure of
every ``cam/`` curve the callback logged (``cam/summary``, kept as ``cam_summary.png`` by every sink).

The figure is drawn by default only when a logger draws no charts of its own (a CSV logger, or any logger
whose images go to PNG files): TensorBoard, W&B, MLflow, Comet and Neptune chart every scalar themselves, and
the figure (about half a second of matplotlib for a dozen panels, at the end of every ``fit``) would repeat
them. ``views={"summary": {"figure": True}}`` draws it for every logger, ``False`` never.

Both group keys the same way (`chart_of`): ``cam/<method>/<metric>`` on the chart of ``<metric>``, and
every other key where the view that logs it places it ([`View.chart`][lightning_cam.callbacks.views.base.View.chart]):
``cam/<method>/drift`` on ``drift``,
``cam/agreement/<a>__<b>`` on ``agreement``, the per-class ``cam/<method>/per_class/<metric>/<class>`` on
``<metric> per class (<method>)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from lightning_cam.callbacks.images import publish_final
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.callbacks.views.base import VIEW_REGISTRY, Chart, View, register_view
from lightning_cam.utilities.lightning import TENSORBOARD_LOGGERS

__all__ = ["SUMMARY_PNG", "Curves", "SummaryView", "chart_of", "custom_scalars_layout", "summary_figure"]

#: file name of the summary figure, next to the evolution images.
SUMMARY_PNG = "cam_summary.png"  # the file of the first dataloader's callback (``<prefix>_summary.png``)


def chart_of(key: str) -> Chart | None:
    """``(category, chart title, series label)`` of a logged key; ``None`` for keys outside ``cam/``.

    Examples:
        >>> chart_of("cam/gradcam/adcc"), chart_of("cam/agreement/gradcam__eigencam")
        (('CAM metrics', 'adcc', 'gradcam'), ('CAM agreement and drift', 'agreement', 'gradcam__eigencam'))
        >>> chart_of("cam/gradcam/per_class/iou/circle")
        ('CAM per class', 'iou per class (gradcam)', 'circle')
    """
    parts = key.split("/")
    if len(parts) < 3 or not (parts[0] == "cam" or parts[0].startswith("cam_")):
        return None
    for _, view in VIEW_REGISTRY.items():
        chart = view.chart(key)
        if chart is not None:
            return chart
    return ("CAM metrics", parts[2], parts[1]) if len(parts) == 3 and parts[0] == "cam" else None


def custom_scalars_layout(keys: Sequence[str]) -> dict[str, dict[str, list[Any]]]:
    """The layout of ``SummaryWriter.add_custom_scalars`` (TensorBoard's ``custom_scalar`` plugin): one
    ``Multiline`` chart per `chart_of` title, its series the exact keys (anchored, escaped regexes).

    Examples:
        >>> custom_scalars_layout(["cam/gradcam/adcc", "cam/gradcam++/adcc"])
        {'CAM metrics': {'adcc': ['Multiline', ['^cam/gradcam/adcc$', '^cam/gradcam\\\\+\\\\+/adcc$']]}}
    """
    layout: dict[str, dict[str, list[Any]]] = {}
    for key in keys:
        chart = chart_of(key)
        if chart is None:
            continue
        category, title, _ = chart
        layout.setdefault(category, {}).setdefault(title, ["Multiline", []])[1].append(f"^{re.escape(key)}$")
    return layout


class Curves:
    """Every ``cam/`` scalar logged during ``fit``: ``values[key][epoch] = value`` (checkpointed).

    Examples:
        >>> curves = Curves()
        >>> curves.add("cam/gradcam/adcc", 0, 0.5)
        >>> curves.add("cam/gradcam/adcc", 1, float("nan"))  # not finite: not kept
        >>> curves.values
        {'cam/gradcam/adcc': {0: 0.5}}
    """

    def __init__(self) -> None:
        self.values: dict[str, dict[int, float]] = {}

    def add(self, key: str, epoch: int, value: float) -> None:
        if math.isfinite(value):
            self.values.setdefault(key, {})[int(epoch)] = float(value)

    def state_dict(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.values.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.values = {k: {int(e): float(x) for e, x in v.items()} for k, v in state.items()}


def summary_figure(curves: Curves, columns: int = 3, panel: tuple[float, float] = (4.0, 2.8)) -> Tensor | None:
    """All curves of ``curves``, one panel per `chart_of` title (one line per series, value against
    epoch), as a ``(3, H, W)`` float image in ``[0, 1]``; ``None`` without any curve.

    Examples:
        >>> curves = Curves()
        >>> for e in range(3):
        ...     curves.add("cam/gradcam/adcc", e, 0.1 * e)
        ...     curves.add("cam/eigencam/adcc", e, 0.2)
        >>> summary_figure(curves).shape
        torch.Size([3, 280, 400])
    """
    charts: dict[str, dict[str, dict[int, float]]] = {}
    order = {"CAM metrics": 0, "CAM agreement and drift": 1, "CAM per class": 2}

    def place(key: str) -> tuple[int, str]:
        chart = chart_of(key) or ("", "", "")
        return order.get(chart[0], 3), chart[1]

    for key in sorted(curves.values, key=place):
        chart = chart_of(key)
        if chart is not None and curves.values[key]:
            charts.setdefault(chart[1], {})[chart[2]] = curves.values[key]
    if not charts:
        return None
    cols = min(columns, len(charts))
    rows = math.ceil(len(charts) / cols)
    width, height = panel[0] * cols, panel[1] * rows
    fig = Figure(figsize=(width, height), dpi=100)
    canvas = FigureCanvasAgg(fig)
    # fixed margins in inches (every panel has the same size and labels): `tight_layout` measured every tick
    # label to find them, 60 % of the figure's time
    fig.subplots_adjust(left=0.45 / width, right=1 - 0.1 / width, bottom=0.4 / height, top=1 - 0.3 / height,
                        wspace=0.55 / (panel[0] - 0.55), hspace=0.75 / (panel[1] - 0.75))
    for i, (title, series) in enumerate(charts.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        for label, points in series.items():
            epochs = sorted(points)
            marker = "o" if len(epochs) == 1 else None  # a point needs its marker; a line shows itself
            ax.plot(epochs, [points[e] for e in epochs], marker=marker, markersize=3, label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=3))
        if len(series) > 1:  # a fixed place: "best" tries every place against every point, a third of the time
            ax.legend(fontsize=6, loc="upper left", framealpha=0.6)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float().div_(255.0)


@register_view
class SummaryView(View):
    """View ``"summary"``: the custom-scalars layout at the start of ``fit`` (every TensorBoard logger), the
    curves of every ``cam/`` scalar of ``fit`` (checkpointed) and their figure at its end.

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> from lightning_cam.callbacks.views.base import ViewContext
        >>> view = SummaryView(ViewContext(("gradcam",), ("adcc",), 32, "jet", 0.5, Faults("warn")))
        >>> view.scalar("cam/gradcam/adcc", 0, 0.5)
        >>> view.state_dict()
        {'curves': {'cam/gradcam/adcc': {0: 0.5}}}
    """

    name = "summary"
    default = True

    def __init__(self, ctx: Any, figure: bool | None = None) -> None:
        super().__init__(ctx)
        if figure is not None and not isinstance(figure, bool):
            raise ValueError(f"view 'summary': `figure` must be true, false or null (drawn when a logger draws no "
                             f"charts of its own), got {figure!r}.")
        self.figure = figure
        self.curves = Curves()

    def fit_start(self, trainer: Any, pl_module: Any, keys: Sequence[str]) -> None:
        layout = custom_scalars_layout([k.replace("cam/", f"{self.ctx.prefix}/", 1) for k in keys])
        loggers: list[Any] = [lg for lg in trainer.loggers if isinstance(lg, TENSORBOARD_LOGGERS)]
        for logger in loggers:
            try:
                logger.experiment.add_custom_scalars(layout)
            except Exception as err:  # noqa: BLE001 - a failing logger is a reported fault, never fatal
                self.ctx.faults.record("logger", f"cannot write the custom-scalars layout: {type(err).__name__}: {err}",
                                       err)

    def scalar(self, key: str, epoch: int, value: float) -> None:
        self.curves.add(key, epoch, value)

    def fit_end(self, sinks: Sequence[ImageSink], step: int) -> None:
        if not self.draws_figure(sinks):
            return
        try:
            image = summary_figure(self.curves)
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self.ctx.faults.record("error", f"the CAM summary figure raised {type(err).__name__}: {err}", err)
            return
        if image is not None:
            publish_final(self.ctx.faults, sinks, f"{self.ctx.prefix}/summary", image, step,
                          f"{self.ctx.prefix}_summary.png")

    def draws_figure(self, sinks: Sequence[ImageSink]) -> bool:
        """Whether the end of ``fit`` draws the figure for ``sinks``: the ``figure`` option, else whether one of
        them draws no charts of its own."""
        return self.figure if self.figure is not None else any(not sink.draws_charts for sink in sinks)

    def state_dict(self) -> dict[str, Any]:
        return {"curves": self.curves.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.curves.load_state_dict(dict(state.get("curves", {})))
