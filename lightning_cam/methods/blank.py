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

    Examples:
        >>> d = BlankDiagnosis.of("nchw", torch.zeros(2, 1, 2, 2), None)
        >>> d.zero_act.tolist(), d.zero_grad.tolist()
        ([True, True], [False, False])
    """

    layout: str | None
    zero_grad: Tensor
    zero_act: Tensor
    grid: tuple[int, int] = (0, 0)

    @classmethod
    def of(cls, layout: str | None, activations: Tensor, grads: Tensor | None) -> BlankDiagnosis:
        """The diagnosis of ``(B, C, h, w)`` activations and their gradients (device tensors, no host sync)."""
        zero_act = activations.flatten(1).abs().amax(dim=1) == 0
        zero_grad = grads.flatten(1).abs().amax(dim=1) == 0 if grads is not None else torch.zeros_like(zero_act)
        grid = (int(activations.shape[-2]), int(activations.shape[-1])) if activations.ndim == 4 else (0, 0)
        return cls(layout, zero_grad, zero_act, grid)

    def without_grad(self) -> BlankDiagnosis:
        """The diagnosis a gradient-free capture of the same pass would give."""
        return BlankDiagnosis(self.layout, torch.zeros_like(self.zero_act), self.zero_act, self.grid)


def blank_reason(layer_name: str, layout: str | None, zero_grad: bool, zero_act: bool,
                 grid: tuple[int, int] = (0, 0)) -> str:
    """The cause of a blank (constant) map, told from the numbers that caused it, for reports and the
    callback's ``blank`` fault: a 1x1 grid, a zero activation, a zero gradient, or a weighted activation that
    ReLU removes everywhere.

    Examples:
        >>> blank_reason("blocks.11", "tokens", zero_grad=True, zero_act=False)[:50]
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
    if zero_grad:
        why = (
            "a transformer block's output whose patch tokens do not reach the head (only the class token does); "
            "use the last block's pre-norm (norm1/ln_1, the default when cam_target_layer is None)"
            if layout in ("tokens", "vit")
            else "the layer does not influence the target score for these samples (e.g. it feeds only the class "
            "token, a saturated or masked path); choose another layer"
        )
        return f"the gradient of the target score w.r.t. target layer {layer_name!r} is exactly zero: {why}"
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
    zero_grad = None if diagnosis is None else diagnosis.zero_grad
    zero_act = None if diagnosis is None else diagnosis.zero_act
    causes: dict[str, list[int]] = {}
    for i in blank.nonzero().flatten().tolist():
        zg = bool(zero_grad[i]) if zero_grad is not None and i < len(zero_grad) else False
        za = bool(zero_act[i]) if zero_act is not None and i < len(zero_act) else False
        grid = diagnosis.grid if diagnosis is not None else (0, 0)
        causes.setdefault(blank_reason(layer_name, layout, zg, za, grid), []).append(i)
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
