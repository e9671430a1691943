"""``Stopwatch``: the seconds of each part of a piece of work, timed where the work is done.

A part is opened with `timed` anywhere in the code (``with timed("views/strategies"):``); it is charged to the
stopwatch that is *running* at that moment (`Stopwatch.running`), and costs nothing when none is (one context
variable read). Time is *exclusive*: a part opened inside another is charged to itself only, so the parts of one
run add up to its total and each figure says where the seconds went (a view's drawing in the view, its PNG
encoding in ``encode``).

On a GPU the host returns before the device has done its work, so a part's seconds would be charged to whichever
later part waits for the device; a stopwatch made with ``sync=True`` synchronizes the device at every part's
boundaries (true figures, a slower run: for measuring, never the default).

Examples:
    >>> watch = Stopwatch()
    >>> with watch.running():
    ...     with timed("outer"):
    ...         with timed("inner"):
    ...             pass
    >>> sorted(watch.seconds)  # "other": the time outside any named part
    ['inner', 'other', 'outer']
    >>> watch.total >= watch.seconds["inner"]
    True
    >>> with timed("nobody listens"):  # no stopwatch running: nothing is recorded
    ...     pass
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

__all__ = ["Stopwatch", "timed"]

_RUNNING: ContextVar[Stopwatch | None] = ContextVar("lightning_cam_stopwatch", default=None)


def _device_sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class Stopwatch:
    """Exclusive seconds per part (see the module docstring).

    Args:
        enabled: ``False``: `running` times nothing (a stopwatch that is always there, on or off).
        sync: synchronize the accelerator at every part's boundaries (CUDA; a no-op on the CPU), so that the
            device's work is charged to the part that queued it.

    Attributes:
        seconds: part name -> seconds, summed over every time the part was opened since `reset`.
        calls: part name -> how many times it was opened.
    """

    def __init__(self, enabled: bool = True, sync: bool = False) -> None:
        self.enabled = enabled
        self.sync: Callable[[], None] = _device_sync if sync else (lambda: None)
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[str] = []
        self._since = 0.0

    @property
    def total(self) -> float:
        """Seconds over all parts."""
        return sum(self.seconds.values())

    def reset(self) -> None:
        """Forget every figure (a new run)."""
        self.seconds, self.calls = {}, {}

    def _charge(self, now: float) -> None:
        if self._stack:
            part = self._stack[-1]
            self.seconds[part] = self.seconds.get(part, 0.0) + (now - self._since)
        self._since = now

    @contextmanager
    def running(self, part: str = "other") -> Iterator[Stopwatch]:
        """Charge the `timed` parts opened inside to this stopwatch; time outside any of them goes to ``part``
        (nothing when not `enabled`)."""
        if not self.enabled:
            yield self
            return
        token = _RUNNING.set(self)
        try:
            with self.part(part):
                yield self
        finally:
            _RUNNING.reset(token)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Time ``name`` on this stopwatch (exclusive of the parts opened inside it)."""
        self.sync()
        self._charge(time.perf_counter())
        self._stack.append(name)
        self.calls[name] = self.calls.get(name, 0) + 1
        try:
            yield
        finally:
            self.sync()
            self._charge(time.perf_counter())
            self._stack.pop()


@contextmanager
def timed(part: str) -> Iterator[None]:
    """Charge the block to the running stopwatch as ``part``; nothing when no stopwatch runs."""
    watch = _RUNNING.get()
    if watch is None:
        yield
        return
    with watch.part(part):
        yield
