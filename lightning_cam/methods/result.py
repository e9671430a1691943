"""The value a CAM method returns from ``explain``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lightning_cam.methods.targets import is_checked, mark_checked

__all__ = ["CAMResult"]


class CAMResult:
    """Everything one CAM call produced, for the evaluator and the callback to reuse.

    Attributes:
        maps: ``(B, H, W)`` float32 maps in ``[0, 1]``, upsampled to the input size.
        low_res: ``(B, h, w)`` float32 maps at the target layer's resolution (ReLU'd, not normalised).
        logits: ``(B, K)`` float32 logits of the forward pass the maps were computed from (detached). They may be
            given as a function returning them: they are then computed at the first read (a method that needs
            no clean pass for its maps, e.g. Smooth Grad-CAM++ with given targets, runs that forward only
            when someone reads them; [`logits_known`][lightning_cam.methods.result.CAMResult.logits_known] tells without
            forcing it).
        targets: ``(B,)`` long tensor of the classes explained.
        blank: ``(B,)`` bool, True where the map is constant (all zero after normalisation) and so carries
            no explanation; [`evaluate_batch`][lightning_cam.evaluate_batch] gives such samples NaN in every metric.
            Defaults to all False (a result built without it).
        blank_reason: the likely cause of the blank samples (empty when there are none), e.g. a zero
            gradient at a transformer block output whose patch tokens do not reach the head. It may be given
            as a function returning that text: it is then formatted at the first read (whether any sample
            is blank is a host-device sync, which the per-batch path of the callback avoids).
        samples: ``(B,)`` long, the image each map explains, for a multi-label call that gives one map per
            (image, class) pair ([`lightning_cam.targets.task`][lightning_cam.targets.task]); ``None`` when map ``i``
            explains
            image ``i``.

    Examples:
        >>> r = CAMResult(torch.zeros(2, 4, 4), torch.zeros(2, 2, 2), torch.zeros(2, 3), torch.tensor([0, 1]))
        >>> r.blank, r.take(torch.tensor([1])).targets
        (tensor([False, False]), tensor([1]))
    """

    __slots__ = ("_logits", "_reason", "blank", "low_res", "maps", "samples", "targets")

    def __init__(self, maps: Tensor, low_res: Tensor, logits: Tensor | Callable[[], Tensor], targets: Tensor,
                 blank: Tensor | None = None, blank_reason: str | Callable[[], str] = "",
                 samples: Tensor | None = None) -> None:
        self.maps, self.low_res, self._logits, self.targets = maps, low_res, logits, targets
        self.samples = samples
        self.blank: Tensor = (torch.zeros(maps.shape[0], dtype=torch.bool, device=maps.device) if blank is None
                              else blank)
        self._reason = blank_reason

    @property
    def logits(self) -> Tensor:
        """``(B, K)`` float32 logits (computed at the first read when they were given as a function)."""
        if callable(self._logits):
            self._logits = self._logits()
        return self._logits

    @logits.setter
    def logits(self, value: Tensor) -> None:
        self._logits = value

    @property
    def logits_known(self) -> bool:
        """Whether the logits are computed (reading [`logits`][lightning_cam.methods.result.CAMResult.logits] otherwise
        runs the forward that gives them)."""
        return not callable(self._logits)

    def _lazy_logits(self, index: Tensor | None = None) -> Tensor | Callable[[], Tensor]:
        """The logits (of the rows ``index``), still lazy when they are."""
        if not callable(self._logits):
            return self._logits if index is None else self._logits[index]
        return (lambda: self.logits) if index is None else (lambda: self.logits[index])

    @property
    def blank_reason(self) -> str:
        """The text of the blank samples' cause (formatted at the first read when given as a function)."""
        if callable(self._reason):
            self._reason = str(self._reason())
        return self._reason

    @property
    def lazy_blank_reason(self) -> Callable[[], str]:
        """A function giving [`blank_reason`][lightning_cam.methods.result.CAMResult.blank_reason] that does not keep
        this result (its maps) alive: what a report
        read later, e.g. at the epoch's end, should hold."""
        reason = self._reason
        return reason if callable(reason) else (lambda: reason)

    def take(self, index: Tensor) -> CAMResult:
        """The samples ``index`` (``(n,)`` long, any order, no host sync) of every per-sample field; the blank
        reason stays lazy, and targets marked as checked stay marked (no second range check).

        Examples:
            >>> r = CAMResult(torch.rand(3, 2, 2), torch.rand(3, 1, 1), torch.rand(3, 4), torch.tensor([2, 0, 1]))
            >>> r.take(torch.tensor([2, 0])).targets.tolist()
            [1, 2]
        """
        targets = self.targets[index.to(self.targets.device)]
        if is_checked(self.targets):
            mark_checked(targets)
        samples = None if self.samples is None else self.samples[index.to(self.samples.device)]
        return CAMResult(self.maps[index], self.low_res[index], self._lazy_logits(index), targets, self.blank[index],
                         self._reason, samples)

    def paired(self, samples: Tensor | None) -> CAMResult:
        """The same maps with ``samples`` (the image of each map; ``None``: map ``i`` is image ``i``): a
        multi-label result seen as a batch of its own pairs (``paired(None)``), or one given its images.

        Examples:
            >>> r = CAMResult(torch.rand(2, 2, 2), torch.rand(2, 1, 1), torch.rand(2, 3), torch.tensor([0, 2]))
            >>> r.paired(torch.tensor([0, 0])).samples.tolist(), r.paired(None).samples
            ([0, 0], None)
        """
        return CAMResult(self.maps, self.low_res, self._lazy_logits(), self.targets, self.blank, self._reason,
                         samples)

    def __repr__(self) -> str:
        pairs = "" if self.samples is None else f", samples={tuple(self.samples.shape)}"
        return (f"CAMResult(maps={tuple(self.maps.shape)}, low_res={tuple(self.low_res.shape)}, "
                f"logits={tuple(self.logits.shape) if self.logits_known else 'lazy'}, "
                f"targets={tuple(self.targets.shape)}{pairs})")

