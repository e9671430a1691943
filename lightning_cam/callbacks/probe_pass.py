"""The probe pass: each CAM run's maps of the fixed probe images, handed to the views as one `ProbeRecord` (the
grid view draws them, and the evolution image at the end of ``fit``; the drift view compares them).

Rank zero owns the probe set (`ProbeSet`) and the history of its maps; when the strategy shards the parameters,
every rank takes part in the forwards (rank zero's probe is broadcast once per run).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch

from lightning_cam.callbacks.faults import Faults, WarnOnce, short_probe
from lightning_cam.callbacks.images import explain_probe, explain_targets
from lightning_cam.callbacks.probe import History, ProbeRecord, ProbeSet, When, input_dtype
from lightning_cam.callbacks.probe_reuse import ProbeReuse
from lightning_cam.callbacks.progress import Progress
from lightning_cam.callbacks.runner import CAMRunner
from lightning_cam.methods import BaseCAM, CAMResult, ExtraInputs, MethodGroup
from lightning_cam.mixin import CAMMixin
from lightning_cam.targets.task import predicted_for

__all__ = ["ProbePass"]


class ProbePass:
    """The probe's maps at every CAM run (see the module docstring).

    Args:
        probe: the checkpointed probe images (captured on rank zero).
        history: the checkpointed probe maps of every recorded run (what the evolution image shows).
        faults: the callback's faults (a method that fails on the probe, a non-finite probe map).
        num_images: the probe size asked for (``0``: no probe).
        target: ``"pred"`` or ``"label"``, the class each map explains.

    Examples:
        >>> ProbePass(ProbeSet(capacity=4), History(), Faults("warn"), num_images=4, target="pred").num_images
        4
    """

    def __init__(self, probe: ProbeSet, history: History, faults: Faults, num_images: int, target: str) -> None:
        self.probe, self.history, self.faults = probe, history, faults
        self.num_images, self.target = num_images, target
        #: the probe's maps from the run's first scored batch, when it held the probe (no forward for the grids)
        self.reuse = ProbeReuse()

    def start(self, probe: ProbeSet, zero: bool) -> None:
        """A CAM run starts: its stage's probe set (rank zero compares it with the first scored batch)."""
        self.probe = probe
        self.reuse.start(probe if zero else None)

    def maps(self, trainer: Any, module: CAMMixin, runner: CAMRunner, when: When, record: bool, prefix: str,
             progress: Progress) -> ProbeRecord | None:
        """Every method's maps of the probe at ``when`` (added to the history when ``record``), as one
        [`ProbeRecord`][lightning_cam.callbacks.probe.ProbeRecord] on rank zero (``None`` elsewhere, and without
        a probe). On rank zero alone, or when sharded on every rank in lock-step from rank zero's probe images.
        The probe (kept in float32) is cast to the model's dtype; maps and display stay float32."""
        sharded, zero = runner.sharded, trainer.is_global_zero
        if (sharded is None and not zero) or runner.model is None:
            return None
        probe = (self.probe.images, self.probe.labels, self.probe.extra)
        if sharded is not None:  # every rank the same images (a collective: every rank calls it)
            probe = trainer.strategy.broadcast(probe, src=0)
        if probe[0] is None or not self.num_images:
            return None
        device = module.device  # type: ignore[attr-defined]
        task = module.cam_target_task()
        with runner.context(trainer):
            images = probe[0].to(device, input_dtype(runner.model)).clone()
            labels = None if probe[1] is None else probe[1].to(device).clone()
            extra = None if probe[2] is None else probe[2].apply(lambda t: t.to(device).clone())
            # a multi-label probe always explains its labels' pairs (fixed columns, see `explain_probe`)
            targets = labels if self.target == "label" or (labels is not None and labels.ndim == 2) else None
            display = module.cam_display(probe[0].to(device)).float().cpu()
            out = ProbeRecord(prefix, when, record, display, None if labels is None else labels.cpu(),
                              getattr(module, "cam_class_names", None), task, self.history)
            # unsharded: the scored pass's maps of the probe, else one shared pass of every method over it
            reused = self.reuse.results_for(int(images.shape[0]))
            shared = None if sharded is not None else reused or _shared(runner.cams, images, targets, extra)
            for name, cam in runner.cams.items():
                progress.step(f"CAM maps of the probe ({name})")
                work: Callable[[], Any]
                if zero:
                    work = functools.partial(self._method, out, name, cam, images, targets, extra,
                                             None if shared is None else shared.get(name))
                else:  # the same forwards; rank zero reports the probe's faults
                    work = functools.partial(_quiet, _explain, cam, images, targets, extra)
                runner.run(work, tuple(images.shape[1:]), cam, images.dtype)
        return out if zero else None

    def _method(self, out: ProbeRecord, name: str, cam: BaseCAM, images: torch.Tensor, targets: torch.Tensor | None,
                extra: ExtraInputs | None, result: CAMResult | None) -> None:
        """One method's probe maps into ``out`` (and the history, when recorded); a failure is a fault."""
        try:
            if result is None:
                result = explain_probe(cam, images, targets, extra)
            finite = bool(torch.isfinite(result.maps).all() and torch.isfinite(result.logits).all())
            if not finite:  # drawn as 0 in the grid; never compared (drift) nor shown as a real row (evolution)
                self.faults.record("nonfinite", f"{name}: non-finite probe map or logit at epoch {out.when.epoch}; "
                                   "the grid draws it as 0, drift and the evolution image leave this run out")
            preds = predicted_for(result.logits, result.targets, cam.task)
            if out.recorded and finite:
                self.history.add(name, out.when.row, result.maps.detach().float(), preds, epoch=out.when.epoch,
                                 step=out.when.step)
            out.results[name], out.preds[name] = result, preds
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self.faults.record("error", f"{name} probe grid raised {type(err).__name__}: {err}", err)

    def freeze(self, trainer: Any, warnings: WarnOnce) -> None:
        """After the first logged run the probe set is final; warn once if it is short of ``num_images``."""
        if self.probe.freeze() and self.probe.size < self.num_images and trainer.is_global_zero:
            warnings.warn("short_probe", short_probe(self.num_images, self.probe.size))


def _shared(cams: dict[str, BaseCAM], images: torch.Tensor, targets: torch.Tensor | None,
            extra: ExtraInputs | None) -> dict[str, CAMResult] | None:
    """Every method's probe maps from one shared pass, or ``None`` if it raised (each method then runs alone,
    a failing one a fault of its own). A multi-label probe without labels explains each image's top class
    (`explain_probe`)."""
    try:
        lead = next(iter(cams.values()))
        if targets is None and lead.task.several:
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
