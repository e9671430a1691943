"""Counting the callback's host syncs per hook: what the tests assert and the benchmarks print.

A read of a device tensor back to the host (``.item()``, ``.tolist()``, ``bool(t)``, ``torch.equal``, ...) stalls a
GPU's queue until the tensor is ready. The callback's per-batch hook must do none (a fixed number per run is
fine: the reduce, the views' gathers, one probe comparison). Two counters, one interface:

* :class:`HostReads` patches every Tensor-to-Python conversion and the comparisons that return Python bools while
  the callback's hooks run. It works on any device; on the CPU nothing stalls, but the same code paths run.
* :class:`CudaSyncs` counts the synchronizing CUDA calls themselves with ``torch.cuda.set_sync_debug_mode``
  (including copies to the host that no conversion shows), when CUDA is present.

Both key their counts by hook: ``"batch:<what>"`` in ``on_validation_batch_end``, ``"<what>"`` at the epoch end.

Examples:
    >>> import torch
    >>> reads = HostReads()
    >>> with reads.counting():
    ...     with reads.phase("batch"):
    ...         _ = torch.ones(2).sum().item()
    ...     _ = torch.ones(1).tolist()  # outside a phase: not counted
    >>> reads.counts
    {'batch:item': 1}
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

from lightning_cam.callbacks import cam as cam_module

__all__ = ["CONVERSIONS", "CudaSyncs", "HostReads", "watch_hooks"]

#: the Tensor methods that read a value back to the host
CONVERSIONS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero")
#: the torch functions that return a Python bool computed on the device
COMPARISONS = ("equal", "allclose")
#: the callback hooks watched, and the key prefix of their counts
HOOKS = {"on_validation_batch_end": "batch", "on_validation_epoch_end": "epoch"}


class _Counter:
    """Counts keyed by the current phase (``None``: not counting)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.current: str | None = None

    def add(self, what: str, n: int = 1) -> None:
        if self.current is not None:
            key = f"batch:{what}" if self.current == "batch" else what
            self.counts[key] = self.counts.get(key, 0) + n

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count as ``name`` (``"batch"`` or ``"epoch"``) inside the block."""
        previous, self.current = self.current, name
        try:
            yield
        finally:
            self.current = previous

    def per_batch(self, batches: int) -> float:
        """The per-batch reads, averaged over ``batches``."""
        return sum(v for k, v in self.counts.items() if k.startswith("batch:")) / max(1, batches)


class HostReads(_Counter):
    """Tensor-to-host conversions, counted per phase while :meth:`counting` is active."""

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        """Patch the conversions (restored on exit, whatever happens)."""
        originals: dict[tuple[Any, str], Any] = {(torch.Tensor, n): getattr(torch.Tensor, n) for n in CONVERSIONS}
        originals.update({(torch, n): getattr(torch, n) for n in COMPARISONS})

        def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.add(name)
                return fn(*args, **kwargs)

            return counted

        try:
            for (owner, name), fn in originals.items():
                setattr(owner, name, wrap(name, fn))
            yield
        finally:
            for (owner, name), fn in originals.items():
                setattr(owner, name, fn)


class CudaSyncs(_Counter):
    """Synchronizing CUDA calls, counted per phase with ``torch.cuda.set_sync_debug_mode("warn")`` (CUDA only):
    each warning that mode raises is one sync."""

    def __init__(self) -> None:
        super().__init__()
        self._caught: list[warnings.WarningMessage] | None = None

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        if not torch.cuda.is_available():
            raise RuntimeError("CudaSyncs needs CUDA; count with HostReads on the CPU.")
        previous = torch.cuda.get_sync_debug_mode()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._caught = caught
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode(previous)
                self._caught = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = 0 if self._caught is None else len(self._caught)
        with super().phase(name):
            try:
                yield
            finally:
                if self._caught is not None:
                    self.add("sync", sum("synchroniz" in str(w.message) for w in self._caught[start:]))


@contextlib.contextmanager
def watch_hooks(counter: HostReads | CudaSyncs) -> Iterator[None]:
    """Count in ``CAMCallback``'s batch hook (``"batch:..."``) and at its epoch end, for every callback instance
    (the class's hooks wrapped, restored on exit)."""
    originals = {hook: getattr(cam_module.CAMCallback, hook) for hook in HOOKS}

    def wrapped(hook: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            with counter.phase(HOOKS[hook]):
                return original(self, *args, **kwargs)

        return run

    try:
        for hook, original in originals.items():
            setattr(cam_module.CAMCallback, hook, wrapped(hook, original))
        with counter.counting():
            yield
    finally:
        for hook, original in originals.items():
            setattr(cam_module.CAMCallback, hook, original)
