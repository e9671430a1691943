r"""Lock-step forwards for CAM work when a model's parameters are sharded across ranks.

Under FSDP, FSDP2 (``fully_shard``) or DeepSpeed ZeRO stage 3 every forward gathers the parameters from all
ranks, so every rank must make the same forwards in the same order: a rank that makes one forward fewer
leaves the others waiting forever. CAM work is data dependent (the number of Score-CAM chunks depends on the
live channels, a batch can be empty on one rank, a method can raise on one rank only), so the ranks agree as
they go, with one rule:

**Every forward of the CAM model, on every rank, is one round of the protocol.** A *round* is one
``all_reduce(MAX)`` of a small message ``[kind, a, b, failed, layer]`` taken by every rank:

* a rank about to run a forward sends ``FORWARD`` (``FORWARD_GRAD`` when the forward is followed by a
  backward to the target layer, with the layer's index among the method's several target layers): a forward
  pre-hook on the CAM model, run before the parameters are gathered;
* a rank entering a chunked loop sends ``PLAN`` with its item count and chunk size (`chunk_plan`): all
  planning ranks get the same chunk size (the smallest) and the same number of forwards (the largest), and
  pad with throw-away forwards;
* a rank whose step is over (finished, failed, or had nothing to do) sends ``DONE`` from `LockStep.step`.

The largest kind decides the round: if some rank forwards, every rank that did not mean to forward runs a
throw-away forward of the same kind on a one-image dummy input and then repeats its own round; if some rank
plans and none forwards, the non-planners repeat theirs; when every rank is ``DONE`` the step is over and
all ranks know whether any rank failed (``on_error="raise"`` then raises on all of them). So a rank that
raised before its forward, had nothing left to score, or backed off to smaller chunks after running out of
memory, still takes part in every forward of the others.

**A forward that fails between the parameter gathers of its layers** leaves the sharding library's own
collectives out of step: the other ranks wait in a gather this rank will never make. No callback can pair
them again, but none may leave the run hanging until the process group's timeout (30 minutes by default)
either. So the rounds run on a process group of their own (gloo, CPU messages) with a short timeout
(`round_timeout`, ``LIGHTNING_CAM_ROUND_TIMEOUT`` seconds, default 300): when a rank's round times out
or fails, it aborts the default process group, so that every rank stuck in a sharded collective fails at
once, and raises `LockStepBroken` naming its rank and its own failure; a rank whose collective failed
that way raises it too, saying that another rank stopped. A failure that left the ranks in step (e.g. an
out-of-memory error before the first gather) is paired by the next round as before.

Outside `LockStep.step` (one process, DDP, no sharding) the module-level hooks are no-ops:
`chunk_plan` returns the local plan.

Examples:
    >>> chunk_plan(10, 4)  # no lock-step in force: the local plan, (chunk, number of chunks)
    (4, 3)
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lightning_cam.utilities.outputs import select_logits

__all__ = [
    "DONE",
    "FORWARD",
    "FORWARD_GRAD",
    "PLAN",
    "LockStep",
    "LockStepBroken",
    "StepFailed",
    "abort_default_group",
    "chunk_plan",
    "protocol_reduce",
    "release_at_exit",
    "release_protocol_groups",
    "round_timeout",
]

DONE, PLAN, FORWARD, FORWARD_GRAD = 1.0, 2.0, 3.0, 4.0

_CURRENT: ContextVar[LockStep | None] = ContextVar("lightning_cam_lockstep", default=None)

Reduce = Callable[[Tensor], Tensor]


def chunk_plan(items: int, chunk: int) -> tuple[int, int]:
    """``(chunk, number of chunks)`` for a loop over ``items`` items in chunks of at most ``chunk``.

    Inside a lock-step (sharded CAM work), every rank gets the smallest chunk size and the largest number of
    chunks of all ranks; a rank pads its loop with throw-away forwards (see `lightning_cam.utilities.
    lockstep`). Outside, ``(chunk, ceil(items / chunk))``.

    Examples:
        >>> chunk_plan(0, 8), chunk_plan(17, 8)
        ((8, 0), (8, 3))
    """
    chunk = max(1, int(chunk))
    current = _CURRENT.get()
    if current is None:
        return chunk, math.ceil(max(0, items) / chunk)
    return current.plan(items, chunk)


class StepFailed(RuntimeError):
    """Raised on every rank after a lock-step step in which another rank failed (``on_error="raise"``)."""


class LockStepBroken(RuntimeError):
    """Raised on a rank whose lock-step round timed out or failed: the ranks' sharded collectives can no longer
    be paired, so the run stops on every rank (see the module docstring)."""


def round_timeout() -> datetime.timedelta:
    """How long a rank waits in one lock-step round: ``LIGHTNING_CAM_ROUND_TIMEOUT`` seconds (default 300),
    far below a process group's usual timeout (30 minutes) and far above one forward of a model.

    Examples:
        >>> round_timeout().total_seconds() > 0
        True
    """
    seconds = float(os.environ.get("LIGHTNING_CAM_ROUND_TIMEOUT", "300"))
    if not seconds > 0:
        raise ValueError(f"LIGHTNING_CAM_ROUND_TIMEOUT must be a number of seconds > 0, got {seconds!r}.")
    return datetime.timedelta(seconds=seconds)


_GROUPS: dict[tuple[int, float], Any] = {}


def protocol_reduce() -> Reduce:
    """``all_reduce(MAX)`` of the rounds on a gloo process group of their own with `round_timeout`
    (created once per default group and timeout, a collective: every rank calls this together)."""
    timeout = round_timeout()
    key = (id(dist.group.WORLD), timeout.total_seconds())
    if key not in _GROUPS:
        _GROUPS[key] = dist.new_group(backend="gloo", timeout=timeout)
    group = _GROUPS[key]

    def reduce(t: Tensor) -> Tensor:
        cpu = t.detach().to("cpu", copy=True)
        dist.all_reduce(cpu, op=dist.ReduceOp.MAX, group=group)
        return cpu

    return reduce


def release_protocol_groups() -> None:
    """Destroy the protocol groups of `protocol_reduce` (a local step on each rank, not a collective): called when
    the trainer is done with the callback, so that no group of ours outlives the run.

    Examples:
        >>> release_protocol_groups()  # nothing to release outside a process group
    """
    groups = list(_GROUPS.values())
    _GROUPS.clear()
    for group in groups:
        with contextlib.suppress(Exception):  # already gone with its default group
            dist.destroy_process_group(group)


def _release_at_exit() -> None:
    release_protocol_groups()
    with contextlib.suppress(Exception):
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


_EXIT_HOOK: list[bool] = []


def release_at_exit() -> None:
    """Destroy every process group while the interpreter is still whole, at its exit (registered once, by a
    callback that ran on several ranks).

    Why: a gloo process group left for the interpreter's finalization can abort the process after a successful
    run (``terminate called without an active exception``, exit -6): its C++ worker threads may still hold work
    objects with tensors that Python owns, and releasing them while the interpreter is torn down aborts
    (pytorch/pytorch#179291). Lightning destroys NCCL groups at exit but not gloo ones; this hook does, for
    every backend, after the user's own code has finished (a group already destroyed is skipped)."""
    if not _EXIT_HOOK:
        atexit.register(_release_at_exit)
        _EXIT_HOOK.append(True)


def abort_default_group() -> None:
    """Abort the default process group (every rank waiting in one of its collectives fails at once) and
    forget the protocol groups. Used only when the ranks can no longer be paired."""
    _GROUPS.clear()
    with contextlib.suppress(Exception):
        abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
        if abort is not None:
            abort()
            return
    with contextlib.suppress(Exception):
        dist.destroy_process_group()


class LockStep:
    """The protocol above for one CAM model; ``reduce`` is ``all_reduce(MAX)`` of a 1-D float64 tensor.

    Args:
        model: the module every CAM forward goes through (``pl_module.cam_model()``).
        reduce: takes a ``(5,)`` tensor, returns its element-wise maximum over ranks (a collective).
        device: where the message tensors live (the CPU for gloo, the rank's GPU for NCCL).

    Example (one process: ``reduce`` is the identity):
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> lock = LockStep(net, lambda t: t, torch.device("cpu"))
        >>> with lock.attached():
        ...     failed = lock.step(lambda: net(torch.zeros(2, 3, 8, 8)), dummy_shape=(3, 8, 8))
        >>> failed, lock.rounds
        (False, 2)
    """

    def __init__(self, model: nn.Module, reduce: Reduce, device: torch.device) -> None:
        self.model = model
        self.reduce = reduce
        self.device = device
        #: the method's target layers (several: each capture forward says which one, so a joining rank's
        #: throw-away backward runs through the same modules)
        self.target_layers: tuple[nn.Module, ...] = ()
        self.needs_grad = False
        self.rounds = 0
        self._shape: tuple[int, ...] = ()
        self._dtype = torch.float32
        self._base_hooks: tuple[int, ...] = ()
        self._idle = False  # inside a throw-away forward: the pre-hook stays quiet
        self.rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        #: what this rank knows of its own failure, for the message when the lock-step breaks
        self.forward_error: str | None = None
        self.describe: Callable[[], str | None] | None = None

    # ------------------------------------------------------------------ rounds
    def _round(self, kind: float, a: float = 0.0, b: float = 0.0, failed: bool = False, layer: int = 0
               ) -> list[float]:
        """One round: ``[kind, a, b, failed, layer]`` reduced by maximum (``layer``: 1 + the index of the target
        layer a capture forward hooks, 0 otherwise)."""
        self.rounds += 1
        message = torch.tensor([kind, a, b, float(failed), float(layer)], dtype=torch.float64, device=self.device)
        return self.exchange(message)

    def exchange(self, message: Tensor) -> list[float]:
        """The element-wise maximum of ``message`` over the ranks (a collective); a timeout or a peer gone
        aborts the default group and raises `LockStepBroken` (see the module docstring)."""
        try:
            return [float(v) for v in self.reduce(message).cpu().tolist()]
        except Exception as err:
            raise self._broken(err) from err

    def _broken(self, err: BaseException) -> LockStepBroken:
        """Abort the default group (no rank waits for its timeout) and the error this rank raises."""
        abort_default_group()
        rank = self.rank
        # a round that timed out: this rank arrived and the others did not (they wait in a sharded collective);
        # any other failure: a peer left (it aborted the group, or crashed)
        timed_out = "timed out" in str(err).lower() or "timeout" in type(err).__name__.lower()
        own = (self.forward_error or (self.describe() if self.describe is not None else None)) if timed_out else None
        if own:
            why = (f"this rank's CAM work failed ({own}), most likely inside a sharded forward, between the "
                   "parameter gathers of its layers, so the other ranks wait in a gather it never makes")
        elif timed_out:
            why = (f"the other ranks did not reach the round within {round_timeout().total_seconds():.0f} s "
                   "(LIGHTNING_CAM_ROUND_TIMEOUT): they wait in a sharded collective this rank will not make")
        else:
            why = ("another rank stopped the CAM lock-step (its own error, with its rank, is in its log): the "
                   "process group was aborted so that no rank waits for its timeout")
        return LockStepBroken(
            f"CAMCallback on rank {rank}: the lock-step of the sharded CAM work broke ({type(err).__name__}: "
            f"{str(err)[:300]}): {why}. The sharded collectives cannot be paired again, so the run stops on every "
            "rank (on_error='warn' cannot skip this). Fix the failure above, or leave this model's CAM work off "
            "(CAMCallback(stages=()))."
        )

    def _pay(self, kind: float, layer: float = 0.0) -> None:
        """A throw-away forward of ``kind`` on a one-image zero input (the agreed shape and dtype), results
        discarded. An exception is kept for the message, not raised: this rank must stay in the protocol (if the
        failure left the collectives out of step, the next round times out and says why)."""
        x = torch.zeros((1, *self._shape), device=self.device, dtype=self._dtype)
        self._idle = True
        try:
            with torch.inference_mode(False):
                index = int(layer) - 1
                if kind == FORWARD_GRAD and 0 <= index < len(self.target_layers):
                    self._grad_forward(x, self.target_layers[index])
                else:
                    with torch.no_grad():
                        self.model(x)
        except Exception as err:  # noqa: BLE001 - see the docstring; a desync shows as a round timeout
            self.forward_error = f"a throw-away forward of shape {tuple(x.shape)} raised {type(err).__name__}: {err}"
        finally:
            self._idle = False

    def _grad_forward(self, x: Tensor, target_layer: nn.Module) -> None:
        store: list[Tensor] = []

        def hook(module: nn.Module, args: object, output: object) -> Tensor | None:
            if not isinstance(output, Tensor) or store:
                return None
            act = output.detach().requires_grad_(True)
            store.append(act)
            torch.set_grad_enabled(True)
            return act.clone()

        handle = target_layer.register_forward_hook(hook)
        try:
            with torch.no_grad():
                logits = self.model(x)
                with contextlib.suppress(TypeError):  # a ModelOutput or a {"logits": ...} mapping
                    logits = select_logits(logits)
                if store and isinstance(logits, Tensor) and logits.requires_grad:
                    torch.autograd.grad(logits.float().sum(), store[0], allow_unused=True)
        finally:
            handle.remove()

    def _forward_kind(self) -> tuple[float, int]:
        """``(kind, 1 + the index of the hooked target layer or 0)``: the method's own hook on a target layer marks
        a capture forward (a layer may carry others, e.g. FSDP's)."""
        for i, (layer, base) in enumerate(zip(self.target_layers, self._base_hooks)):
            if len(layer._forward_hooks) > base:
                return (FORWARD_GRAD, i + 1) if self.needs_grad else (FORWARD, 0)
        return FORWARD, 0

    def _pre_hook(self, module: nn.Module, args: object) -> None:
        if self._idle or _CURRENT.get() is not self:
            return
        # one round; its maximum is at least this rank's FORWARD, so every other rank forwards now too: for
        # real, or a throw-away forward from its PLAN or DONE round
        kind, layer = self._forward_kind()
        self._round(kind, layer=layer)

    def plan(self, items: int, chunk: int) -> tuple[int, int]:
        """The agreed ``(chunk, number of chunks)`` (see `chunk_plan`)."""
        chunk = max(1, int(chunk))
        while True:
            top, most, neg_chunk, _, layer = self._round(PLAN, max(0, items), -chunk)
            if top >= FORWARD:
                self._pay(top, layer)
                continue
            if top < PLAN:  # cannot happen (this rank plans); kept so that a bug shows as an error, not a hang
                raise RuntimeError("lightning_cam lock-step: a PLAN round ended without a plan")
            agreed = max(1, int(-neg_chunk))  # the smallest chunk; enough chunks for the largest share
            return agreed, math.ceil(int(most) / agreed)

    # ------------------------------------------------------------------ steps
    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        """The forward pre-hook on `model` while CAM work runs (run before the sharding library's own
        pre-hooks, so that a round is never paired with a parameter gather)."""
        handle = self.model.register_forward_pre_hook(self._pre_hook, prepend=True)
        try:
            yield
        finally:
            handle.remove()

    def step(
        self,
        work: Callable[[], object] | None,
        dummy_shape: tuple[int, ...],
        target_layer: nn.Module | Sequence[nn.Module] | None = None,
        needs_grad: bool = False,
        dummy_dtype: torch.dtype = torch.float32,
    ) -> bool:
        """Run ``work`` (``None``: this rank has nothing to do) in lock-step with the other ranks; return
        whether it failed on any rank. An exception of ``work`` is re-raised here, after the step, on this
        rank; what the other ranks do with the returned flag is the caller's policy (the callback raises
        `StepFailed` under ``on_error="raise"``).

        ``dummy_shape`` is ``(C, H, W)`` of the throw-away inputs; ``target_layer`` (the method's layer, or its
        several layers) and ``needs_grad`` tell which forwards are followed by a backward to which layer.
        """
        self._shape, self._dtype = tuple(int(s) for s in dummy_shape), dummy_dtype
        layers = () if target_layer is None else (target_layer,) if isinstance(target_layer, nn.Module) \
            else tuple(target_layer)
        self.target_layers, self.needs_grad = layers, needs_grad
        self._base_hooks = tuple(len(layer._forward_hooks) for layer in layers)
        error: BaseException | None = None
        token = _CURRENT.set(self)
        try:
            if work is not None:
                try:
                    work()
                except Exception as err:  # noqa: BLE001 - re-raised below, once the other ranks are done
                    error = err
                    self.forward_error = f"{type(err).__name__}: {err}"
            while True:  # DONE rounds: pay the forwards of the ranks still working
                top, _, _, failed, layer = self._round(DONE, failed=error is not None)
                if top >= FORWARD:
                    self._pay(top, layer)
                elif top <= DONE:
                    break
        finally:
            _CURRENT.reset(token)
        if error is not None:
            raise error
        return failed > 0

