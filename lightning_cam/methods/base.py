"""``BaseCAM``: hooks, target selection, upsampling and normalisation, shared by every method.

A method only supplies its raw low-resolution map (``_map``) from the target layer's activation and,
for gradient methods, :math:`\\partial y^c / \\partial A`; the maths lives in :mod:`lightning_cam.functional`.
"""

from __future__ import annotations

import functools
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lightning_cam.functional.normalize import postprocess_maps
from lightning_cam.methods.layers import (
    Reshape,
    check_reshape,
    infer_layout,
    reshape_activation,
    resolve_layer,
)
from lightning_cam.methods.result import CAMResult
from lightning_cam.utilities.checks import check_images, check_logits, check_target_range, check_targets
from lightning_cam.utilities.modes import eval_mode

__all__ = ["BaseCAM", "Capture", "ExtraInputs", "Reshape", "describe_blank", "is_checked", "mark_checked"]

# Target tensors known to be in range (an argmax, or already checked), by id: checking again would read the
# tensor back to the host (a device sync) at every pass, e.g. the evaluator's second pass on x * map.
_CHECKED: weakref.WeakValueDictionary[int, Tensor] = weakref.WeakValueDictionary()


def mark_checked(targets: Tensor) -> Tensor:
    """Mark ``targets`` as valid class indices (no range check, hence no host sync, when passed again); returns it.

    Only for tensors derived from checked ones (an argmax of the logits, a reordering of checked targets).
    """
    _CHECKED[id(targets)] = targets
    return targets


def is_checked(targets: Tensor) -> bool:
    """Whether ``targets`` was marked by :func:`mark_checked`."""
    return _CHECKED.get(id(targets)) is targets


@dataclass(frozen=True)
class ExtraInputs:
    """Model inputs besides the images: ``model(images, *args, **kwargs)``.

    Every forward a method or :func:`~lightning_cam.evaluate_batch` makes passes them on. A tensor whose
    first dimension is the batch size ``B`` (also inside a tuple, list or dict value) is per-sample: it is
    indexed with the same sample indices as the images of each forward (Score-CAM's masked images,
    Smooth Grad-CAM++'s noisy copies, chunks); anything else is passed unchanged.

    ``extra=`` arguments also accept a plain tuple (positional) or mapping (keyword), see :meth:`of`.

    Example:
        >>> extra = ExtraInputs.of({"meta": torch.arange(3)})
        >>> extra.take(torch.tensor([2, 2]), batch=3).kwargs["meta"]
        tensor([2, 2])
    """

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, extra: object) -> ExtraInputs:
        """``None`` -> nothing; a tuple/list -> positional args; a mapping -> keyword args; an ``ExtraInputs``."""
        if extra is None:
            return cls()
        if isinstance(extra, ExtraInputs):
            return extra
        if isinstance(extra, Mapping):
            return cls(kwargs=dict(extra))
        if isinstance(extra, (tuple, list)):
            return cls(args=tuple(extra))
        raise TypeError(
            f"extra model inputs must be a tuple (positional), a dict (keyword) or ExtraInputs(args, kwargs); "
            f"got {type(extra).__name__}. A single tensor goes in a 1-tuple: extra=(meta,)."
        )

    def __bool__(self) -> bool:
        return bool(self.args) or bool(self.kwargs)

    def apply(self, fn: Callable[[Tensor], Tensor]) -> ExtraInputs:
        """The same inputs with ``fn`` applied to every tensor (e.g. a move to another device).

        Example:
            >>> ExtraInputs(args=(torch.zeros(2),)).apply(lambda t: t + 1).args[0]
            tensor([1., 1.])
        """

        def go(value: Any) -> Any:
            if isinstance(value, Tensor):
                return fn(value)
            if isinstance(value, (tuple, list)):
                return type(value)(go(v) for v in value)
            if isinstance(value, Mapping):
                return {k: go(v) for k, v in value.items()}
            return value

        return ExtraInputs(go(self.args), go(dict(self.kwargs)))

    def take(self, index: Tensor, batch: int) -> ExtraInputs:
        """The inputs for images ``x[index]`` of a batch of ``batch`` samples."""
        if not self:
            return self

        def pick(value: Any) -> Any:
            if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch:
                return value[index.to(value.device)]
            if isinstance(value, (tuple, list)):
                return type(value)(pick(v) for v in value)
            if isinstance(value, Mapping):
                return {k: pick(v) for k, v in value.items()}
            return value

        return ExtraInputs(tuple(pick(a) for a in self.args), {k: pick(v) for k, v in self.kwargs.items()})


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


def _not_on_path(layer_name: str, reentrant: bool = False) -> RuntimeError:
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


def _in_reentrant_checkpoint() -> bool:
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


def blank_reason(layer_name: str, layout: str | None, zero_grad: bool, zero_act: bool) -> str:
    """The likely cause of a blank (constant) map, for reports and the callback's ``blank`` fault.

    Example:
        >>> blank_reason("blocks.11", "tokens", zero_grad=True, zero_act=False)[:50]
        'the gradient of the target score w.r.t. target lay'
    """
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


def describe_blank(cls_name: str, layer_name: str, layout: str | None, blank: Tensor, zero_grad: Tensor | None,
                   zero_act: Tensor | None) -> str:
    """The blank samples of one call grouped by likely cause (:func:`blank_reason`), ``""`` when none is blank
    (reads the flags back to the host: called only when the text is read).

    Example:
        >>> describe_blank("GradCAM", "4", "nchw", torch.tensor([False, True]), torch.tensor([False, True]), None)[:30]
        'GradCAM: blank (constant) map,'
    """
    if not bool(blank.any()):
        return ""
    causes: dict[str, list[int]] = {}
    for i in blank.nonzero().flatten().tolist():
        zg = bool(zero_grad[i]) if zero_grad is not None and i < len(zero_grad) else False
        za = bool(zero_act[i]) if zero_act is not None and i < len(zero_act) else False
        causes.setdefault(blank_reason(layer_name, layout, zg, za), []).append(i)
    text = "; ".join(f"samples {idx[:8]}{'...' if len(idx) > 8 else ''}: {why}" for why, idx in causes.items())
    return f"{cls_name}: blank (constant) map, {text}."


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

    Blank maps: a sample whose map is constant (all zero after normalisation) carries no explanation;
    ``CAMResult.blank`` flags it and ``CAMResult.blank_reason`` names the likely cause (a zero gradient,
    e.g. a transformer block output whose patch tokens do not reach the head; a zero activation; or a
    weighted sum that ReLU removes everywhere). :func:`~lightning_cam.evaluate_batch` gives such samples
    NaN in every metric, so the metric classes skip and count them instead of scoring them.

    Extra model inputs (``forward(x, meta)``): ``explain(images, extra=(meta,))`` passes them to every
    forward, per sample (see :class:`ExtraInputs`).

    Args:
        model: the classifier; ``model(images)`` must return ``(B, K)`` logits.
        target_layer: dotted module name (``"layer4"``, ``"features.28"``) or the module itself. A unique
            suffix of a dotted name is accepted (``"layer4"`` for ``"net.layer4"``).
        reshape: the layout of the layer output (see :mod:`lightning_cam.methods.layers`): ``None`` detects
            it from the model (``(B, C, h, w)``, channels-last ``(B, h, w, C)`` or ``(B, N, C)`` tokens) and
            raises when the model does not settle it; ``"nchw"``, ``"nhwc"``, ``"tokens"``, ``"vit"`` (drop
            the class token, square grid) name it; a callable maps the output to ``(B, C, h, w)``.

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
    #: whether a constant map means "no explanation" (False for Fake-CAM, whose pattern is fixed)
    can_be_blank: ClassVar[bool] = True

    def __init__(self, model: nn.Module, target_layer: str | nn.Module, reshape: Reshape = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        self.model = model
        self.target_layer_name, self.target_layer = resolve_layer(model, target_layer)
        self.reshape = check_reshape(reshape)
        self._layouts: dict[tuple[Any, ...], str] = {}
        self._diag: tuple[str | None, Tensor, Tensor] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target_layer={self.target_layer_name!r})"

    def __call__(self, images: Tensor, targets: Tensor | None = None, extra: object = None) -> Tensor:
        """``(B, H, W)`` float32 maps in ``[0, 1]`` on ``images.device``; see :meth:`explain`."""
        return self.explain(images, targets, extra=extra).maps

    def explain(self, images: Tensor, targets: Tensor | None = None, extra: object = None) -> CAMResult:
        """Compute the maps and everything the evaluator reuses.

        Args:
            images: ``(B, C, H, W)`` float tensor in the model's input space.
            targets: ``(B,)`` integer classes to explain (an int applies to all); ``None`` = argmax of the logits.
            extra: further model inputs, ``model(images, *args, **kwargs)``: a tuple (positional), a dict
                (keyword) or :class:`ExtraInputs`; per-sample tensors follow the images of every forward.

        Returns:
            :class:`~lightning_cam.methods.result.CAMResult` with ``maps`` ``(B, H, W)`` in ``[0, 1]``,
            ``low_res`` ``(B, h, w)`` (ReLU'd, not normalised), detached float32 ``logits`` ``(B, K)``,
            ``targets`` ``(B,)``, ``blank`` ``(B,)`` bool and ``blank_reason``.
        """
        images = check_images(images)
        extra_in = ExtraInputs.of(extra)
        target_t = check_targets(targets, images.shape[0], images.device)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        self._diag = None
        with torch.inference_mode(False), eval_mode(self.model):
            x = images.clone() if images.is_inference() else images.detach()
            if target_t is not None and target_t.is_inference():
                target_t = target_t.clone()  # inference tensors cannot be saved for backward (gather's index)
            raw, logits, target_t = self._compute(x, target_t, extra_in)
            return self._result(raw, logits, target_t, size)

    def _result(self, raw: Tensor, logits: Tensor, targets: Tensor, size: tuple[int, int]) -> CAMResult:
        """Postprocess a raw map into the :class:`CAMResult` (shared by :meth:`explain` and the method group)."""
        with torch.autocast(device_type=raw.device.type, enabled=False):
            maps, low_res = self._postprocess(raw, size)
        blank, reason = self._blank(maps)
        return CAMResult(
            maps=maps, low_res=low_res, logits=logits.detach().float(), targets=targets, blank=blank,
            blank_reason=reason,  # type: ignore[arg-type]  # formatted lazily (no host sync), see CAMResult
        )

    def _blank(self, maps: Tensor) -> tuple[Tensor, Callable[[], str] | str]:
        """Per-sample blank flags (a constant map normalises to all zeros) and the likely cause.

        The cause is returned as a function formatted only when read (``CAMResult.blank_reason``): deciding
        whether any sample is blank would be a host-device sync on every call.
        """
        if not type(self).can_be_blank:
            return torch.zeros(maps.shape[0], dtype=torch.bool, device=maps.device), ""
        blank = maps.flatten(1).amax(dim=1) <= 0
        layout, zero_grad, zero_act = self._diag if self._diag is not None else (None, None, None)
        return blank, functools.partial(describe_blank, type(self).__name__, self.target_layer_name, layout, blank,
                                        zero_grad, zero_act)

    # ------------------------------------------------------------------ for subclasses
    def _compute(self, x: Tensor, targets: Tensor | None, extra: ExtraInputs) -> tuple[Tensor, Tensor, Tensor]:
        """Raw ``(B, h, w)`` map, logits and targets for input ``x``. Default: one hooked pass, then ``_map``."""
        cap = self._capture(x, targets, need_grad=self._needs() == "grad", extra=extra)
        return self._derive(cap, x, extra), cap.logits, cap.targets

    def _needs(self) -> str:
        """What :meth:`_derive` reads of the clean pass on ``x``: ``"grad"`` (activation and gradient),
        ``"activation"`` (the activation only) or ``"logits"`` (only the logits and targets). A method group
        (:class:`~lightning_cam.methods.group.MethodGroup`) runs one capture per target layer for all its
        methods, with gradients when one of them needs them."""
        return "grad" if type(self).needs_grad else "activation"

    def _derive(self, cap: Capture, x: Tensor, extra: ExtraInputs) -> Tensor:
        """Raw ``(B, h, w)`` map from the clean pass ``cap`` on ``x``; may run more passes (Score-CAM's masked
        images, Smooth Grad-CAM++'s noisy copies). Default: ``_map(cap)`` in float32."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._map(cap)

    def _map(self, cap: Capture) -> Tensor:
        """Raw ``(B, h, w)`` map (before ReLU) from a :class:`Capture`."""
        raise NotImplementedError

    def _postprocess(self, raw: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        return postprocess_maps(raw, size)

    def _forward(self, x: Tensor, extra: ExtraInputs | None = None) -> Tensor:
        """``model(x, *extra.args, **extra.kwargs)``, checked to be ``(B, K)`` logits."""
        extra = extra or ExtraInputs()
        out = self.model(x, *extra.args, **dict(extra.kwargs))
        if isinstance(out, (Mapping, tuple, list)) and not isinstance(out, Tensor):
            kind = f"dict (keys {sorted(out)})" if isinstance(out, Mapping) else type(out).__name__
            raise TypeError(
                f"{type(self.model).__name__}.forward returned {kind}; CAM methods need the (B, num_classes) logits "
                "tensor. Override `cam_model()` on your LightningModule (CAMMixin) to return a module whose forward "
                "returns only the logits (e.g. a small wrapper that picks out['logits'])."
            )
        return check_logits(out, x.shape[0], self.model)

    def _logits(self, x: Tensor, extra: ExtraInputs | None = None) -> Tensor:
        """A plain forward without hooks or autograd (for extra passes such as Score-CAM's masked inputs)."""
        with torch.no_grad():
            return self._forward(x, extra)

    def _layout(self, value: Tensor, size: tuple[int, int]) -> str | None:
        """The layout of the target layer's output, detected once per shape (``None`` for a callable)."""
        if self.reshape is not None:
            return self.reshape if isinstance(self.reshape, str) else None
        key = (tuple(value.shape[1:]), size)
        if key not in self._layouts:
            self._layouts[key] = infer_layout(self.model, self.target_layer_name, value.shape, size)
        return self._layouts[key]

    def _capture(
        self, x: Tensor, targets: Tensor | None, need_grad: bool, extra: ExtraInputs | None = None,
        trusted: bool = False,
    ) -> Capture:
        """One forward with the target layer hooked; with ``need_grad`` also ``dy^c/dA`` via ``autograd.grad``.

        Given ``targets`` are range-checked (a host sync) unless ``trusted`` (derived from an earlier pass's
        logits); ``None`` takes the argmax, always in range."""
        store: list[Tensor] = []
        reentrant: list[bool] = []
        layer_name = self.target_layer_name

        def hook(module: nn.Module, args: object, output: object) -> Tensor | None:
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"target layer {layer_name!r} ({type(module).__name__}) returned {type(output).__name__}, not a "
                    "tensor; choose a layer whose output is a single (B, C, h, w) tensor (e.g. a conv block), or its "
                    "submodule that produces the feature map."
                )
            if store:
                if reentrant and reentrant[0]:
                    return None  # no second run to worry about: the error below names the checkpointing
                raise RuntimeError(
                    f"target layer {layer_name!r} ran more than once in one forward (a shared module); choose a "
                    "layer that runs once."
                )
            reentrant.append(_in_reentrant_checkpoint())
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
                logits = self._forward(x, extra)
                if not store:
                    raise RuntimeError(
                        f"target layer {layer_name!r} was not called during {type(self.model).__name__}.forward; "
                        "choose a layer on the path from the input to the logits."
                    )
                if targets is None:
                    targets = mark_checked(logits.detach().argmax(dim=1))
                elif not (trusted or is_checked(targets)):
                    check_target_range(targets, logits.shape[1])
                    mark_checked(targets)
                act = store[0]
                grad: Tensor | None = None
                if need_grad:
                    score = logits.gather(1, targets.view(-1, 1)).sum()
                    if not score.requires_grad:
                        raise _not_on_path(layer_name, bool(reentrant and reentrant[0]))
                    (grad,) = torch.autograd.grad(score, act, allow_unused=True)
                    if grad is None:
                        raise _not_on_path(layer_name, bool(reentrant and reentrant[0]))
        finally:
            handle.remove()
        size = (int(x.shape[-2]), int(x.shape[-1]))
        layout = self._layout(act, size)
        reshape = self.reshape if layout is None else layout
        acts = reshape_activation(act.detach(), reshape, layer_name, model=self.model, image_size=size).float()
        grads = (
            reshape_activation(grad, reshape, layer_name, model=self.model, image_size=size).float()
            if grad is not None
            else None
        )
        if self._diag is None:  # the first capture of a call explains blank maps
            zero_act = acts.flatten(1).abs().amax(dim=1) == 0
            zero_grad = grads.flatten(1).abs().amax(dim=1) == 0 if grads is not None else torch.zeros_like(zero_act)
            self._diag = (layout, zero_grad, zero_act)
        return Capture(acts, grads, logits.detach(), targets)
