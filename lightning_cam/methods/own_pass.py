"""``OwnPassCAM``: the base of the methods whose map comes from their own forward and backward through the whole
model (FullGrad: every bias layer; LeGrad: every attention block), not from one layer's captured activation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from lightning_cam.methods.base import BaseCAM, Need
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.extra import ExtraInputs

__all__ = ["OwnPassCAM"]


class OwnPassCAM(BaseCAM):
    """A method that makes its raw map in its own pass: one forward with autograd from a copy of the input that
    requires grad (so the pass has a graph even through frozen weights), its `hooks` attached, then `pass_map`.

    The capture it returns holds that map as its ``activations`` ``(B, 1, h, w)`` (``grads`` ``None``), which
    `raw_map` reads; the engine does the rest (ReLU, upsampling, normalisation, blank flags). It never shares a
    group's pass (``shares_capture = False``), and its ``target_layer`` is optional (the method decides what it
    reads). Parameter ``.grad`` is never written (``torch.autograd.grad`` only). Under sharded parameters (FSDP,
    FSDP2, ZeRO-3) the callback leaves it out (`unshardable`): a rank with nothing to explain could not mirror its
    backward's collectives.

    A subclass overrides `hooks` (what to record during the forward) and `pass_map`.
    """

    layer_optional = True
    shares_capture = False
    unshardable = "a backward through the whole model, to its input"

    def needs(self) -> Need:
        return "grad"

    @contextlib.contextmanager
    def hooks(self) -> Iterator[None]:
        """Hooks recording what `pass_map` reads, attached for the forward and removed after it (default: none)."""
        yield

    def pass_map(self, inputs: Tensor, logits: Tensor, targets: Tensor, reference: Tensor | None) -> Tensor:
        """The raw ``(B, h, w)`` map, from the pass's ``inputs`` (the leaf the forward ran on), its differentiable
        ``logits``, the ``targets`` and their ``reference``, after the forward with `hooks`."""
        raise NotImplementedError(f"{type(self).__name__} must override pass_map.")

    def capture(self, x: Tensor, targets: Tensor | None, need: Need | bool, extra: ExtraInputs | None = None,
                trusted: bool = False, reference: Tensor | None = None) -> Capture:
        """The method's own pass (see the class docstring): ``activations`` is its raw map ``(B, 1, h, w)``."""
        leaf = x.detach().clone().requires_grad_(True)
        with torch.enable_grad(), self.hooks():
            logits = self._forward(leaf, extra)
            chosen = self._targets(logits.detach(), targets, trusted)
            reference = self._reference(logits, chosen, reference)
            raw = self.pass_map(leaf, logits, chosen, reference)
        return Capture(raw.detach()[:, None], None, logits.detach(), chosen, reference=reference)

    def raw_map(self, cap: Capture) -> Tensor:
        return cap.activations[:, 0]
