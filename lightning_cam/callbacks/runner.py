"""How the callback's CAM methods run: built once per model, inside the CAM context, alone or in lock-step.

The *CAM context* is what every CAM pass of the callback needs whatever the trainer does around it:
gradients on and inference mode off (validation runs without them), the trainer's precision (e.g. bf16
autocast), the model in eval mode with every module's own flag restored afterwards, compiled modules run
eagerly (so the target-layer hooks take effect), and, when the strategy shards the parameters, the
lock-step protocol attached (`lightning_cam.utilities.lockstep`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from lightning_cam.callbacks import options
from lightning_cam.callbacks.distributed import ShardedWork, params_sharded
from lightning_cam.callbacks.faults import Faults, WarnOnce
from lightning_cam.methods import BaseCAM
from lightning_cam.mixin import CAMMixin
from lightning_cam.utilities.compiled import eager_compiled
from lightning_cam.utilities.lockstep import release_at_exit
from lightning_cam.utilities.modes import eval_mode

__all__ = ["CAMRunner"]

#: one method's step on this rank (``None``: nothing to do here, the rank only joins the others' forwards)
Work = Callable[[], Any] | None


class CAMRunner:
    """The method objects of the module's ``cam_model()`` and how each step of CAM work runs.

    Args:
        classes: canonical method name -> method class (`resolve_methods`).
        method_kwargs: constructor arguments per canonical name.
        on_error: the fault policy, which the lock-step protocol applies on every rank.
        faults: the callback's faults (their first message names this rank's failure if the lock-step breaks).

    Examples:
        >>> from lightning_cam.methods import GradCAM
        >>> runner = CAMRunner({"gradcam": GradCAM}, {}, "warn")
        >>> runner.sharded is None, runner.cams
        (True, {})
    """

    def __init__(self, classes: Mapping[str, type[BaseCAM]], method_kwargs: Mapping[str, Mapping[str, Any]],
                 on_error: str, faults: Faults | None = None) -> None:
        self.classes = dict(classes)
        self.faults = faults
        self.method_kwargs = dict(method_kwargs)
        self.on_error = on_error
        self.cams: dict[str, BaseCAM] = {}
        #: methods left out of the run: they cannot explain this model (`drop`)
        self.dropped: dict[str, str] = {}
        self.model: nn.Module | None = None
        self.sharded: ShardedWork | None = None
        #: lock-step over ranks: ``None`` = when the strategy shards the parameters; ``True`` forces it (measuring)
        self.lockstep: bool | None = None

    def build(self, module: CAMMixin) -> None:
        """The method objects on ``module.cam_model()`` at ``module.cam_layer()`` (with the module's shared
        method arguments, e.g. its activation layout), rebuilt only when that model changes."""
        model = module.cam_model()
        if self.model is not model:  # another model: what could not explain the last one may explain this one
            self.dropped = {}
            if self.faults is not None:
                self.faults.unexplained = {}
            cams = options.build_methods(self.classes, model, module.cam_layer(), self.method_kwargs,
                                         module.cam_method_kwargs())
            self.cams, self.model = cams, model

    def drop(self, reasons: Mapping[str, str], warnings: WarnOnce) -> None:
        """Leave out of the run the methods of ``reasons`` (method -> why it cannot explain this model), with one
        warning each: no more work, faults or figures for them (a metric or view with nothing scored logs
        nothing). Under sharding every rank drops the same methods at the same batch (see `BatchPass`)."""
        for name, why in reasons.items():
            if name in self.cams:
                del self.cams[name]
                self.dropped[name] = why
                warnings.warn(f"unexplainable:{name}", f"CAMCallback: {name} is left out of this run: {why}")

    def unshardable(self) -> dict[str, str]:
        """The methods a sharded run leaves out (method -> why): their passes are not ones the lock-step can mirror
        on a rank with nothing to explain (`BaseCAM.unshardable` says what)."""
        return {name: (f"{type(cam).__name__}'s passes ({type(cam).unshardable}) cannot be mirrored by the ranks "
                       "with nothing to explain when the parameters are sharded (FSDP, FSDP2, ZeRO-3); run it under "
                       "DDP or on one device")
                for name, cam in self.cams.items() if type(cam).unshardable}

    def start(self, trainer: Any, device: torch.device, warnings: WarnOnce) -> None:
        """A CAM run starts: lock-step when the strategy shards the parameters over several ranks (every rank then
        leaves out the same `unshardable` methods, before any forward)."""
        lockstep = params_sharded(trainer.strategy) if self.lockstep is None else self.lockstep
        self.sharded = None
        if trainer.world_size > 1:
            release_at_exit()
        if lockstep and trainer.world_size > 1 and self.model is not None:
            faults = self.faults
            self.sharded = ShardedWork(self.model, device, self.on_error,
                                       describe=None if faults is None else (lambda: faults.first))
            self.drop(self.unshardable(), warnings)

    @contextlib.contextmanager
    def context(self, trainer: Any) -> Iterator[None]:
        """The CAM context (see the module docstring)."""
        modes = eval_mode(self.model) if self.model is not None else contextlib.nullcontext()
        lock = self.sharded.attached() if self.sharded is not None else contextlib.nullcontext()
        with torch.inference_mode(False), torch.enable_grad(), trainer.precision_plugin.forward_context(), modes, \
                eager_compiled(), lock:
            yield

    def run(self, work: Work, shape: tuple[int, ...], cam: BaseCAM, dtype: torch.dtype) -> None:
        """``work()`` (one method's step), in lock-step when sharded: a rank without work then runs matching
        throw-away forwards of ``shape`` inputs (without the batch dimension) until every rank is done."""
        if self.sharded is not None:
            self.sharded.run(work, shape, cam, dtype)
        elif work is not None:
            work()
