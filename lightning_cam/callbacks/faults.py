"""The callback's one fault path: the kinds of fault, the ``on_error`` policy, the report, warn-once, and the
texts of the callback's warnings.

Every fault of CAM work (a method or ``cam_inputs`` that raises, a non-finite map, logit or metric value, a
logger or file that cannot be written, a batch without the labels ``target='label'`` needs) goes through
`Faults.record`: with ``on_error="raise"`` it raises at once, with ``"warn"`` it is counted by kind and
the first message is kept for the report (`fault_report`), given once per epoch by the callback.
Per-batch tallies (`Faults.add`) stay on the device until the epoch end, so the validation loop is
never stalled by a device-to-host read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor

from lightning_cam.utilities.checks import check_on_error
from lightning_cam.utilities.lightning import rank_zero_warn

__all__ = [
    "FAULT_KINDS",
    "REPORTED_FIRSTS",
    "MISSING_LABELS",
    "FaultKind",
    "Faults",
    "OnError",
    "WarnOnce",
    "fault_report",
    "missing_masks",
    "short_probe",
    "stale_monitor",
]

#: ``error``: an exception in CAM work; ``nonfinite``: a NaN/inf map, logit or metric value (the samples are
#: left out); ``blank``: a constant map that explains nothing (left out, so it can never score like a real
#: map); ``logger``: an image that a logger or the file system did not take.
FAULT_KINDS: tuple[str, ...] = ("error", "nonfinite", "blank", "logger")
#: most (rank, kind) first messages a report names (the rest are counted).
REPORTED_FIRSTS = 8
FaultKind = Literal["error", "nonfinite", "blank", "logger"]
OnError = Literal["warn", "raise"]


class Faults:
    """Fault counts by kind and the first fault's message, under the ``on_error`` policy.

    Examples:
        >>> faults = Faults("warn")
        >>> faults.record("nonfinite", "gradcam: 1 sample(s) with a non-finite map or logit")
        >>> faults.record("error", "gradcam raised RuntimeError: boom", RuntimeError("boom"))
        >>> faults.counts, faults.first
        ({'error': 1, 'nonfinite': 1, 'blank': 0, 'logger': 0}, 'gradcam: 1 sample(s) with a non-finite map or logit')
        >>> Faults("raise").record("error", "gradcam raised RuntimeError: boom", RuntimeError("boom"))
        Traceback (most recent call last):
        ...
        RuntimeError: boom
    """

    def __init__(self, on_error: OnError) -> None:
        check_on_error(on_error)
        self.on_error: OnError = on_error
        self._counts: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self._first: str | None = None
        self._firsts: dict[str, str] = {}  # the first message of each kind on this rank
        self._shared: list[tuple[int, str, str]] = []  # (rank, kind, first message) of every rank, see `share`
        # per-batch tallies still on the device: (kind, count tensor, message, parts tensor or None); see `add`
        self._pending: list[tuple[str, Tensor, Callable[..., str], Tensor | None]] = []
        #: methods that cannot explain this model at all (`unexplainable`), with why: kept across epochs
        self.unexplained: dict[str, str] = {}

    def reset(self) -> None:
        """Forget the counts and the first message (at the start of each epoch's work)."""
        self._counts = dict.fromkeys(FAULT_KINDS, 0)
        self._first = None
        self._firsts, self._shared = {}, []
        self._pending = []

    def record(self, kind: FaultKind, detail: str, err: BaseException | None = None, fatal: bool = True) -> None:
        """One fault: re-raise ``err`` (or ``RuntimeError("CAMCallback: <detail>")`` without one) under
        ``on_error="raise"``; else count it and keep ``detail`` if it is the first. ``fatal=False`` marks a
        fault that describes the model rather than a failure (some blank maps of an untrained model): it is
        counted and reported under either policy."""
        if kind not in self._counts:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {list(FAULT_KINDS)}.")
        if self.on_error == "raise" and fatal:
            if err is not None:
                raise err
            raise RuntimeError(f"CAMCallback: {detail}")
        self._settle()  # keep the order of events: earlier device tallies come first
        self._note(kind, detail)

    def unexplainable(self, method: str, err: BaseException) -> None:
        """``method`` cannot explain this model at all (`NotExplainable`: no layer with spatial positions): raised
        under ``on_error="raise"``; else kept in `unexplained` (not counted: the callback leaves the method out
        of the run with one warning, instead of a fault at every batch).

        Examples:
            >>> faults = Faults("warn")
            >>> faults.unexplainable("gradcam", ValueError("MLP has no layer with a spatial output"))
            >>> faults.unexplained, faults.total
            ({'gradcam': 'MLP has no layer with a spatial output'}, 0)
        """
        if self.on_error == "raise":
            raise err
        self.unexplained.setdefault(method, str(err))

    def add(
        self, kind: FaultKind, count: Tensor, message: Callable[..., str], fatal: Callable[[int], bool] | None = None,
        parts: Tensor | None = None,
    ) -> None:
        """A per-batch tally kept on the device: a fault of ``kind`` when ``count`` (a 0-d integer tensor, e.g.
        the number of bad samples of a batch) is non-zero, reported as ``message(count)``; with ``parts`` (a 1-d
        integer tensor, e.g. the bad samples per metric), as ``message(count, parts)`` (``parts`` as a list).

        Under ``on_error="warn"`` nothing is read back to the host here (no device sync per batch): the tallies
        are read together, once, when `counts`, `first` or `tally` is next needed (the
        epoch end). Under ``"raise"`` the count is read at once (the policy must stop at the first fault) and
        ``fatal(count)`` (default: always) decides whether it raises.

        Examples:
            >>> faults = Faults("warn")
            >>> faults.add("nonfinite", torch.tensor(0), lambda n: f"{n} bad")  # no fault
            >>> faults.add("nonfinite", torch.tensor(2), lambda n, per: f"{n} bad ({per})", parts=torch.tensor([2, 1]))
            >>> faults.counts["nonfinite"], faults.first
            (1, '2 bad ([2, 1])')
        """
        if kind not in self._counts:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {list(FAULT_KINDS)}.")
        if self.on_error == "raise":
            n = int(count)
            if n:
                text = message(n) if parts is None else message(n, [int(v) for v in parts.reshape(-1).tolist()])
                self.record(kind, text, fatal=True if fatal is None else fatal(n))
            return
        self._pending.append((kind, count.detach().reshape(()), message,
                              None if parts is None else parts.detach().reshape(-1)))

    def _settle(self) -> None:
        """Read the pending device tallies back (one transfer for all of them) into the counts and first message."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        device = pending[0][1].device
        flat = [c.reshape(1) for _, c, _, _ in pending] + [p for _, _, _, p in pending if p is not None]
        values = torch.cat([v.to(device, torch.long) for v in flat]).tolist()
        at = len(pending)
        for (kind, _, message, parts), n in zip(pending, values):
            per = None
            if parts is not None:
                per, at = values[at : at + parts.numel()], at + parts.numel()
            if n:
                self._note(kind, message(int(n)) if per is None else message(int(n), per))

    def _note(self, kind: str, detail: str) -> None:
        self._counts[kind] += 1
        if self._first is None:
            self._first = detail
        self._firsts.setdefault(kind, detail)

    @property
    def counts(self) -> dict[str, int]:
        """Fault counts by kind (reading any pending device tallies)."""
        self._settle()
        return self._counts

    @property
    def first(self) -> str | None:
        """The first fault's message on this rank (reading any pending device tallies)."""
        self._settle()
        return self._first

    def tally(self) -> list[int]:
        """The counts in `FAULT_KINDS` order (what the callback sums over ranks)."""
        counts = self.counts
        return [counts[k] for k in FAULT_KINDS]

    def set_totals(self, totals: Mapping[str, float], share: Callable[[object], list[object]] | None = None) -> None:
        """Replace the counts by ``totals`` (the sums over ranks); when they hold a fault and ``share`` (an
        all-gather of Python objects) is given, every rank's first messages are collected (`share`): a
        collective decided by the totals, so the same on every rank."""
        self._settle()
        self._counts = {k: int(totals.get(k, 0)) for k in FAULT_KINDS}
        if share is not None and self.total:
            self.share(share)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, gather: Callable[[object], list[object]]) -> None:
        """Every rank, after `set_totals` found faults somewhere (the same decision on every rank): collect
        every rank's first message of each kind with ``gather`` (an all-gather of Python objects), so that the
        report names each fault where it happened, whatever the rank."""
        self._settle()
        everyone = gather(dict(self._firsts))
        self._shared = [(rank, kind, str(text)) for rank, firsts in enumerate(everyone)
                        for kind, text in dict(firsts or {}).items()]  # type: ignore[call-overload]

    def firsts(self) -> list[tuple[int, str, str]]:
        """``(rank, kind, message)``: the first fault of each kind on every rank (after `share`; this
        rank's own, as rank 0, before it or for faults recorded after it)."""
        self._settle()
        out = list(self._shared)
        ranks_kinds = {(r, k) for r, k, _ in out}
        own = 0 if not out else min(r for r, _, _ in out)
        out += [(own, k, t) for k, t in self._firsts.items() if (own, k) not in ranks_kinds]
        return out

    def report(self, during: str) -> str | None:
        """The warning for the faults counted so far (`fault_report`), ``None`` without faults."""
        return fault_report(self.counts, self.first, during, self.firsts())

    @contextlib.contextmanager
    def reporting(self, during: str) -> Iterator[None]:
        """A piece of rank-zero work with a report of its own: the counts start at zero, and its faults are
        warned about once at its end (``during`` says what the work was)."""
        self.reset()
        yield
        report = self.report(during)
        if report:
            rank_zero_warn(report)


def fault_report(counts: Mapping[str, int], first: str | None, during: str,
                 firsts: Sequence[tuple[int, str, str]] = ()) -> str | None:
    """The one warning for the faults of a piece of work (``None`` without faults): the counts by kind, then
    the first fault of each kind on each rank (``firsts``: ``(rank, kind, message)``; at most
    `REPORTED_FIRSTS` of them), else ``first``.

    Examples:
        >>> print(fault_report({"error": 2, "nonfinite": 0, "logger": 1}, None, "in CAM work at epoch 3",
        ...                    [(1, "error", "cam raised ValueError: no head."), (0, "logger", "a logger failed")]))
        ... # doctest: +NORMALIZE_WHITESPACE
        CAMCallback: 3 fault(s) in CAM work at epoch 3 (2 error, 1 logger); first error on rank 1: cam raised
        ValueError: no head; first logger on rank 0: a logger failed. The affected samples/images were skipped;
        pass on_error='raise' to stop at the first one.
        >>> fault_report({"error": 0}, None, "in CAM work at epoch 0") is None
        True
    """
    total = int(sum(counts.values()))
    if not total:
        return None
    detail = ", ".join(f"{int(v)} {k}" for k, v in counts.items() if v)
    if firsts:
        ordered = sorted(firsts, key=lambda f: (FAULT_KINDS.index(f[1]) if f[1] in FAULT_KINDS else 99, f[0]))
        shown = [f"first {kind} on rank {rank}: {text.rstrip('. ')}" for rank, kind, text in ordered[:REPORTED_FIRSTS]]
        more = len(ordered) - len(shown)
        head = "; " + "; ".join(shown) + (f"; and {more} more rank(s)/kind(s)" if more > 0 else "")
    else:
        head = f"; first on rank 0: {first.rstrip('. ')}" if first else ""
    return (
        f"CAMCallback: {total} fault(s) {during} ({detail}){head}. The affected samples/images were skipped; "
        "pass on_error='raise' to stop at the first one."
    )


class WarnOnce:
    """Warnings given at most once per key (per callback), through ``rank_zero_warn``.

    Examples:
        >>> import warnings
        >>> once = WarnOnce()
        >>> with warnings.catch_warnings(record=True) as record:
        ...     warnings.simplefilter("always")
        ...     for _ in range(3):
        ...         _ = once.warn("no_tb", "no TensorBoardLogger")
        >>> len(record), once.seen
        (1, {'no_tb'})
    """

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def warn(self, key: str, message: str) -> bool:
        """Warn with ``message`` unless ``key`` was warned about already; returns whether it warned."""
        if key in self.seen:
            return False
        self.seen.add(key)
        rank_zero_warn(message)
        return True


# ----------------------------------------------------------------------------- the warnings' texts
#: a batch without labels under ``target='label'`` (a fault of kind ``error``).
MISSING_LABELS = (
    "CAMCallback(target='label') needs labels, but cam_inputs(batch) returned none; use target='pred' or return "
    "labels from `cam_inputs`."
)
def missing_masks(skipped: Sequence[str]) -> str:
    """Localization metrics ``skipped`` because the batches carry no masks or boxes (warned once)."""
    return (
        f"CAMCallback: metrics {list(skipped)} need ground-truth masks or boxes, but the validation batches carry "
        "none; they are skipped. Return masks from `cam_inputs` to compute them."
    )


def short_probe(num_images: int, size: int) -> str:
    """Rank zero's validation data held fewer than ``num_images`` probe images (warned once).

    Examples:
        >>> print(short_probe(8, 5))  # doctest: +NORMALIZE_WHITESPACE
        CAMCallback(num_images=8) but rank zero's validation data held only 5 image(s); the grids show those 5.
        Lower `num_images` (or raise `limit_val_batches`) to silence this warning.
    """
    return (
        f"CAMCallback(num_images={num_images}) but rank zero's validation data held only {size} image(s); the grids "
        f"show those {size}. Lower `num_images` (or raise `limit_val_batches`) to silence this warning."
    )


def stale_monitor(monitors: Sequence[str], every_n_epochs: int, stages: Sequence[str]) -> str:
    """A callback of the trainer monitors a ``cam/`` key that is not logged at every validation: Lightning
    keeps the last value in ``callback_metrics``, so it would decide on a stale one (warned once at setup).

    Examples:
        >>> print(stale_monitor(["EarlyStopping(monitor='cam/gradcam/adcc')"], 2, ("fit",)))
        ... # doctest: +NORMALIZE_WHITESPACE
        CAMCallback(every_n_epochs=2) logs the cam/ keys only at every 2nd validation run of fit, but
        ["EarlyStopping(monitor='cam/gradcam/adcc')"] monitor one: in between they would decide on the stale value
        of the last CAM validation. Use every_n_epochs=1, or monitor another key.
    """
    when = (f"only at every {every_n_epochs}{_ordinal(every_n_epochs)} validation run of fit" if "fit" in stages
            else "never in fit (stages has no 'fit')")
    return (
        f"CAMCallback(every_n_epochs={every_n_epochs}) logs the cam/ keys {when}, but {list(monitors)} monitor "
        "one: in between they would decide on the stale value of the last CAM validation. Use every_n_epochs=1, "
        "or monitor another key."
    )


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
