"""The callback's checkpointed state: the fixed probe set and the per-epoch history of its maps (what the
evolution image shows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["History", "ProbeSet"]


@dataclass
class ProbeSet:
    """The first ``capacity`` validation images seen on rank zero, captured once and kept (on the CPU).

    ``images`` are in the model's input space ``(N, C, H, W)``; ``labels`` ``(N,)`` or ``None``.
    ``frozen`` marks that capture is over (after the first logged epoch), even if fewer than ``capacity``
    images existed.

    Example:
        >>> probe = ProbeSet(capacity=3)
        >>> probe.add(torch.rand(2, 3, 8, 8), torch.tensor([0, 1]))
        >>> probe.size, probe.wanted
        (2, 1)
        >>> probe.add(torch.rand(2, 3, 8, 8), torch.tensor([2, 3]))
        >>> probe.size, probe.wanted, probe.labels.tolist()
        (3, 0, [0, 1, 2])
    """

    capacity: int
    images: Tensor | None = None
    labels: Tensor | None = None
    frozen: bool = False

    @property
    def size(self) -> int:
        return 0 if self.images is None else int(self.images.shape[0])

    @property
    def wanted(self) -> int:
        """How many more images to capture (0 once frozen or full)."""
        return 0 if self.frozen else max(0, self.capacity - self.size)

    def add(self, images: Tensor, labels: Tensor | None) -> None:
        """Append up to :attr:`wanted` images (detached CPU copies) and their labels."""
        k = min(self.wanted, int(images.shape[0]))
        if k <= 0:
            return
        with torch.inference_mode(False):  # normal tensors, usable with autograd in later epochs
            new = images[:k].detach().to("cpu", torch.float32).clone()
            new_labels = None if labels is None else labels[:k].detach().to("cpu", torch.long).clone()
        if self.images is None:
            self.images, self.labels = new, new_labels
            return
        if new.shape[1:] != self.images.shape[1:]:
            self.frozen = True  # variable-size images: keep the ones of the first size
            return
        self.images = torch.cat([self.images, new])
        if self.labels is not None and new_labels is not None:
            self.labels = torch.cat([self.labels, new_labels])
        else:
            self.labels = None

    def freeze(self) -> bool:
        """End the capture once images exist (after the first logged epoch); returns whether this call froze
        it (so a short probe set is reported once)."""
        if not self.size or self.frozen:
            return False
        self.frozen = True
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images, "labels": self.labels, "frozen": self.frozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images = state.get("images")
        self.labels = state.get("labels")
        self.frozen = bool(state.get("frozen", self.images is not None))


@dataclass
class History:
    """Per logged epoch, each method's probe maps as ``uint8`` (``round(255 * map)``), resized so the
    longer side is at most ``max_size`` pixels, and the predicted classes: small enough for checkpoints
    (at most ``N * max_size**2`` bytes per method and epoch, 32 KiB for 8 probe images).

    ``maps[method][epoch]`` is ``(N, h, w)`` uint8, ``preds[method][epoch]`` is ``(N,)`` long.
    """

    max_size: int = 64
    maps: dict[str, dict[int, Tensor]] = field(default_factory=dict)
    preds: dict[str, dict[int, Tensor]] = field(default_factory=dict)

    def add(self, method: str, epoch: int, maps: Tensor, preds: Tensor) -> None:
        """Record ``(N, H, W)`` maps in ``[0, 1]`` and ``(N,)`` predictions of ``method`` at ``epoch``
        (replacing an earlier record of the same epoch)."""
        x = maps.detach().float().cpu()
        h, w = x.shape[-2:]
        if max(h, w) > self.max_size:
            scale = self.max_size / max(h, w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = F.interpolate(x[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        q = (torch.nan_to_num(x, nan=0.0).clamp(0, 1) * 255).round().to(torch.uint8)
        self.maps.setdefault(method, {})[int(epoch)] = q
        self.preds.setdefault(method, {})[int(epoch)] = preds.detach().cpu().long()

    def epochs(self, method: str) -> list[int]:
        """The epochs recorded for ``method``, ascending."""
        return sorted(self.maps.get(method, {}))

    def series(self, method: str, max_rows: int | None = None) -> tuple[list[int], Tensor] | None:
        """``(epochs, maps)`` of ``method``: maps ``(E, N, h, w)`` float in ``[0, 1]``, or ``None``.

        With ``max_rows``, at most that many epochs, evenly spaced and always including the first and the
        last (so the evolution image of a long run stays a readable, bounded size).

        Example:
            >>> h = History()
            >>> for e in range(10):
            ...     h.add("gradcam", e, torch.rand(2, 8, 8), torch.zeros(2))
            >>> h.series("gradcam", max_rows=4)[0]
            [0, 3, 6, 9]
        """
        epochs = self.epochs(method)
        if not epochs:
            return None
        if max_rows is not None and len(epochs) > max(max_rows, 2):
            n = max(max_rows, 2)
            picks = sorted({round(i * (len(epochs) - 1) / (n - 1)) for i in range(n)})
            epochs = [epochs[i] for i in picks]
        return epochs, torch.stack([self.maps[method][e] for e in epochs]).float() / 255.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "max_size": self.max_size,
            "maps": {k: dict(v) for k, v in self.maps.items()},
            "preds": {k: dict(v) for k, v in self.preds.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.max_size = int(state.get("max_size", self.max_size))
        self.maps = {k: {int(e): t for e, t in v.items()} for k, v in state.get("maps", {}).items()}
        self.preds = {k: {int(e): t for e, t in v.items()} for k, v in state.get("preds", {}).items()}
