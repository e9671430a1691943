"""The callback's checkpointed state: the fixed probe set and the history of its maps, one row per CAM
validation run (what the evolution image shows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lightning_cam.methods import CAMResult, ExtraInputs
from lightning_cam.render import fit_longer_side, to_uint8
from lightning_cam.targets.task import Task

__all__ = ["History", "ProbeRecord", "ProbeSet", "When", "input_dtype"]


@dataclass
class ProbeSet:
    """The first ``capacity`` validation images seen on rank zero, captured once and kept (on the CPU).

    ``images`` are in the model's input space ``(N, C, H, W)``; ``labels`` ``(N,)`` or ``None``; ``extra`` the
    model's further inputs of these images ([`ExtraInputs`][lightning_cam.methods.ExtraInputs], CPU copies), taken
    from the first batch only (a batch with extra inputs ends the capture).
    ``frozen`` marks that capture is over (after the first logged epoch), even if fewer than ``capacity``
    images existed.

    Examples:
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
    extra: ExtraInputs | None = None

    @property
    def size(self) -> int:
        return 0 if self.images is None else int(self.images.shape[0])

    @property
    def wanted(self) -> int:
        """How many more images to capture (0 once frozen or full)."""
        return 0 if self.frozen else max(0, self.capacity - self.size)

    def add(self, images: Tensor, labels: Tensor | None, extra: object = None) -> None:
        """Append up to `wanted` images (detached CPU copies), their labels and extra model inputs."""
        k = min(self.wanted, int(images.shape[0]))
        if k <= 0:
            return
        more = ExtraInputs.of(extra)
        if more:  # per-sample extra inputs: kept from one batch (their structure need not concatenate)
            if self.images is not None:
                self.frozen = True
                return
            with torch.inference_mode(False):
                self.extra = more.take(torch.arange(k), int(images.shape[0])).apply(
                    lambda t: t.detach().to("cpu").clone())
            self.frozen = True
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

    def inputs(self, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
        """The probe images as model inputs: on ``device``, cast to ``dtype`` (the model's own, see
        `input_dtype`: bf16/fp16/fp64 under the ``*-true`` precisions), a fresh copy usable with autograd.

        Examples:
            >>> probe = ProbeSet(capacity=2)
            >>> probe.add(torch.rand(2, 3, 4, 4), None)
            >>> probe.inputs(torch.device("cpu"), torch.bfloat16).dtype
            torch.bfloat16
        """
        if self.images is None:
            raise RuntimeError("the probe set is empty: nothing to explain yet")
        with torch.inference_mode(False):
            return self.images.to(device=device, dtype=dtype).clone()

    def freeze(self) -> bool:
        """End the capture once images exist (after the first logged epoch); returns whether this call froze
        it (so a short probe set is reported once)."""
        if not self.size or self.frozen:
            return False
        self.frozen = True
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images, "labels": self.labels, "frozen": self.frozen, "extra": self.extra}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images = state.get("images")
        self.labels = state.get("labels")
        self.frozen = bool(state.get("frozen", self.images is not None))
        self.extra = state.get("extra")


def input_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of ``model``'s first floating parameter or buffer (what its inputs must be cast to:
    Lightning's ``16-true``/``bf16-true``/``64-true`` convert the module, not data kept by callbacks), else
    ``float32``.

    Examples:
        >>> input_dtype(nn.Linear(2, 2).double())
        torch.float64
    """
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


@dataclass(frozen=True)
class When:
    """When a probe grid was made: ``row``, the index of the validation run in the history (one per CAM
    validation of ``fit``: several per epoch with ``val_check_interval``), its ``epoch`` and the logger
    ``step`` of its images and scalars (``None`` in checkpoints of the first format, keyed by epoch)."""

    row: int
    epoch: int
    step: int | None = None


@dataclass
class History:
    """Per recorded validation run (a *row*), each method's probe maps as ``uint8`` (``round(255 * map)``),
    resized so the longer side is at most ``max_size`` pixels, and the predicted classes: small enough for
    checkpoints (at most ``N * max_size**2`` bytes per method and row, 32 KiB for 8 probe images).

    ``maps[method][row]`` is ``(N, h, w)`` uint8, ``preds[method][row]`` is ``(N,)`` long, ``whens[row]`` the
    row's `When` (epoch and step). Checkpoints of the first format (rows keyed by epoch, no
    ``whens``) load as rows numbered by their epoch.

    Examples:
        >>> h = History()
        >>> h.add("gradcam", h.next_row(), torch.rand(2, 8, 8), torch.zeros(2), epoch=0, step=3)
        >>> h.add("gradcam", h.next_row(), torch.rand(2, 8, 8), torch.zeros(2), epoch=0, step=7)
        >>> h.rows("gradcam"), h.epochs("gradcam"), h.caption(1)
        ([0, 1], [0, 0], 'epoch 0\\nstep 7')
    """

    max_size: int = 64
    maps: dict[str, dict[int, Tensor]] = field(default_factory=dict)
    preds: dict[str, dict[int, Tensor]] = field(default_factory=dict)
    whens: dict[int, When] = field(default_factory=dict)

    def next_row(self) -> int:
        """The row number of the next validation run: one more than every row recorded so far."""
        rows = set(self.whens).union(*(m.keys() for m in self.maps.values()))
        return max(rows) + 1 if rows else 0

    def add(self, method: str, row: int, maps: Tensor, preds: Tensor, epoch: int | None = None,
            step: int | None = None) -> None:
        """Record ``(N, H, W)`` maps in ``[0, 1]`` and ``(N,)`` predictions of ``method`` as ``row`` (replacing
        an earlier record of the same row), made at ``epoch`` (default: ``row``) and logger ``step``."""
        x = maps.detach().float().cpu()
        if max(x.shape[-2:]) > self.max_size:
            x = fit_longer_side(x[:, None], self.max_size)[:, 0]
        q = to_uint8(x)
        self.maps.setdefault(method, {})[int(row)] = q
        self.preds.setdefault(method, {})[int(row)] = preds.detach().cpu().long()
        self.whens[int(row)] = When(int(row), int(row if epoch is None else epoch), None if step is None else int(step))

    def when(self, row: int) -> When:
        """Epoch and step of ``row`` (rows of the first checkpoint format: their epoch, no step)."""
        return self.whens.get(int(row), When(int(row), int(row)))

    def caption(self, row: int) -> str:
        """``"epoch E\\nstep S"`` (``"epoch E"`` without a step): the label of ``row`` in the evolution image, on
        two lines so that a narrow tile shows it whole (two validations of one epoch differ by their step)."""
        w = self.when(row)
        return f"epoch {w.epoch}" if w.step is None else f"epoch {w.epoch}\nstep {w.step}"

    def rows(self, method: str) -> list[int]:
        """The rows recorded for ``method``, ascending."""
        return sorted(self.maps.get(method, {}))

    def epochs(self, method: str) -> list[int]:
        """The epoch of each row of ``method`` (repeated when an epoch validated several times)."""
        return [self.when(r).epoch for r in self.rows(method)]

    def series(self, method: str, max_rows: int | None = None) -> tuple[list[int], Tensor] | None:
        """``(rows, maps)`` of ``method``: maps ``(R, N, h, w)`` float in ``[0, 1]``, or ``None``.

        With ``max_rows``, at most that many rows, evenly spaced and always including the first and the
        last (so the evolution image of a long run stays a readable, bounded size).

        Examples:
            >>> h = History()
            >>> for e in range(10):
            ...     h.add("gradcam", e, torch.rand(2, 8, 8), torch.zeros(2))
            >>> h.series("gradcam", max_rows=4)[0]
            [0, 3, 6, 9]
        """
        rows = self.rows(method)
        if not rows:
            return None
        if max_rows is not None and len(rows) > max(max_rows, 2):
            n = max(max_rows, 2)
            picks = sorted({round(i * (len(rows) - 1) / (n - 1)) for i in range(n)})
            rows = [rows[i] for i in picks]
        return rows, torch.stack([self.maps[method][r] for r in rows]).float() / 255.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 2,
            "max_size": self.max_size,
            "maps": {k: dict(v) for k, v in self.maps.items()},
            "preds": {k: dict(v) for k, v in self.preds.items()},
            "whens": {r: (w.epoch, w.step) for r, w in self.whens.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.max_size = int(state.get("max_size", self.max_size))
        self.maps = {k: {int(e): t for e, t in v.items()} for k, v in state.get("maps", {}).items()}
        self.preds = {k: {int(e): t for e, t in v.items()} for k, v in state.get("preds", {}).items()}
        # version 1 had no "whens": its rows are epochs, and when() gives them their epoch and no step
        self.whens = {int(r): When(int(r), int(e), None if s is None else int(s))
                      for r, (e, s) in state.get("whens", {}).items()}


@dataclass
class ProbeRecord:
    """One CAM run's maps of the probe set, on rank zero: what the views read in their `probe_logged` hook (the
    grid view draws them, the drift view compares the history rows).

    Attributes:
        prefix: the run's key prefix (``cam``, ``cam_test``, ``cam_dl1``, ...).
        when: the history row, epoch and step of the run.
        recorded: whether the maps were added to ``history`` (a ``fit`` run; ``validate`` and ``test`` only draw).
        display: ``(N, 3, H, W)`` float in ``[0, 1]`` on the CPU, the probe images as shown.
        labels: the probe's labels on the CPU, or ``None``.
        class_names: the names captions use, or ``None``.
        task: the target kind the maps explain (captions read what the model predicts about each target).
        history: the checkpointed history of the probe maps.
        results: method name -> its maps of the probe (a method that failed has none: a counted fault).
        preds: method name -> what the model predicts about each of its targets, under the method's own target
            kind (captions and the history read the same tensor).
    """

    prefix: str
    when: When
    recorded: bool
    display: Tensor
    labels: Tensor | None
    class_names: Sequence[str] | None
    task: Task
    history: History
    results: dict[str, CAMResult] = field(default_factory=dict)
    preds: dict[str, Tensor] = field(default_factory=dict)
