"""``BaseCAM``: hooks, target selection, upsampling and normalisation, shared by every method.

A method only supplies its raw low-resolution map (``_map``) from the target layer's activation and,
for gradient methods, :math:`\\partial y^c / \\partial A`; the maths lives in :mod:`lightning_cam.functional`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from lightning_cam.functional.normalize import postprocess_maps
from lightning_cam.methods._checks import reshape_activation, resolve_layer
from lightning_cam.methods.result import CAMResult
from lightning_cam.utilities.checks import check_images, check_logits, check_target_range, check_targets
from lightning_cam.utilities.modes import eval_mode

__all__ = ["BaseCAM", "Capture", "Reshape"]

Reshape = str | Callable[[Tensor], Tensor] | None


class Capture:
    """What one hooked forward produced: the target activation, its gradient, the logits and the targets.

    Attributes:
        activations: ``(B, C, h, w)`` float32 target-layer output (after ``reshape``), detached.
        grads: ``(B, C, h, w)`` float32 :math:`\\partial \\sum_b y_b^{c_b} / \\partial A`, or ``None``.
        logits: ``(B, K)`` logits of that forward, detached (model dtype).
        targets: ``(B,)`` long classes explained.
    """

    __slots__ = ("activations", "grads", "logits", "targets")

    def __init__(self, activations: Tensor, grads: Tensor | None, logits: Tensor, targets: Tensor) -> None:
        self.activations = activations
        self.grads = grads
        self.logits = logits
        self.targets = targets


def _not_on_path(layer_name: str) -> RuntimeError:
    return RuntimeError(
        f"the logits do not depend on target layer {layer_name!r}; choose a layer on the path from the input to "
        "the logits. If the model runs that layer under its own torch.no_grad() (a frozen backbone), use a "
        "gradient-free method (eigencam, scorecam) or a layer after the no_grad block."
    )


class BaseCAM:
    """Base class of the CAM methods: ``cam(images, targets=None)`` -> ``(B, H, W)`` maps in ``[0, 1]``.

    Pipeline of one call: validate the inputs; put the model in eval mode; one forward with a hook on the
    target layer that captures its output :math:`A`. Gradient methods run the layers *before* the target
    layer without autograd, restart autograd from a detached copy of :math:`A` (so a frozen model works and
    nothing before the target layer is differentiated) and take
    ``torch.autograd.grad(sum_b y_b^{c_b}, A)`` -- parameter ``.grad`` is never written, and samples stay
    independent because eval mode removes every cross-sample interaction. The method turns :math:`A` (and the
    gradient) into a raw ``(B, h, w)`` map; the base class applies ReLU, bilinear upsampling to ``(H, W)`` and
    per-sample min-max normalisation (a constant map becomes zeros, never NaN), all in float32.

    Works under ``torch.no_grad()``, ``torch.inference_mode()`` (the input is cloned out of inference mode)
    and ``torch.autocast`` (the model runs in the autocast dtype, the CAM maths in float32). Hooks are
    removed, and every module's train/eval flag restored, even when the call raises.

    Args:
        model: the classifier; ``model(images)`` must return ``(B, K)`` logits.
        target_layer: dotted module name (``"layer4"``, ``"features.28"``) or the module itself. A unique
            suffix of a dotted name is accepted (``"layer4"`` for ``"net.layer4"``).
        reshape: how to bring the layer output to ``(B, C, h, w)``: ``None`` (already 4-D), ``"vit"``
            (``(B, N, C)`` transformer tokens: drop the class token, square grid) or a callable.

    Example:
        >>> from lightning_cam.methods import GradCAM
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> GradCAM(net, target_layer="1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    #: canonical registry name (see :func:`lightning_cam.methods.get_method`)
    name: ClassVar[str] = ""
    #: other accepted names
    aliases: ClassVar[tuple[str, ...]] = ()
    #: whether the method differentiates the target score w.r.t. the activation
    needs_grad: ClassVar[bool] = True

    def __init__(self, model: nn.Module, target_layer: str | nn.Module, reshape: Reshape = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        if not (reshape is None or reshape == "vit" or callable(reshape)):
            raise ValueError(f"reshape must be None, 'vit' or a callable (B, N, C) -> (B, C, h, w); got {reshape!r}.")
        self.model = model
        self.target_layer_name, self.target_layer = resolve_layer(model, target_layer)
        self.reshape = reshape

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target_layer={self.target_layer_name!r})"

    def __call__(self, images: Tensor, targets: Tensor | None = None) -> Tensor:
        """``(B, H, W)`` float32 maps in ``[0, 1]`` on ``images.device``; see :meth:`explain`."""
        return self.explain(images, targets).maps

    def explain(self, images: Tensor, targets: Tensor | None = None) -> CAMResult:
        """Compute the maps and everything the evaluator reuses.

        Args:
            images: ``(B, C, H, W)`` float tensor in the model's input space.
            targets: ``(B,)`` integer classes to explain (an int applies to all); ``None`` = argmax of the logits.

        Returns:
            :class:`~lightning_cam.methods.result.CAMResult` with ``maps`` ``(B, H, W)`` in ``[0, 1]``,
            ``low_res`` ``(B, h, w)`` (ReLU'd, not normalised), detached float32 ``logits`` ``(B, K)`` and
            ``targets`` ``(B,)``.
        """
        images = check_images(images)
        target_t = check_targets(targets, images.shape[0], images.device)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        with torch.inference_mode(False), eval_mode(self.model):
            x = images.clone() if images.is_inference() else images.detach()
            if target_t is not None and target_t.is_inference():
                target_t = target_t.clone()  # inference tensors cannot be saved for backward (gather's index)
            raw, logits, target_t = self._compute(x, target_t)
            with torch.autocast(device_type=x.device.type, enabled=False):
                maps, low_res = self._postprocess(raw, size)
        return CAMResult(maps=maps, low_res=low_res, logits=logits.detach().float(), targets=target_t)

    # ------------------------------------------------------------------ for subclasses
    def _compute(self, x: Tensor, targets: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Raw ``(B, h, w)`` map, logits and targets for input ``x``. Default: one hooked pass, then ``_map``."""
        cap = self._capture(x, targets, need_grad=type(self).needs_grad)
        with torch.autocast(device_type=x.device.type, enabled=False):
            raw = self._map(cap)
        return raw, cap.logits, cap.targets

    def _map(self, cap: Capture) -> Tensor:
        """Raw ``(B, h, w)`` map (before ReLU) from a :class:`Capture`."""
        raise NotImplementedError

    def _postprocess(self, raw: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        return postprocess_maps(raw, size)

    def _logits(self, x: Tensor) -> Tensor:
        """A plain forward without hooks or autograd (for extra passes such as Score-CAM's masked inputs)."""
        with torch.no_grad():
            return check_logits(self.model(x), x.shape[0], self.model)

    def _capture(self, x: Tensor, targets: Tensor | None, need_grad: bool) -> Capture:
        """One forward with the target layer hooked; with ``need_grad`` also ``dy^c/dA`` via ``autograd.grad``."""
        store: list[Tensor] = []
        layer_name = self.target_layer_name

        def hook(module: nn.Module, args: object, output: object) -> Tensor | None:
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"target layer {layer_name!r} ({type(module).__name__}) returned {type(output).__name__}, not a "
                    "tensor; choose a layer whose output is a single (B, C, h, w) tensor (e.g. a conv block), or its "
                    "submodule that produces the feature map."
                )
            if store:
                raise RuntimeError(
                    f"target layer {layer_name!r} ran more than once in one forward (a shared module); choose a "
                    "layer that runs once."
                )
            act = output.detach()
            if need_grad:
                act.requires_grad_(True)
                store.append(act)
                torch.set_grad_enabled(True)  # autograd from here on; the enclosing no_grad() restores the mode
                return act.clone()  # downstream in-place ops (ReLU(inplace=True)) must not touch `act`
            store.append(act.clone())
            return None

        handle = self.target_layer.register_forward_hook(hook)
        try:
            with torch.no_grad():
                logits = check_logits(self.model(x), x.shape[0], self.model)
                if not store:
                    raise RuntimeError(
                        f"target layer {layer_name!r} was not called during {type(self.model).__name__}.forward; "
                        "choose a layer on the path from the input to the logits."
                    )
                if targets is None:
                    targets = logits.detach().argmax(dim=1)
                check_target_range(targets, logits.shape[1])
                act = store[0]
                grad: Tensor | None = None
                if need_grad:
                    score = logits.gather(1, targets.view(-1, 1)).sum()
                    if not score.requires_grad:
                        raise _not_on_path(layer_name)
                    (grad,) = torch.autograd.grad(score, act, allow_unused=True)
                    if grad is None:
                        raise _not_on_path(layer_name)
        finally:
            handle.remove()
        acts = reshape_activation(act.detach(), self.reshape, layer_name).float()
        grads = reshape_activation(grad, self.reshape, layer_name).float() if grad is not None else None
        return Capture(acts, grads, logits.detach(), targets)
