"""Blank maps: why a sample's map came out constant (no explanation), told from numbers of its capture."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["BlankDiagnosis", "blank_flags", "blank_reason", "describe_blank"]


@dataclass(frozen=True)
class BlankDiagnosis:
    """What a capture measured that explains blank maps, per sample: returned with the capture
    ([`Capture`][lightning_cam.methods.capture.Capture]), never stored on the method.

    Attributes:
        layout: the target layer's activation layout (``"nchw"``, ``"tokens"``, ...; ``None`` for a callable).
        zero_grad: ``(B,)`` bool, the gradient w.r.t. the activation is exactly zero (all False without one).
        zero_act: ``(B,)`` bool, the activation is exactly zero.
        grid: the ``(h, w)`` grid of the activation.
        prefix_grad: ``(B,)`` bool, the gradient is non-zero at prefix tokens (the class token) only: the layer's
            grid positions do not reach the head.
        flat_logits: ``(B,)`` bool, all logits of the sample are equal (a zero-initialised head, or an untrained
            one): no score varies with anything, so no gradient can show where.

    Examples:
        >>> d = BlankDiagnosis.of("nchw", torch.zeros(2, 1, 2, 2), None)
        >>> d.zero_act.tolist(), d.zero_grad.tolist()
        ([True, True], [False, False])
    """

    layout: str | None
    zero_grad: Tensor
    zero_act: Tensor
    grid: tuple[int, int] = (0, 0)
    prefix_grad: Tensor | None = None
    flat_logits: Tensor | None = None

    @classmethod
    def of(cls, layout: str | None, activations: Tensor, grads: Tensor | None, raw_grad: Tensor | None = None,
           logits: Tensor | None = None) -> BlankDiagnosis:
        """The diagnosis of ``(B, C, h, w)`` activations and their gradients (device tensors, no host sync);
        ``raw_grad``: the gradient at the layer's own output (prefix tokens included), ``logits`` ``(B, K)``."""
        zero_act = activations.flatten(1).abs().amax(dim=1) == 0
        zero_grad = grads.flatten(1).abs().amax(dim=1) == 0 if grads is not None else torch.zeros_like(zero_act)
        grid = (int(activations.shape[-2]), int(activations.shape[-1])) if activations.ndim == 4 else (0, 0)
        prefix_grad = None
        if raw_grad is not None and raw_grad.shape[0] == zero_act.shape[0]:
            prefix_grad = zero_grad & (raw_grad.flatten(1).abs().amax(dim=1) > 0)
        flat = None
        if logits is not None and logits.ndim == 2 and logits.shape[1] > 1 and logits.shape[0] == zero_act.shape[0]:
            flat = logits.detach().amax(dim=1) == logits.detach().amin(dim=1)
        return cls(layout, zero_grad, zero_act, grid, prefix_grad, flat)

    def without_grad(self) -> BlankDiagnosis:
        """The diagnosis a gradient-free capture of the same pass would give."""
        return BlankDiagnosis(self.layout, torch.zeros_like(self.zero_act), self.zero_act, self.grid)

    def at(self, i: int) -> dict[str, bool]:
        """Sample ``i``'s flags (host values: read only when a reason is formatted)."""
        def flag(t: Tensor | None) -> bool:
            return bool(t[i]) if t is not None and i < len(t) else False

        return {"zero_grad": flag(self.zero_grad), "zero_act": flag(self.zero_act),
                "prefix_grad": flag(self.prefix_grad), "flat_logits": flag(self.flat_logits)}


def blank_reason(layer_name: str, layout: str | None, zero_grad: bool, zero_act: bool,
                 grid: tuple[int, int] = (0, 0), prefix_grad: bool = False, flat_logits: bool = False) -> str:
    """The cause of a blank (constant) map, told from the numbers that caused it, for reports and the
    callback's ``blank`` fault: a 1x1 grid, a zero activation, logits equal for every class (a zero head), a
    gradient at the prefix tokens only, another zero gradient, or a weighted activation that ReLU removes
    everywhere.

    Examples:
        >>> blank_reason("blocks.11", "tokens", zero_grad=True, zero_act=False, prefix_grad=True)[:50]
        'the gradient of the target score w.r.t. target lay'
        >>> blank_reason("layer4", "nchw", zero_grad=False, zero_act=False, grid=(1, 1))[:44]
        "target layer 'layer4' has a 1x1 grid at this"
    """
    if grid == (1, 1):
        return (
            f"target layer {layer_name!r} has a 1x1 grid at this input size (it follows global pooling, or the "
            "input is too small for its stride): a map of one cell cannot show where; choose an earlier layer with "
            "a spatial grid (target_layer=None chooses one), or feed larger images"
        )
    if zero_act:
        return (
            f"target layer {layer_name!r} outputs all zeros for these samples (dead ReLUs, a zero-initialised "
            "or collapsed layer); choose an earlier layer or check the model"
        )
    if flat_logits and zero_grad:
        return (
            "the model gives every class the same logit for these samples (a zero-initialised or untrained head), "
            f"so the target score has no gradient at target layer {layer_name!r} or anywhere: no layer can show "
            "where; the maps appear once training moves the head"
        )
    if prefix_grad:
        return (
            f"the gradient of the target score w.r.t. target layer {layer_name!r} is non-zero at its prefix "
            "(class) tokens only: the layer's grid positions reach the head only through them (a transformer "
            "block after the last token mixing, in a class-token model); choose a layer whose positions reach the "
            "head: target_layer=None (cam_target_layer: None) chooses one by that rule"
        )
    if zero_grad:
        return (
            f"the gradient of the target score w.r.t. target layer {layer_name!r} is exactly zero: the layer does "
            "not influence the target score for these samples (a saturated, masked or detached path); choose "
            "another layer (target_layer=None chooses one that does)"
        )
    return (
        f"the weighted activation of target layer {layer_name!r} is <= 0 everywhere, so ReLU leaves a constant "
        "map (common for untrained models or classes the model rejects); it carries no explanation"
    )


def describe_blank(cls_name: str, layer_name: str, diagnosis: BlankDiagnosis | None, blank: Tensor) -> str:
    """The blank samples of one call grouped by likely cause (`blank_reason`), ``""`` when none is blank
    (reads the flags back to the host: called only when the text is read).

    Examples:
        >>> diag = BlankDiagnosis("nchw", zero_grad=torch.tensor([False, True]), zero_act=torch.tensor([False, False]))
        >>> describe_blank("GradCAM", "4", diag, torch.tensor([False, True]))[:30]
        'GradCAM: blank (constant) map,'
    """
    if not bool(blank.any()):
        return ""
    layout = None if diagnosis is None else diagnosis.layout
    grid = diagnosis.grid if diagnosis is not None else (0, 0)
    causes: dict[str, list[int]] = {}
    for i in blank.nonzero().flatten().tolist():
        flags = diagnosis.at(i) if diagnosis is not None else {"zero_grad": False, "zero_act": False}
        causes.setdefault(blank_reason(layer_name, layout, grid=grid, **flags), []).append(i)
    text = "; ".join(f"samples {idx[:8]}{'...' if len(idx) > 8 else ''}: {why}" for why, idx in causes.items())
    return f"{cls_name}: blank (constant) map, {text}."


def blank_flags(maps: Tensor, can_be_blank: bool, method: str, layer: str, diagnosis: BlankDiagnosis | None
                ) -> tuple[Tensor, Callable[[], str] | str]:
    """Per-sample blank flags of ``(B, H, W)`` normalised maps (a constant map normalises to all zeros; never for
    a method whose pattern is fixed) and the likely cause, as a function formatted only when read (deciding
    whether any sample is blank is a host sync).

    Examples:
        >>> flags, reason = blank_flags(torch.zeros(2, 2, 2), True, "GradCAM", "layer4", None)
        >>> flags.tolist(), callable(reason)
        ([True, True], True)
    """
    if not can_be_blank:
        return torch.zeros(maps.shape[0], dtype=torch.bool, device=maps.device), ""
    blank = maps.flatten(1).amax(dim=1) <= 0
    return blank, functools.partial(describe_blank, method, layer, diagnosis, blank)
