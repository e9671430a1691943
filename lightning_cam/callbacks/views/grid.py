"""The grid view: each method's probe grid ``<prefix>/<method>/grid`` at every CAM run, and at the end of ``fit``
its evolution image ``cam/<method>/evolution`` (one row per recorded run, also kept as
``cam_evolution_<method>.png`` by every sink).

The callback adds it whenever it has a probe (``num_images > 0``; ``log_evolution`` switches the evolution image),
so it is not chosen in ``views=``: the probe's maps come from the probe pass (`ProbePass`), as a `ProbeRecord`,
through the view hook `probe_logged` on rank zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from lightning_cam.callbacks.images import ProbeImages
from lightning_cam.callbacks.probe import ProbeRecord
from lightning_cam.callbacks.scalars import ScalarLog
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.callbacks.views.base import View, ViewContext

__all__ = ["GridView"]


class GridView(View):
    """The probe grids and the evolution image (see the module docstring).

    Args:
        ctx: the callback's view context (its look, methods and faults).
        evolution: draw the evolution image at the end of ``fit``.

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> view = GridView(ViewContext(("gradcam",), ("adcc",), 32, "jet", 0.5, Faults("warn")))
        >>> view.keys(None, with_probe=True), view.evolution
        ([], True)
    """

    name = "grid"

    def __init__(self, ctx: ViewContext, evolution: bool = True) -> None:
        super().__init__(ctx)
        self.evolution = evolution
        self.images = ProbeImages(ctx.colormap, ctx.alpha, ctx.tile_size, ctx.faults)
        #: the last probe record of ``fit`` (what the evolution image shows the maps on)
        self.last: ProbeRecord | None = None

    def probe_logged(self, probe: ProbeRecord, log: ScalarLog, sinks: Sequence[ImageSink]) -> None:
        for name, result in probe.results.items():
            self.images.grid(name, result, probe, sinks)
        if probe.recorded:
            self.last = probe

    def fit_end(self, sinks: Sequence[ImageSink], step: int) -> None:
        probe = self.last
        if not self.evolution or probe is None:
            return
        for name in self.ctx.methods:
            result = probe.results.get(name)
            samples = None if result is None else result.samples
            # one column per explained (image, target) pair, as the grids show them
            display = probe.display if samples is None else probe.display[samples.cpu()]
            self.images.evolution(name, probe.history, display, sinks, step, self.ctx.prefix)
