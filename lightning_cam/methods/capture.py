"""What one hooked forward produced ([`Capture`][lightning_cam.methods.capture.Capture]), and the forward hook that
records the target layer's
output (`LayerRecorder`), with the errors that name why a layer cannot be explained."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import Tensor, nn

from lightning_cam.methods.blank import BlankDiagnosis

__all__ = ["Capture", "LayerRecorder", "in_reentrant_checkpoint", "not_on_path"]


class Capture:
    """What one hooked forward produced: the target activation, its gradient, the logits and the targets.

    Attributes:
        activations: ``(B, C, h, w)`` float32 target-layer output (after ``reshape``), detached; empty for a
            logits-only pass.
        grads: ``(B, C, h, w)`` float32 $\\partial \\sum_b y_b^{c_b} / \\partial A$, or ``None``.
        logits: ``(B, K)`` logits of that forward, detached (model dtype); for a ``"targets"`` capture (given
            targets, no forward), a function that runs the clean forward when the logits are read.
        targets: ``(B,)`` long classes explained (valid indices: checked, or an argmax; a ``"targets"`` capture's
            given targets are range-checked by the method's first pass).
        diagnosis: what explains blank maps of this pass (`BlankDiagnosis`),
            ``None`` for a logits-only pass.
        reference: what each target's score is measured against, fixed on the original image, for a kind that has
            one (`TargetKind.reference`); ``None`` otherwise (or not computed yet: `BaseCAM.reference_of`).

    Examples:
        >>> cap = Capture(torch.ones(1, 2, 3, 3), None, torch.zeros(1, 4), torch.tensor([1]))
        >>> cap.activations.shape, cap.diagnosis
        (torch.Size([1, 2, 3, 3]), None)
    """

    __slots__ = ("_logits", "activations", "diagnosis", "grads", "reference", "targets")

    def __init__(self, activations: Tensor, grads: Tensor | None, logits: Tensor | Callable[[], Tensor],
                 targets: Tensor, diagnosis: BlankDiagnosis | None = None, reference: Tensor | None = None) -> None:
        self.activations = activations
        self.grads = grads
        self._logits = logits
        self.targets = targets
        self.diagnosis = diagnosis
        self.reference = reference

    @property
    def logits(self) -> Tensor:
        """The pass's logits (the clean forward runs at the first read for a ``"targets"`` capture)."""
        if callable(self._logits):
            self._logits = self._logits()
        return self._logits

    @property
    def gradient(self) -> Tensor:
        """``grads``, for a method that declared it needs them (``needs_grad``): a pass without them is a bug in the
        method's `needs`, named here."""
        if self.grads is None:
            raise RuntimeError("this capture has no gradient: the method must declare needs_grad = True (or return "
                               "'grad' from needs()).")
        return self.grads

    @property
    def lazy_logits(self) -> Tensor | Callable[[], Tensor]:
        """The logits, or the function that computes them when they were not needed yet (not run here)."""
        return self._logits

    def as_needed(self, need: str) -> Capture:
        """This pass as a method that needs only ``need`` (``"grad"``, ``"activation"``, ``"logits"``,
        ``"targets"``) would have captured it: without the gradient (and its diagnosis), or the logits and targets
        alone."""
        if need == "grad":
            return self
        if need in ("logits", "targets"):
            return Capture(self.activations.new_empty(0), None, self._logits, self.targets, reference=self.reference)
        diagnosis = None if self.diagnosis is None else self.diagnosis.without_grad()
        return Capture(self.activations, None, self._logits, self.targets, diagnosis, self.reference)


class LayerRecorder:
    """A forward hook that records the target layer's output once per forward.

    With ``need_grad`` the recorded output is a detached leaf that requires grad, and the model continues from
    a clone of it with autograd switched on, so that ``autograd.grad(score, recorder.output)`` differentiates
    only what follows the layer (nothing before it, no parameter ``.grad``). Without it, a detached copy.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
        >>> rec = LayerRecorder("0", need_grad=False)
        >>> handle = net[0].register_forward_hook(rec)
        >>> _ = net(torch.randn(1, 3, 4, 4)); handle.remove()
        >>> rec.output.shape
        torch.Size([1, 2, 4, 4])
    """

    def __init__(self, layer_name: str, need_grad: bool) -> None:
        self.layer_name, self.need_grad = layer_name, need_grad
        self.outputs: list[Tensor] = []
        self.reentrant = False

    @property
    def output(self) -> Tensor:
        return self.outputs[0]

    def __call__(self, module: nn.Module, args: object, output: object) -> Tensor | None:
        if not isinstance(output, Tensor):
            raise TypeError(
                f"target layer {self.layer_name!r} ({type(module).__name__}) returned {type(output).__name__}, not a "
                "tensor; choose a layer whose output is a single (B, C, h, w) tensor (e.g. a conv block), or its "
                "submodule that produces the feature map."
            )
        if self.outputs:
            if self.reentrant:
                return None  # no second run to worry about: the caller's error names the checkpointing
            raise RuntimeError(
                f"target layer {self.layer_name!r} ran more than once in one forward (a shared module); choose a "
                "layer that runs once."
            )
        self.reentrant = in_reentrant_checkpoint()
        act = output.detach()
        if not self.need_grad:
            self.outputs.append(act.clone())
            return None
        act.requires_grad_(True)
        self.outputs.append(act)
        torch.set_grad_enabled(True)  # autograd from here on; the enclosing no_grad() restores the mode
        return act.clone()  # downstream in-place ops (ReLU(inplace=True)) must not touch `act`


def not_on_path(layer_name: str, reentrant: bool = False) -> RuntimeError:
    if reentrant:
        return RuntimeError(
            f"target layer {layer_name!r} runs inside torch.utils.checkpoint(..., use_reentrant=True): reentrant "
            "checkpointing runs its forward without autograd, so no gradient reaches the layer. Use "
            "checkpoint(..., use_reentrant=False), or a gradient-free method (eigencam, scorecam)."
        )
    return RuntimeError(
        f"the logits do not depend on target layer {layer_name!r}; choose a layer on the path from the input to "
        "the logits. If the model runs that layer under its own torch.no_grad() (a frozen backbone), use a "
        "gradient-free method (eigencam, scorecam) or a layer after the no_grad block."
    )


def in_reentrant_checkpoint() -> bool:
    """Whether the caller runs inside ``torch.utils.checkpoint``'s reentrant ``CheckpointFunction.forward``."""
    frame = sys._getframe(1)
    for _ in range(200):
        if frame is None:
            return False
        code = frame.f_code
        if code.co_name == "forward" and code.co_filename.replace("\\", "/").endswith("torch/utils/checkpoint.py"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False
