r"""``BaseCAM``: hooks, target selection, upsampling and normalisation, shared by every method.

**Writing a method** is one file: a ``BaseCAM`` subclass decorated with
[`register_method`][lightning_cam.methods.registry.register_method] that overrides one of these public hooks
(each a documented default here; the maths lives in `lightning_cam.functional`):

* [`weights`][lightning_cam.methods.base.BaseCAM.weights] `(Capture) -> (B, C)`: channel weights; the map is
  $\sum_k w_k A^k$ (the Grad-CAM family);
* [`raw_map`][lightning_cam.methods.base.BaseCAM.raw_map] `(Capture) -> (B, h, w)`: the raw map from the
  activation and gradient (Layer-CAM);
* [`derive`][lightning_cam.methods.base.BaseCAM.derive] `(Capture, x, extra) -> (B, h, w)`: when the map needs
  more forwards than the clean pass (Score-CAM, Smooth Grad-CAM++); it may call
  [`capture`][lightning_cam.methods.base.BaseCAM.capture] and
  [`forward_logits`][lightning_cam.methods.base.BaseCAM.forward_logits];
* [`needs`][lightning_cam.methods.base.BaseCAM.needs]: what the clean pass must capture (`"grad"`,
  `"activation"`, `"logits"` or `"targets"`), by default from the class attribute `needs_grad`;
* [`postprocess`][lightning_cam.methods.base.BaseCAM.postprocess]: the raw map to `[0, 1]` (Fake-CAM keeps its
  pattern);
* [`score`][lightning_cam.methods.base.BaseCAM.score] `(logits, targets, reference) -> (B,)`: the score whose
  gradient the capture takes, by default the output kind's (Finer-CAM explains a difference of classes; with
  ``shares_capture = False``, since a group's shared gradient is of the default score);
* [`layer_gradient`][lightning_cam.methods.base.BaseCAM.layer_gradient] `(score, A) -> dA`: what the capture
  keeps as the gradient (Shapley-CAM adds a Hessian-vector product; ``shares_capture = False`` too);
* [`combine`][lightning_cam.methods.base.BaseCAM.combine] `(results) -> CAMResult`: how the maps of several
  target layers make one (their mean by default; Refine-CAM multiplies them).

A method whose map comes from its own forward and backward through the whole model rather than one layer's
activation (FullGrad, LeGrad) subclasses [`OwnPassCAM`][lightning_cam.methods.own_pass.OwnPassCAM] and overrides its
`hooks` and `pass_map`.

The engine does the rest: one capture ([`capture`][lightning_cam.methods.base.BaseCAM.capture], a
[`Capture`][lightning_cam.methods.capture.Capture]), ReLU, upsampling, normalisation and the blank flags
([`finish`][lightning_cam.methods.base.BaseCAM.finish]).
[`MethodGroup`][lightning_cam.methods.group.MethodGroup] drives exactly these public hooks to run several
methods from one shared pass. A class that overrides `explain` is always called on its own by a group (its
`explain` is never bypassed); a class that cannot work from a shared clean pass for another reason sets
`shares_capture = False`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from lightning_cam.functional.cam import weighted_sum
from lightning_cam.functional.normalize import postprocess_maps
from lightning_cam.methods.blank import BlankDiagnosis, blank_flags
from lightning_cam.methods.capture import Capture, LayerRecorder, not_on_path
from lightning_cam.methods.choose import choose_target_layer, skipped_layers
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.layers import (
    Reshape,
    TargetLayer,
    check_reshape,
    infer_layout,
    reshape_activation,
    resolve_layer,
)
from lightning_cam.methods.pairs import check_reference, empty_result, prepare
from lightning_cam.methods.result import CAMResult
from lightning_cam.methods.several import layer_copies, several_layers
from lightning_cam.methods.targets import resolve_targets
from lightning_cam.targets.task import Task, check_task, check_task_logits, target_score
from lightning_cam.utilities.checks import check_images, check_logits
from lightning_cam.utilities.modes import eval_mode
from lightning_cam.utilities.outputs import Output, check_output, select_logits

__all__ = ["BaseCAM", "Need"]

log = logging.getLogger("lightning_cam")


def _rank_zero() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0

#: what a method's clean pass captures: activation and gradient, the activation, the logits only, or only the
#: targets (no clean forward when they are given: the logits are computed if read, e.g. Smooth Grad-CAM++).
Need = Literal["grad", "activation", "logits", "targets"]


class BaseCAM:
    """Base class of the CAM methods: ``cam(images, targets=None)`` -> ``(B, H, W)`` maps in ``[0, 1]``.

    One call: the model in eval mode, one forward hooking the target layer's output $A$; gradient methods
    run the layers before it without autograd and take ``torch.autograd.grad(sum_b y_b^{c_b}, A)`` from a
    detached copy (no parameter ``.grad``, samples independent). The method turns $A$ (and the gradient)
    into a raw ``(B, h, w)`` map; ReLU, bilinear upsampling to ``(H, W)`` and per-sample min-max normalisation
    (a constant map becomes zeros, never NaN) follow, in float32.

    Works under ``torch.no_grad()``, ``torch.inference_mode()`` (the input is cloned out of inference mode)
    and ``torch.autocast`` (the model runs in the autocast dtype, the CAM maths in float32). Hooks are
    removed, and every module's train/eval flag restored, even when the call raises.

    Blank maps (constant, no explanation) are flagged in ``CAMResult.blank`` with their likely cause in
    ``blank_reason`` (`lightning_cam.methods.blank`); [`evaluate_batch`][lightning_cam.evaluate_batch] gives them
    NaN in every metric. Extra model inputs: ``explain(images, extra=(meta,))`` passes them to every
    forward, per sample ([`ExtraInputs`][lightning_cam.methods.extra.ExtraInputs]).

    Subclasses override the public hooks of the contract in the module docstring (`weights`, `raw_map`, `derive`,
    `needs`, `postprocess`), never ``explain``.

    Args:
        model: the classifier; ``model(images)`` returns ``(B, K)`` logits, or an output they are read from
            (``output``).
        target_layer: dotted module name (``"layer4"``, ``"features.28"``) or the module itself. A unique
            suffix of a dotted name is accepted (``"layer4"`` for ``"net.layer4"``). ``None``: chosen at the
            first call by what the model does
            ([`choose_target_layer`][lightning_cam.methods.choose.choose_target_layer]). A list of several
            layers (``["layer3", "layer4"]``) explains each and averages their maps at the input size, as
            pytorch-grad-cam does with several ``target_layers`` (`several_layers`): for a model with no single
            layer that everything passes through (branches that meet only at the head).
        reshape: the layout of the layer output (see `lightning_cam.methods.layers`): ``None`` detects
            it from the model (``(B, C, h, w)``, channels-last ``(B, h, w, C)`` or ``(B, N, C)`` tokens) and
            raises when the model does not settle it; ``"nchw"``, ``"nhwc"``, ``"tokens"``, ``"vit"`` (drop
            the class token, square grid) name it; a callable maps the output to ``(B, C, h, w)``.
        output: where the logits are in the model's output (`lightning_cam.utilities.outputs`): ``None``
            reads a tensor, ``.logits`` or ``["logits"]``; a key, an index or a callable for anything else.
        task: the output kind ([`lightning_cam.targets.task`][lightning_cam.targets.task]): ``"multiclass"`` (softmax,
            default),
            ``"multilabel"`` (a sigmoid per class: one map per (image, class) pair, `pairs`)
            or ``"binary"`` (one logit; class 1 explains it, class 0 its negation); a
            [`Task`][lightning_cam.targets.task.Task] sets the multi-label ``threshold`` and ``max_labels``.

    Examples:
        >>> from lightning_cam.methods import GradCAM
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> GradCAM(net, target_layer="1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    #: canonical registry name (see [`lightning_cam.methods.get_method`][lightning_cam.methods.get_method])
    name: ClassVar[str] = ""
    #: other accepted names
    aliases: ClassVar[tuple[str, ...]] = ()
    #: whether the method differentiates the target score w.r.t. the activation
    needs_grad: ClassVar[bool] = True
    #: whether a constant map means "no explanation" (False for Fake-CAM, whose pattern is fixed)
    can_be_blank: ClassVar[bool] = True
    #: whether ``target_layer=None`` is allowed (a method that needs no activation, e.g. Fake-CAM)
    layer_optional: ClassVar[bool] = False
    #: whether a `MethodGroup` may hand it a shared clean pass (a class that overrides `explain` never gets one)
    shares_capture: ClassVar[bool] = True
    #: the method's floor per batch of ``B`` images in passes, for the docs' table (``""``: one forward, with one
    #: backward from the target layer for a gradient method: `cost`)
    floor: ClassVar[str] = ""
    #: whether its floor lets it run at every validation of a training run (no cost growing with channels or samples)
    leave_on: ClassVar[bool] = True
    #: what in its passes a rank with nothing to explain cannot mirror under sharded parameters (``""``: nothing;
    #: the lock-step mirrors forwards, each with at most one backward to a target layer:
    #: `lightning_cam.utilities.lockstep`); a method that says something here (a backward through the whole model, a
    #: double backward) is left out of sharded runs with this reason
    unshardable: ClassVar[str] = ""
    #: the target kinds (``task=``) the method explains; ``None``: every kind (a method defined for one output, such
    #: as Finer-CAM's softmax comparison, names it, and any other kind is refused at construction, naming the fix)
    kinds: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, model: nn.Module, target_layer: TargetLayer = None, reshape: Reshape = None, *,
                 output: Output = None, task: Task | str = "multiclass") -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        self.model = model
        self.target_layer: nn.Module | None
        #: ``target_layer=None``: chosen at the first call (`lightning_cam.methods.choose`), reason kept
        self.auto_layer = target_layer is None and not type(self).layer_optional
        self.target_layer_reason = ""
        self.prefix: int | None = None  # prefix tokens at an auto-chosen token layer (decided with the layer)
        #: several target layers: ``(name, module)`` each (`several_layers`); empty for one layer
        self.layers: tuple[tuple[str, nn.Module], ...] = ()
        self._parts: list[BaseCAM] | None = None
        if target_layer is None:
            self.target_layer_name, self.target_layer = "", None
        elif isinstance(target_layer, (list, tuple)):
            self._set_layers([resolve_layer(model, layer) for layer in target_layer])
        else:
            self.target_layer_name, self.target_layer = resolve_layer(model, target_layer)  # type: ignore[arg-type]
        self.reshape = check_reshape(reshape)
        self.output = check_output(output)
        self.task = check_task(task)
        kinds = type(self).kinds
        if kinds is not None and self.task.kind not in kinds:
            raise ValueError(f"{type(self).__name__} explains {' and '.join(kinds)} models only, got "
                             f"task={self.task.kind!r}; use another method (gradcam explains every kind).")
        self._layouts: dict[tuple[Any, ...], str] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target_layer={self.target_layer_name!r})"

    @classmethod
    def cost(cls) -> str:
        """The method's floor per batch (`floor`, or one forward, with a backward from the layer if it needs one)."""
        return cls.floor or ("1 forward + 1 backward from the layer" if cls.needs_grad else "1 forward")

    def _set_layers(self, resolved: list[tuple[str, nn.Module]]) -> None:
        """One target layer, or several (a list of two or more distinct layers: `several_layers`)."""
        if not resolved:
            raise ValueError("target_layer=[] names no layer; name one or more, or pass None to let the rule choose.")
        names = [name for name, _ in resolved]
        if len(set(names)) != len(names):
            raise ValueError(f"target_layer names a layer twice: {names}; name each layer once.")
        self.target_layer_name, self.target_layer = "+".join(names), resolved[0][1]
        self.layers = tuple(resolved) if len(resolved) > 1 else ()
        self._parts = None

    @property
    def target_layers(self) -> tuple[nn.Module, ...]:
        """Every module the method explains: its several layers, its one layer, or none yet."""
        if self.layers:
            return tuple(module for _, module in self.layers)
        return () if self.target_layer is None else (self.target_layer,)

    def layer_parts(self) -> list[BaseCAM]:
        """With several target layers, one copy of this method per layer (made once: the same options, one layer
        each); ``[]`` with one."""
        if not self.layers:
            return []
        if self._parts is None:
            self._parts = layer_copies(self)
        return self._parts

    def __call__(self, images: Tensor, targets: Tensor | None = None, extra: object = None) -> Tensor:
        """``(B, H, W)`` float32 maps in ``[0, 1]`` on ``images.device``; see
        [`explain`][lightning_cam.methods.base.BaseCAM.explain]."""
        return self.explain(images, targets, extra=extra).maps

    def explain(self, images: Tensor, targets: Tensor | None = None, extra: object = None,
                reference: Tensor | None = None) -> CAMResult:
        """Compute the maps and everything the evaluator reuses.

        Args:
            images: ``(B, C, H, W)`` float tensor in the model's input space.
            targets: ``(B,)`` integer classes to explain (an int applies to all); ``None`` = the predicted class
                ([`predicted_class`][lightning_cam.targets.task.predicted_class]). Under ``task="multilabel"``, a ``(B,
                K)``
                multi-hot matrix or ``None`` gives one map per (image, class) pair: each positive label, or each
                predicted positive (``result.samples`` names each map's image).
            extra: further model inputs, ``model(images, *args, **kwargs)``: a tuple (positional), a dict
                (keyword) or [`ExtraInputs`][lightning_cam.methods.extra.ExtraInputs]; per-sample tensors follow the
                images of every forward.
            reference: with ``(B,)`` targets of a kind that has one (a segmentation pair's region,
                [`TargetKind.reference`][lightning_cam.targets.base.TargetKind.reference]), what each target is
                scored against, fixed on another image: the evaluator's pass on the masked image explains the pairs of
                the original image. ``None``: taken from this call's own forward.

        Returns:
            [`CAMResult`][lightning_cam.methods.result.CAMResult] with ``maps`` ``(B, H, W)`` in ``[0, 1]``,
            ``low_res`` ``(B, h, w)`` (ReLU'd, not normalised), detached float32 ``logits`` ``(B, K)``,
            ``targets`` ``(B,)``, ``blank`` ``(B,)`` bool and ``blank_reason`` (``B``: the number of pairs of a
            multi-label call, with ``samples``).
        """
        images = check_images(images)
        extra_in = ExtraInputs.of(extra)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        with torch.inference_mode(False), eval_mode(self.model):
            if self.auto_layer and self.target_layer is None and images.shape[0] > 0:  # the rule may choose several
                x = images.detach()
                self.ensure_layer(x.clone() if x.is_inference() else x, extra_in)
            if self.layers:  # one explanation per layer, their maps combined (`several_layers`)
                return self.combine([part.explain(images, targets, extra, reference) for part in self.layer_parts()])
            job = prepare(self.task, images, targets, extra_in, self.forward_logits, self.ensure_layer)
            check_reference(reference, job)
            if job.images.shape[0] == 0:
                return empty_result(job, size)
            cap = self.capture(job.images, job.targets, self.needs(), job.extra, reference=reference)
            return self.finish(self.derive(cap, job.images, job.extra), cap, size).paired(job.samples)

    # ------------------------------------------------------------------ the hooks a method overrides
    def needs(self) -> Need:
        """What the clean pass on ``x`` must capture for `derive` (`Need`; default from ``needs_grad``).
        A method group runs one capture per target layer for all its methods, with the gradient if one needs it."""
        return "grad" if type(self).needs_grad else "activation"

    def weights(self, cap: Capture) -> Tensor:
        """``(B, C)`` channel weights $w_k$ of the map $\\sum_k w_k A^k$ (float32, from ``cap``)."""
        raise NotImplementedError(f"{type(self).__name__} must override weights, raw_map or derive.")

    def raw_map(self, cap: Capture) -> Tensor:
        """Raw ``(B, h, w)`` map (before ReLU) from a [`Capture`][lightning_cam.methods.capture.Capture]. Default:
        $\\sum_k w_k A^k$ with the weights of `weights`."""
        return weighted_sum(self.weights(cap), cap.activations)

    def derive(self, cap: Capture, x: Tensor, extra: ExtraInputs) -> Tensor:
        """Raw ``(B, h, w)`` map from the clean pass ``cap`` on ``x``; may run more passes (Score-CAM's masked
        images, Smooth Grad-CAM++'s noisy copies), explaining ``cap.targets`` (valid class indices). Default:
        `raw_map` in float32."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.raw_map(cap)

    def postprocess(self, raw: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """``(maps (B, H, W) in [0, 1], low_res (B, h, w))`` from a raw map: ReLU, upsampling, normalisation."""
        return postprocess_maps(raw, size)

    # ------------------------------------------------------------------ the engine
    def forward_logits(self, x: Tensor, extra: object = None) -> Tensor:
        """The model's logits for ``x``: a plain forward without hooks or autograd, read as every pass of this
        method reads them (for extra passes such as Score-CAM's masked inputs)."""
        with torch.no_grad():
            return self._forward(x, ExtraInputs.of(extra))

    def padding(self, x: Tensor, extra: ExtraInputs, batch: int) -> Callable[[], None]:
        """The throw-away forward a chunked loop pads with in a sharded run (every rank the same forwards; the result
        unused): one zero image like ``x``'s, with the first sample's extra inputs (``batch``: the samples of
        ``extra``)."""
        def pad() -> None:
            self.forward_logits(torch.zeros_like(x[:1]), extra.take(torch.zeros(1, dtype=torch.long), batch) or None)

        return pad

    def _forward(self, x: Tensor, extra: ExtraInputs | None = None) -> Tensor:
        """``model(x, *extra.args, **extra.kwargs)``, its logits read by `output` and checked to be ``(B, K)``
        (``(B, 1)`` exactly when the task is ``binary``)."""
        extra = extra or ExtraInputs()
        out = select_logits(extra.call(self.model, x), self.output, self.model)
        return check_task_logits(check_logits(out, x.shape[0], self.model), self.task)

    def ensure_layer(self, x: Tensor, extra: ExtraInputs | None = None) -> None:
        """With ``target_layer=None``: choose the layer on ``x`` (once; cached per model and input shape) and
        log the choice with its reason on the ``lightning_cam`` logger."""
        if self.target_layer is not None or not self.auto_layer:
            return
        choice = choose_target_layer(self.model, x, extra, self.output)
        self._set_layers([resolve_layer(self.model, name) for name in choice.names])
        self.prefix = choice.prefix
        if self.target_layer_reason != choice.reason and _rank_zero():
            log.info("lightning_cam: %s explains layer %s", type(self).__name__, choice.reason)
            if choice.skipped:  # the choice may sit earlier than the layer meant: said where the user looks
                warnings.warn(skipped_layers(type(self).__name__, choice), UserWarning, stacklevel=2)
        self.target_layer_reason = choice.reason

    def _targets(self, logits: Tensor, targets: Tensor | None, trusted: bool) -> Tensor:
        """The classes the pass explains (`resolve_targets`)."""
        return resolve_targets(logits, targets, self.task, trusted)

    def capture(self, x: Tensor, targets: Tensor | None, need: Need | bool, extra: ExtraInputs | None = None,
                 trusted: bool = False, reference: Tensor | None = None) -> Capture:
        """One forward: the logits, targets and (``need`` "activation"/"grad") the target layer's activation, with
        "grad" also ``dy^c/dA`` via ``autograd.grad`` (never parameter ``.grad``); "targets" with given targets: no
        forward. Given ``targets`` are range-checked (a host sync) unless ``trusted``; ``None`` takes the argmax.
        ``reference``: what each target is scored against (`explain`), else taken from this forward."""
        need = "grad" if need is True else "activation" if need is False else need
        if need == "targets" and targets is not None:  # no forward: the clean logits only if someone reads them
            return Capture(x.new_empty(0), None, lambda: _deferred_logits(self, x, extra), targets,
                           reference=reference)
        if need not in ("logits", "targets"):
            self.ensure_layer(x, extra)
        if need in ("logits", "targets") or self.target_layer is None:
            logits = self.forward_logits(x, extra).detach()
            chosen = self._targets(logits, targets, trusted)
            return Capture(x.new_empty(0), None, logits, chosen, reference=self._reference(logits, chosen, reference))
        recorder = LayerRecorder(self.target_layer_name, need_grad=need == "grad")
        handle = self.target_layer.register_forward_hook(recorder)
        try:
            with torch.no_grad():
                logits = self._forward(x, extra)
                if not recorder.outputs:
                    raise RuntimeError(
                        f"target layer {self.target_layer_name!r} was not called during "
                        f"{type(self.model).__name__}.forward; choose a layer on the path from the input to the logits."
                    )
                targets = self._targets(logits, targets, trusted)
                reference = self._reference(logits, targets, reference)
                grad = self._gradient(logits, targets, recorder, reference) if need == "grad" else None
        finally:
            handle.remove()
        cap = self._captured(recorder.output, grad, logits, targets, (int(x.shape[-2]), int(x.shape[-1])))
        cap.reference = reference
        return cap

    def _reference(self, logits: Tensor, targets: Tensor, given: Tensor | None) -> Tensor | None:
        """``given``, else the kind's reference from this pass's logits (``None`` for a kind without one)."""
        if given is not None or not self.task.target.has_reference:
            return given
        return self.task.target.reference(logits.detach(), targets)

    def reference_of(self, cap: Capture) -> Tensor | None:
        """What ``cap``'s targets are scored against on the changed images a method makes of the same samples
        (Score-CAM's masked copies, Smooth Grad-CAM++'s noisy ones); ``None`` for a kind without a reference."""
        if cap.reference is None and self.task.target.has_reference:
            cap.reference = self.task.target.reference(cap.logits.detach(), cap.targets)
        return cap.reference

    def _gradient(self, logits: Tensor, targets: Tensor, recorder: LayerRecorder, reference: Tensor | None = None
                  ) -> Tensor:
        """$\\partial \\sum_b y_b^{c_b} / \\partial A$ for the recorded activation ``A`` (the score of the
        output kind, [`target_score`][lightning_cam.targets.task.target_score], against ``reference``)."""
        score = self.score(logits, targets, reference).sum()
        grad = self.layer_gradient(score, recorder.output) if score.requires_grad else None
        if grad is None:
            raise not_on_path(self.target_layer_name, recorder.reentrant)
        return grad

    def layer_gradient(self, score: Tensor, activation: Tensor) -> Tensor | None:
        """What the capture keeps as the gradient of ``score`` (a scalar, the batch's summed `score`) with respect
        to ``activation`` (the target layer's output, a leaf: only what follows the layer is differentiated).
        Default: $\\partial s / \\partial A$ (``None`` when ``score`` does not depend on ``A``). A method that
        keeps another quantity (Shapley-CAM's $\\nabla - \\tfrac12 H A$) overrides it and sets
        ``shares_capture = False``."""
        return torch.autograd.grad(score, activation, allow_unused=True)[0]

    def combine(self, results: list[CAMResult]) -> CAMResult:
        """One result from the results of the same call at each of several target layers. Default: their maps'
        mean, as pytorch-grad-cam combines its ``target_layers`` (`several_layers`)."""
        return several_layers(results)

    def score(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        """``(B,)`` differentiable scores whose gradient the method's capture pass takes. Default: the output kind's
        score $y^c$ ([`target_score`][lightning_cam.targets.task.target_score]). A method that explains another
        score (Finer-CAM's difference with the closest classes) overrides it and sets ``shares_capture = False``."""
        return target_score(logits, targets, self.task, reference)

    def _captured(self, act: Tensor, grad: Tensor | None, logits: Tensor, targets: Tensor,
                  size: tuple[int, int]) -> Capture:
        """The [`Capture`][lightning_cam.methods.base.Capture] of a pass: activation and gradient in ``(B, C, h, w)``
        float32 and its diagnosis."""
        layout = self._layout(act, size)
        reshape = self.reshape if layout is None else layout

        def to_grid(t: Tensor) -> Tensor:
            name = self.target_layer_name
            return reshape_activation(t.detach(), reshape, name, model=self.model, image_size=size,
                                      prefix=self.prefix).float()

        acts = to_grid(act)
        grads = None if grad is None else to_grid(grad)
        diagnosis = BlankDiagnosis.of(layout, acts, grads, None if grad is None else grad.detach(), logits)
        return Capture(acts, grads, logits.detach(), targets, diagnosis)

    def _layout(self, value: Tensor, size: tuple[int, int]) -> str | None:
        """The layout of the target layer's output, detected once per shape (``None`` for a callable)."""
        if self.reshape is not None:
            return self.reshape if isinstance(self.reshape, str) else None
        key = (tuple(value.shape[1:]), size)
        if key not in self._layouts:
            self._layouts[key] = infer_layout(self.model, self.target_layer_name, value.shape, size)
        return self._layouts[key]

    def finish(self, raw: Tensor, cap: Capture, size: tuple[int, int]) -> CAMResult:
        """Postprocess a raw map of the pass ``cap`` into the [`CAMResult`][lightning_cam.methods.base.CAMResult] (used
        by [`explain`][lightning_cam.methods.base.BaseCAM.explain] and
        the method group)."""
        with torch.autocast(device_type=raw.device.type, enabled=False):
            maps, low_res = self.postprocess(raw, size)
        blank, reason = blank_flags(maps, type(self).can_be_blank, type(self).__name__, self.target_layer_name,
                                    cap.diagnosis)
        clean = cap.lazy_logits
        logits = (lambda: clean().detach().float()) if callable(clean) else clean.detach().float()
        return CAMResult(maps=maps, low_res=low_res, logits=logits, targets=cap.targets, blank=blank,
                         blank_reason=reason)


def _deferred_logits(cam: BaseCAM, x: Tensor, extra: ExtraInputs | None) -> Tensor:
    """The logits of a deferred clean pass (a ``"targets"`` capture, read after ``explain`` returned): in eval mode,
    as ``explain`` runs, whatever mode the model is in by then (a BatchNorm in train mode would change its
    statistics)."""
    with eval_mode(cam.model):
        return cam.forward_logits(x, extra).detach()
