"""Rank-zero progress lines for the callback's CAM work: its time at every CAM run, lines during it when slow."""

from __future__ import annotations

import time
from collections.abc import Mapping

from lightning_cam.utilities.lightning import rank_zero_info

__all__ = ["Progress"]


class Progress:
    """Rank-zero progress lines for CAM work: the summary line (its time) at the end of every piece of work, and
    a line every ``interval`` seconds during it once it has taken longer than ``after`` seconds (at every `step`,
    ``enabled=True``; no line at all, ``enabled=False``). Only ``time.perf_counter`` is read: no effect on
    results.

    Lines are ``[lightning_cam] <message> (<elapsed>s)`` from `step` and
    ``[lightning_cam] <message> in <elapsed>s`` from `done`, through ``rank_zero_info``.

    Examples:
        >>> p = Progress(enabled=False)
        >>> p.active
        False
        >>> Progress(enabled=True).active
        True
        >>> Progress(enabled=None, after=3600.0).active  # quiet until the work has taken an hour
        False
    """

    def __init__(self, enabled: bool | None, after: float = 10.0, interval: float = 30.0) -> None:
        self.enabled = enabled
        self.after = after
        self.interval = interval
        self.start = time.perf_counter()
        self.last = self.start

    def restart(self) -> None:
        """Start timing a new piece of work (an epoch's CAM work)."""
        self.start = self.last = time.perf_counter()

    @property
    def elapsed(self) -> float:
        """Seconds since `restart` (or construction)."""
        return time.perf_counter() - self.start

    @property
    def active(self) -> bool:
        """Whether lines are printed now: always with ``enabled=True``, once past ``after`` seconds with
        ``enabled=None``, never with ``enabled=False``."""
        return self.enabled is True or (self.enabled is None and self.elapsed >= self.after)

    def step(self, message: str) -> None:
        """A progress line, at most one per ``interval`` seconds (every call with ``enabled=True``)."""
        now = time.perf_counter()
        if self.active and (self.enabled is True or now - self.last >= self.interval):
            self.last = now
            rank_zero_info(f"[lightning_cam] {message} ({self.elapsed:.1f}s)")

    def done(self, message: str, parts: Mapping[str, float] | None = None) -> None:
        """The summary line of the work: every time, unless ``enabled=False`` (so every CAM run reports its
        time, the short ones too); with ``parts`` (seconds per part), the costliest ones after it."""
        if self.enabled is False:
            return
        line = f"[lightning_cam] {message} in {self.elapsed:.1f}s"
        if parts:
            top = sorted(parts.items(), key=lambda kv: -kv[1])[:8]
            line += ": " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in top)
        rank_zero_info(line)
