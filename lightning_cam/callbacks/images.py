"""The callback's images, on rank zero: each method's probe grid at every logged epoch and its evolution image
at the end of ``fit`` (drawn by the grid view), rendered with `lightning_cam.render` and sent to the image sinks.

No collectives here: only rank zero calls it. Every failure is a fault of the shared `Faults`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightning_cam.callbacks.faults import Faults
from lightning_cam.callbacks.probe import History, ProbeRecord
from lightning_cam.callbacks.sinks import (
    ImageSink,
    log_to_all,
    safe_name,
)
from lightning_cam.methods import BaseCAM, CAMResult, ExtraInputs
from lightning_cam.record import CAMBatch
from lightning_cam.render import cam_grid, evolution_grid
from lightning_cam.targets.task import predicted_class
from lightning_cam.utilities.stopwatch import timed

__all__ = ["EVOLUTION_ROWS", "EVOLUTION_TILE", "ProbeImages", "explain_probe", "explain_targets", "publish_final",
           "send_image"]

#: most epochs drawn in the evolution image (evenly spaced, first and last always included).
EVOLUTION_ROWS = 32
#: largest tile of the evolution image, in pixels (it has one row per epoch: kept small).
EVOLUTION_TILE = 96


class ProbeImages:
    """Render and send the probe images of a callback with the given look.

    ``display`` images are ``(N, 3, H, W)`` float in ``[0, 1]`` on the CPU (the probe set, denormalised).
    Images are logged at the step of the scalars logged with them, with the epoch in the caption (loggers that
    show captions) and in the evolution image's row labels.

    Examples:
        >>> import os, tempfile
        >>> from lightning_cam.callbacks.sinks import PNGDirectorySink
        >>> out = tempfile.mkdtemp()
        >>> history = History()
        >>> for row in range(3):
        ...     history.add("gradcam", row, torch.rand(2, 16, 16), torch.zeros(2), epoch=row, step=2 * row)
        >>> images = ProbeImages("jet", 0.5, tile_size=32, faults=Faults("raise"))
        >>> images.evolution("gradcam", history, torch.rand(2, 3, 16, 16), sinks=[PNGDirectorySink(out)], step=4)
        >>> sorted(os.listdir(out))
        ['cam_evolution_gradcam.png']
    """

    def __init__(self, colormap: str, alpha: float, tile_size: int, faults: Faults) -> None:
        self.colormap = colormap
        self.alpha = alpha
        self.tile_size = tile_size
        self.faults = faults

    def grid(self, name: str, result: CAMResult, probe: ProbeRecord, sinks: Sequence[ImageSink]) -> None:
        """``name``'s maps of the probe (``result``) as the grid ``<prefix>/<name>/grid`` at the run's step,
        captioned with its epoch."""
        when = probe.when
        try:
            display, labels = probe.display, probe.labels
            if result.samples is not None or (labels is not None and labels.ndim > 1):
                # pairs: one column per (probe image, class), captioned with the class where the labels hold it
                samples = torch.arange(display.shape[0]) if result.samples is None else result.samples.cpu()
                paired = CAMBatch(display, labels).pairs(samples, result.targets.cpu())
                display, labels = paired.images, paired.labels
            preds = probe.preds[name]
            maps = torch.nan_to_num(result.maps.detach().float(), nan=0.0)
            region = probe.task.target.region(result.logits, result.targets)  # what each map is about, outlined
            grid = cam_grid(display, maps.cpu(), preds.cpu(), None if labels is None else labels.cpu(),
                            probe.class_names, self.colormap, self.alpha, self.tile_size, outlines=region)
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self.faults.record("error", f"{name} probe grid raised {type(err).__name__}: {err}", err)
            return
        step = 0 if when.step is None else when.step
        self.send(sinks, f"{probe.prefix}/{name}/grid", grid, step, f"{name}, epoch {when.epoch}, step {step}")

    def evolution(self, name: str, history: History, display: Tensor, sinks: Sequence[ImageSink], step: int,
                  prefix: str = "cam") -> None:
        """The evolution image of ``name`` (one row per recorded validation, at most `EVOLUTION_ROWS`),
        ``cam/<name>/evolution`` at the last recorded step (else ``step``) to every sink, and kept by each sink
        as the file ``cam_evolution_<name>.png`` (in the logger's own place). Nothing when nothing was
        recorded."""
        series = history.series(name, max_rows=EVOLUTION_ROWS)
        if series is None:
            return
        rows, maps = series
        try:
            image = evolution_grid(display, maps, [history.caption(r) for r in rows], self.colormap, self.alpha,
                                   tile_size=min(self.tile_size, EVOLUTION_TILE))
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self.faults.record("error", f"{name} evolution image raised {type(err).__name__}: {err}", err)
            return
        first, last = history.when(rows[0]), history.when(rows[-1])
        caption = f"{name}: {len(rows)} validations, epochs {first.epoch}-{last.epoch}"
        publish_final(self.faults, sinks, f"{prefix}/{name}/evolution", image,
                      step if last.step is None else last.step, f"{prefix}_evolution_{safe_name(name)}.png", caption)

    def send(
        self, sinks: Sequence[ImageSink], tag: str, image: Tensor, step: int, caption: str | None = None
    ) -> None:
        """``image`` to every sink; each sink that fails is a ``logger`` fault."""
        send_image(self.faults, sinks, tag, image, step, caption)


def explain_probe(cam: BaseCAM, images: Tensor, targets: Tensor | None, extra: ExtraInputs | None = None) -> CAMResult:
    """``cam.explain`` of the probe images (the same forwards on every rank of a sharded run).

    A multi-label model's probe explains fixed pairs, so the grid and the evolution image compare the same
    columns every epoch: each probe image's labels (``targets``, ``(N, K)``), or without labels its top class.
    """
    if targets is None and cam.task.several:
        targets = explain_targets(cam, images, extra)
    return cam.explain(images, targets, extra=extra) if extra else cam.explain(images, targets)


def explain_targets(cam: BaseCAM, images: Tensor, extra: ExtraInputs | None = None) -> Tensor:
    """The probe's targets for a multi-label model without labels: each image's top class (one forward)."""
    return predicted_class(cam.forward_logits(images, extra), cam.task)


def send_image(faults: Faults, sinks: Sequence[ImageSink], tag: str, image: Tensor, step: int,
               caption: str | None = None) -> None:
    """``image`` as ``tag`` at ``step`` to every sink; each sink that fails is a ``logger`` fault of ``faults``."""
    with timed("encode"):
        errors = log_to_all(sinks, tag, image, step, caption)
    for err in errors:
        faults.record("logger", f"a logger failed to write {tag}: {type(err).__name__}: {err}", err)


def publish_final(faults: Faults, sinks: Sequence[ImageSink], tag: str, image: Tensor, step: int, filename: str,
                  caption: str | None = None) -> None:
    """An end-of-``fit`` image (the evolution, the summary figure): ``tag`` at ``step`` to every sink that shows
    images, and kept by every sink as the file ``filename`` in the logger's own place (a PNG directory keeps
    only that file, not a second copy named by step). Every failure is a ``logger`` fault of ``faults``."""
    send_image(faults, [s for s in sinks if s.shows_images], tag, image, step, caption)
    for sink in sinks:
        try:
            with timed("encode"):
                sink.save(image, filename)
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            faults.record("logger", f"cannot save {filename}: {type(err).__name__}: {err}", err)
