"""Which ranks run the callback's forwards, and the lock-step glue of sharded runs.

When the strategy shards the parameters ([`params_sharded`][lightning_cam.callbacks.distributed.params_sharded]:
``ModelParallelStrategy`` (FSDP2
``fully_shard``), ``FSDPStrategy``, ``DeepSpeedStrategy`` with ZeRO stage 3, of ``pytorch_lightning`` or
``lightning.pytorch``), every forward gathers parameters from all ranks, so the callback runs its CAM work
through `LockStep` (the rule is documented there): every batch's
methods on every rank (a rank with nothing to score joins the others' forwards), the probe grids on every rank
(rank zero's probe images broadcast; only rank zero renders and logs). Under DDP or one process the probe
grids stay on rank zero alone and no extra collective is made.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
from torch import Tensor, nn

from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.layers import NotExplainable
from lightning_cam.record import CAMBatch
from lightning_cam.utilities.lightning import classes
from lightning_cam.utilities.lockstep import LockStep, StepFailed, protocol_reduce
from lightning_cam.utilities.stopwatch import timed

__all__ = ["INPUT_DTYPES", "ShardedWork", "all_gather_objects", "all_gather_rows", "params_sharded",
           "sharded_strategy_types"]

#: the floating dtypes a model input can have, in the order the ranks' agreement encodes them.
INPUT_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def all_gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` (picklable), in rank order: ``[obj]`` outside a process group. A collective: every
    rank calls it (the callback does so only when the summed fault counts, equal on every rank, say so).

    Examples:
        >>> all_gather_objects({"error": "boom"})  # one process
        [{'error': 'boom'}]
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [obj]
    out: list[object] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def all_gather_rows(trainer: Any, rows: Tensor) -> Tensor:
    """Every rank: all ranks' ``(n_r, width)`` rows, in rank order, on the CPU. Two collectives through
    ``trainer.strategy.all_gather`` (the counts, then the rows padded to the largest count), whatever each rank
    holds (none included).

    Examples:
        >>> from types import SimpleNamespace
        >>> one = SimpleNamespace(world_size=1, strategy=SimpleNamespace(all_gather=lambda t: t))
        >>> all_gather_rows(one, torch.ones(2, 3, dtype=torch.uint8)).shape
        torch.Size([2, 3])
    """
    world = max(1, int(trainer.world_size))
    if world == 1:  # nothing to exchange: no padded copy
        with timed("gather"):
            return rows.cpu()
    with torch.inference_mode(False), timed("gather"):
        counts = trainer.strategy.all_gather(torch.tensor([rows.shape[0]], device=rows.device)).reshape(-1)
        top = int(counts.max())
        padded = rows.new_zeros((top, *rows.shape[1:]))
        padded[: rows.shape[0]] = rows
        everything = trainer.strategy.all_gather(padded).reshape(world, top, *rows.shape[1:]).cpu()
        return torch.cat([everything[r, : int(n)] for r, n in enumerate(counts.tolist())])


def sharded_strategy_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """``(always sharded, sharded at ZeRO stage 3)``: the strategy classes of every installed Lightning package
    (``pytorch_lightning`` and ``lightning.pytorch`` are distinct class hierarchies; see
    `lightning_cam.utilities.lightning.classes`)."""
    always = classes("strategies.FSDPStrategy") + classes("strategies.ModelParallelStrategy")
    return always, classes("strategies.DeepSpeedStrategy")


def params_sharded(strategy: object) -> bool:
    """Whether ``strategy`` shards the model's parameters, so that every forward needs every rank.

    ``FSDPStrategy`` and ``ModelParallelStrategy`` always count (lock-step is safe even when a configuration
    happens not to shard); ``DeepSpeedStrategy`` only at ZeRO stage 3 (stages 1-2 shard optimizer state and
    gradients, not the parameters a forward uses).

    Examples:
        >>> from pytorch_lightning.strategies import DDPStrategy, ModelParallelStrategy
        >>> params_sharded(ModelParallelStrategy()), params_sharded(DDPStrategy())
        (True, False)
    """
    always, stage3 = sharded_strategy_types()
    if isinstance(strategy, always):
        return True
    if isinstance(strategy, stage3):
        config = getattr(strategy, "config", None)
        zero = config.get("zero_optimization") if isinstance(config, dict) else None
        return isinstance(zero, dict) and int(zero.get("stage", 0)) == 3
    return False


class ShardedWork:
    """The callback's lock-step over ranks for one epoch of CAM work on ``model`` (see the module docstring).

    Args:
        model: ``pl_module.cam_model()``, the module every CAM forward goes through.
        device: the rank's device (message tensors and throw-away inputs live there).
        on_error: ``"raise"``: after a step in which any rank failed, every rank raises.
        reduce: ``all_reduce(MAX)`` of a 1-D tensor over ranks (default:
            `protocol_reduce`, bounded by a timeout).
        describe: this rank's first fault message (for the error when the lock-step breaks).
    """

    def __init__(self, model: nn.Module, device: torch.device, on_error: str,
                 reduce: Callable[[Tensor], Tensor] | None = None,
                 describe: Callable[[], str | None] | None = None) -> None:
        self.lock = LockStep(model, reduce or protocol_reduce(), device)
        self.lock.describe = describe
        self.on_error = on_error
        self.reduce = self.lock.reduce
        self.device = device

    def attached(self) -> contextlib.AbstractContextManager[None]:
        return self.lock.attached()

    def agree_inputs(self, shape: tuple[int, ...] | None, dtype: torch.dtype | None,
                     error: BaseException | None = None) -> tuple[tuple[int, ...], torch.dtype] | None:
        """One collective per validation batch: ``None`` when no rank has samples to score in it, else the
        ``(C, H, W)`` and the dtype of the throw-away inputs (the element-wise largest shape over the ranks with
        samples, and their inputs' dtype), so that a rank without samples feeds the sharded model what a real
        input would be, whatever the precision.

        ``error``: this rank could not unpack its batch under ``on_error="raise"``; it is raised here, after
        the collective, and every other rank raises `StepFailed`."""
        local = torch.zeros(6, dtype=torch.float64, device=self.device)
        if shape is not None:
            local[0] = 1.0
            local[1:4] = torch.tensor([float(s) for s in shape[:3]], dtype=torch.float64)
            local[5] = float(INPUT_DTYPES.index(dtype) + 1) if dtype in INPUT_DTYPES else 0.0
        local[4] = float(error is not None)
        agreed = self.lock.exchange(local)
        if error is not None:
            raise error
        if agreed[4] > 0:
            raise StepFailed("CAMCallback: cam_inputs(batch) failed on another rank (on_error='raise'); that rank "
                             "raised the error itself. Every rank stops so that none is left waiting.")
        if agreed[0] <= 0:
            return None
        code = int(agreed[5])
        return tuple(int(s) for s in agreed[1:4]), INPUT_DTYPES[code - 1] if code else torch.float32

    def choose_layers(self, cams: Mapping[str, Any], parts: CAMBatch | None, shape: tuple[int, ...],
                      dtype: torch.dtype) -> dict[str, str]:
        """The default-layer rule for every method still without a target layer, run on every rank in lock-step:
        the same images on every rank (the first two samples of the lowest rank that has any, gathered once), so
        every rank makes the same forwards and backwards and reaches the same choice. A collective: every rank
        calls it at the same batch (the methods are the same on every rank, and so is what is still unchosen).

        The rule is deterministic on equal inputs and weights; a choice that fails does so on every rank, and is
        remembered (`choose_target_layer` caches it), so the method's own step fails before any forward.

        Returns the methods that cannot explain this model (`NotExplainable`, the same on every rank), with why."""
        unchosen = {name: cam for name, cam in cams.items()
                    if getattr(cam, "auto_layer", False) and cam.target_layer is None}
        if not unchosen:
            return {}
        mine: tuple[Tensor, ExtraInputs] | None = None
        if parts is not None and parts.images.shape[0] > 0:
            picked = parts.take(torch.arange(min(2, int(parts.images.shape[0])), device=parts.images.device))
            mine = (picked.images.detach().cpu(), ExtraInputs.of(picked.extra).apply(lambda t: t.detach().cpu()))
        shared = cast(tuple[Tensor, ExtraInputs], next(s for s in all_gather_objects(mine) if s is not None))
        images, extra = shared
        x = images.to(self.device)
        more = extra.apply(lambda t: t.to(self.device))
        unexplained: dict[str, str] = {}
        for name, cam in unchosen.items():
            try:
                self.lock.step(functools.partial(cam.ensure_layer, x, more), shape, None, False, dtype)
            except NotExplainable as err:
                unexplained[name] = str(err)
            except Exception:  # noqa: BLE001 - failed alike on every rank; the method's own step reports it
                pass
        return unexplained

    def run(self, work: Callable[[], Any] | None, shape: tuple[int, ...], cam: Any,
            dtype: torch.dtype = torch.float32) -> None:
        """One method's step (``work=None``: nothing to do here, join the others' forwards). Under
        ``on_error="raise"`` a failure on any rank raises on every rank once all ranks are done."""
        layers = getattr(cam, "target_layers", None)
        if layers is None:  # a method that is not a BaseCAM: its one target layer, if any
            layer = getattr(cam, "target_layer", None)
            layers = () if layer is None else (layer,)
        failed = self.lock.step(work, shape, tuple(layers), bool(getattr(cam, "needs_grad", False)), dtype)
        if failed and self.on_error == "raise":
            raise StepFailed(
                f"CAMCallback: {type(cam).__name__} failed on another rank (on_error='raise'); that rank raised the "
                "error itself. Every rank stops so that none is left waiting in a sharded forward."
            )
