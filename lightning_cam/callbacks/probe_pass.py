"""The probe pass: each CAM run's heatmap grids of the fixed probe images, and the evolution image at the end.

Rank zero owns the probe set (`ProbeSet`) and renders; when the strategy
shards the parameters, every rank takes part in the forwards (rank zero's probe is broadcast once per run).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch

from lightning_cam.callbacks.faults import WarnOnce, short_probe
from lightning_cam.callbacks.images import ProbeImages, explain_probe, explain_targets
from lightning_cam.callbacks.probe import History, ProbeSet, When, input_dtype
from lightning_cam.callbacks.probe_reuse import ProbeReuse
from lightning_cam.callbacks.progress import Progress
from lightning_cam.callbacks.runner import CAMRunner
from lightning_cam.callbacks.sinks import image_sinks
from lightning_cam.methods import BaseCAM, CAMResult, ExtraInputs, MethodGroup
from lightning_cam.mixin import CAMMixin
from lightning_cam.targets.task import check_task
from lightning_cam.utilities.lightning import scalar_step

__all__ = ["ProbePass"]


class ProbePass:
    """Grids of the probe set at every CAM run and the evolution image at the end of ``fit``.

    Args:
        probe: the checkpointed probe images (captured on rank zero).
        history: the checkpointed probe maps of every recorded run (what the evolution image shows).
        images: renders and sends the images (every failure a fault).
        num_images: the probe size asked for (``0``: no images).
        target: ``"pred"`` or ``"label"``, the class each map explains.

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> images = ProbeImages("jet", 0.5, 32, Faults("warn"))
        >>> ProbePass(ProbeSet(capacity=4), History(), images, num_images=4, target="pred").num_images
        4
    """

    def __init__(self, probe: ProbeSet, history: History, images: ProbeImages, num_images: int, target: str) -> None:
        self.probe, self.history, self.images = probe, history, images
        self.num_images, self.target = num_images, target
        #: the probe's maps from the run's first scored batch, when it held the probe (no forward for the grids)
        self.reuse = ProbeReuse()

    def start(self, probe: ProbeSet, zero: bool) -> None:
        """A CAM run starts: its stage's probe set (rank zero compares it with the first scored batch)."""
        self.probe = probe
        self.reuse.start(probe if zero else None)

    def grids(self, trainer: Any, module: CAMMixin, runner: CAMRunner, when: When, record: bool, prefix: str,
              progress: Progress) -> None:
        """The probe grid of every method at ``when`` (recorded in the history when ``record``): on rank zero
        alone, or when sharded on every rank in lock-step from rank zero's probe images, only rank zero
        rendering. The probe (kept in float32) is cast to the model's dtype; maps and display stay float32."""
        sharded, zero = runner.sharded, trainer.is_global_zero
        if (sharded is None and not zero) or runner.model is None:
            return
        probe = (self.probe.images, self.probe.labels, self.probe.extra)
        if sharded is not None:  # every rank the same images (a collective: every rank calls it)
            probe = trainer.strategy.broadcast(probe, src=0)
        if probe[0] is None or not self.num_images:
            return
        sinks = image_sinks(trainer) if zero else []
        device = module.device  # type: ignore[attr-defined]
        with runner.context(trainer):
            images = probe[0].to(device, input_dtype(runner.model)).clone()
            labels = None if probe[1] is None else probe[1].to(device).clone()
            extra = None if probe[2] is None else probe[2].apply(lambda t: t.to(device).clone())
            # a multi-label probe always explains its labels' pairs (fixed columns, see `explain_probe`)
            targets = labels if self.target == "label" or (labels is not None and labels.ndim == 2) else None
            display = module.cam_display(probe[0].to(device)).float().cpu()
            names = getattr(module, "cam_class_names", None)
            # unsharded: the scored pass's maps of the probe, else one shared pass of every method over it
            reused = self.reuse.results_for(int(images.shape[0]))
            shared = None if sharded is not None else reused or _shared(runner.cams, images, targets, extra)
            for name, cam in runner.cams.items():
                progress.step(f"CAM probe grid of {name}")
                work: Callable[[], Any]
                if zero:
                    work = functools.partial(self.images.grid, name, cam, images, targets, display, labels, names,
                                             when, sinks, self.history if record else None, prefix=prefix,
                                             extra=extra, result=None if shared is None else shared.get(name))
                else:  # the same forwards; rank zero reports the probe's faults
                    work = functools.partial(_quiet, _explain, cam, images, targets, extra)
                runner.run(work, tuple(images.shape[1:]), cam, images.dtype)

    def freeze(self, trainer: Any, warnings: WarnOnce) -> None:
        """After the first logged run the probe set is final; warn once if it is short of ``num_images``."""
        if self.probe.freeze() and self.probe.size < self.num_images and trainer.is_global_zero:
            warnings.warn("short_probe", short_probe(self.num_images, self.probe.size))

    def evolution(self, trainer: Any, module: CAMMixin, methods: tuple[str, ...], prefix: str = "cam") -> None:
        """Rank zero, end of ``fit``: each method's evolution image to every sink, kept as a file by each."""
        sinks = image_sinks(trainer)
        display = module.cam_display(self.probe.inputs(torch.device("cpu"))).float().cpu()
        task, labels = check_task(getattr(module, "cam_task", None)), self.probe.labels
        pairs = None if labels is None else task.target.pairs(labels, lambda: labels)  # the labels' own pairs
        if pairs is not None:  # one column per (image, label) pair
            display = display[pairs[0]]
        for name in methods:
            self.images.evolution(name, self.history, display, sinks, scalar_step(trainer), prefix)


def _shared(cams: dict[str, BaseCAM], images: torch.Tensor, targets: torch.Tensor | None,
            extra: ExtraInputs | None) -> dict[str, CAMResult] | None:
    """Every method's probe maps from one shared pass, or ``None`` if it raised (each method then runs alone,
    a failing one a fault of its own). A multi-label probe without labels explains each image's top class
    (`explain_probe`)."""
    try:
        lead = next(iter(cams.values()))
        if targets is None and lead.task.multilabel:
            targets = explain_targets(lead, images, extra)
        return MethodGroup(cams).explain(images, targets, extra=extra if extra else None)
    except Exception:  # noqa: BLE001 - each method alone reports (or raises) its own fault
        return None


def _explain(cam: BaseCAM, images: torch.Tensor, targets: torch.Tensor | None, extra: ExtraInputs | None) -> None:
    """The probe's forwards on a rank that does not render (`explain_probe`, the result dropped)."""
    explain_probe(cam, images, targets, extra)


def _quiet(fn: Callable[..., Any], *args: Any) -> None:
    """``fn(*args)``, an exception ignored (another rank reports it)."""
    with contextlib.suppress(Exception):
        fn(*args)
