"""The default target layer, chosen by what the model does with a batch, not by its names.

**The rule.** Among the modules of the model, in the order their forwards *finish* (a block after the layers
inside it), the latest one whose output

(a) is a single tensor of the batch (first dimension ``B``) with a spatial grid of at least 2x2 in a layout
    read from the data flow (`infer_layout`: ``(B, C, h, w)``,
    channels-last ``(B, h, w, C)``, or ``(B, P + h*w, C)`` tokens with the prefix count that fits the image);
(b) is a *cut* of the graph: every path of the autograd graph from the logits back to the input passes
    through its output, so everything that reaches the logits passes through it (a branch, a residual path
    before its add, a layer of an auxiliary head fails, however small the other paths' contribution);
(c) has a non-zero gradient of the target scores at its grid positions (a transformer block output that
    reaches the head only through the class token fails: its patch tokens get no gradient);
(d) for a dense output ``(B, K, H, W)`` (a segmenter's), lies before the *head*: the last module at the top of the
    model's structure whose output reaches the logits (torchvision's ``classifier``, segmentation_models_pytorch's
    ``segmentation_head``; a wrapper with one such child is looked into). The head's layers are no candidates:
    from them the logits are the class scores themselves, a few convolutions away, and the map would repeat the
    prediction. So a torchvision DeepLabV3 is explained at the backbone's last stage (``backbone.layer4``, the
    layer of pytorch-grad-cam's segmentation tutorial), a U-Net at its decoder's output (the last decoder
    stage before the head), an LR-ASPP at its backbone's low stage (its head reads a low and a high stage: the
    latest layer everything passes through is the low one).

A module called more than once per forward, or returning a tuple, is not a candidate; of modules returning
the very same tensor (a block and its last layer, ``Identity``) the outermost is kept. Cost: one recording
forward with autograd, in whose graph (b) is a walk (no model work), then one forward and backward per cut
tried for (c), once per model and input shape (cached, and so is a failure). When no module qualifies, the error
lists the latest candidates with their shapes and why each failed, and names ``target_layer`` /
``cam_target_layer``; a model none of whose modules has a spatial output gets `NotExplainable` instead.

**Token counts that several grids fit** (9 tokens at a small input: 3x3, or 2x2 after five prefix tokens) are
settled from the data flow (the grid of a 4-D output of the same forward, such as the patch embedding's) or, failing
that, by one more forward at twice the input size (the prefix stays, the grid grows). When the choice still passes
over a later cut with a spatial output whose layout it cannot read, ``LayerChoice.skipped`` names it and the
method warns: the map may come from an earlier layer than the one meant.

**Limits.** The cut is read from autograd, so a path through non-differentiable steps (an integer index, a
detached tensor) is not seen, and a model whose logits do not depend on the input through autograd cannot be
served (an error says so). The layout comes from the channel counts the model states around the layer; a
model that states none must name its layout (``reshape``).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    >>> choice = choose_target_layer(net, torch.randn(2, 3, 16, 16))
    >>> choice.name, choice.layout, choice.grid
    ('3', 'nchw', (16, 16))
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_cam.methods.capture import LayerRecorder
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.layers import (
    NotExplainable,
    infer_layout,
    prefix_tokens,
    reshape_activation,
    token_splits,
)
from lightning_cam.utilities.modes import eval_mode
from lightning_cam.utilities.outputs import select_logits

__all__ = ["LayerChoice", "choose_target_layer", "no_spatial_layer", "skipped_layers"]


@dataclass(frozen=True)
class LayerChoice:
    """The chosen layer: its dotted ``name``, the ``layout`` of its output, its ``grid`` ``(h, w)`` at the
    input size it was chosen for, the ``reason`` (what it passed, what the later modules failed) and, for
    tokens, the number of ``prefix`` tokens (class, distillation, register) before the grid at that layer."""

    name: str
    layout: str
    grid: tuple[int, int]
    reason: str
    prefix: int | None = None
    #: later cuts with a spatial output whose layout the rule could not read, with why: the choice may be
    #: earlier than the layer meant, so the caller warns (``BaseCAM`` does, once)
    skipped: tuple[str, ...] = ()
    #: several layers that only together carry everything to the logits (no single cut: branches that meet at
    #: the head); ``name`` then joins them with ``+``, and each method averages their maps
    several: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The layer or layers to explain."""
        return self.several or (self.name,)


@dataclass
class _Seen:
    name: str
    output: Tensor
    calls: int
    node: Any  # the output's autograd node at the moment the module returned it (None without one)


@dataclass
class _Finished:
    """Any module's forward (whatever it returns): when it finished and the autograd nodes of the tensors it
    returned (in a tensor, a tuple or a mapping), for finding a dense model's head."""

    order: int
    nodes: tuple[Any, ...]


#: per model and input key: the choice, or the rule's failure (raised again, without a forward)
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], LayerChoice | ValueError]] = \
    weakref.WeakKeyDictionary()


def _record(model: nn.Module, x: Tensor, extra: ExtraInputs, output: Any
            ) -> tuple[list[_Seen], Tensor, dict[str, _Finished]]:
    """One forward with autograd from the input, recording every module's output and its autograd node (in
    the order the forwards finish), the logits, and when each module finished with the nodes it returned."""
    seen: dict[int, _Seen] = {}
    order: list[int] = []
    finished: dict[str, _Finished] = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(mod: nn.Module, args: object, out: object, _name: str = name) -> None:
            key = id(mod)
            values = out.values() if isinstance(out, Mapping) else out if isinstance(out, (tuple, list)) else (out,)
            finished[_name] = _Finished(len(finished), tuple(v.grad_fn for v in values if isinstance(v, Tensor)))
            if key in seen:
                seen[key].calls += 1
            elif isinstance(out, Tensor):
                seen[key] = _Seen(_name, out.detach(), 1, out.grad_fn)
                order.append(key)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.enable_grad():
            logits = _logits(model, x, extra, output)
    finally:
        for handle in handles:
            handle.remove()
    return [seen[k] for k in order], logits, finished


def _dense_head(model: nn.Module, finished: dict[str, _Finished], root: Any) -> str | None:
    """The head of a dense model (rule (d)): among the children of the model whose outputs reach the logits, the
    one that finished last; a module with a single such child is looked into (a wrapper). ``None`` when there is
    no structure to read (a single leaf)."""
    modules = dict(model.named_modules())
    prefix, module = "", model
    while True:
        reaching = [prefix + n for n, _ in module.named_children()
                    if (f := finished.get(prefix + n)) is not None and any(_reaches(root, node, None)
                                                                          for node in f.nodes if node is not None)]
        if not reaching:
            return None
        if len(reaching) == 1 and any(True for _ in modules[reaching[0]].children()):
            prefix, module = reaching[0] + ".", modules[reaching[0]]
            continue
        return max(reaching, key=lambda n: finished[n].order)


def _logits(model: nn.Module, x: Tensor, extra: ExtraInputs, output: Any) -> Tensor:
    """``model(x, *extra)``'s logits, read by the one output rule."""
    return select_logits(extra.call(model, x), output, model)


def _reaches(root: Any, target: Any, blocked: Any) -> bool:
    """Whether the autograd graph leads from ``root`` to ``target`` without passing through ``blocked`` (a node,
    or a list of nodes)."""
    stack, visited = [root], {id(b) for b in blocked} if isinstance(blocked, list) else {id(blocked)}
    while stack:
        node = stack.pop()
        if node is None or id(node) in visited:
            continue
        if node is target:
            return True
        visited.add(id(node))
        stack.extend(n for n, _ in getattr(node, "next_functions", ()))
    return False


class _SecondLook:
    """What settles an ambiguous token count (several splits into prefix tokens and a grid, `token_splits`).

    First, the data flow: the one split whose grid is that of a 4-D output of the same forward (the patch
    embedding's, before the tokens are flattened). Failing that, every module's output shape at a second input
    size (twice the first in each direction), taken with one forward without autograd, once: the prefix tokens
    stay, the grid grows, so the split that also fits the second count is the model's. A model that accepts one
    input size only keeps the ambiguity (the candidate is skipped, and the choice says so)."""

    def __init__(self, model: nn.Module, x: Tensor, extra: ExtraInputs, output: Any, seen: list[_Seen]) -> None:
        self.model, self.x, self.extra, self.output = model, x, extra, output
        #: the grids of the 4-D outputs of the first forward, either layout (a patch embedding's among them)
        self.grids = {g for item in seen if item.output.ndim == 4
                      for g in (tuple(item.output.shape[-2:]), tuple(item.output.shape[1:3]))}
        self.size = (2 * int(x.shape[-2]), 2 * int(x.shape[-1]))
        self._shapes: dict[str, tuple[int, ...]] | None = None
        self.error = ""

    def shape(self, name: str) -> tuple[int, ...] | None:
        if self._shapes is None:
            self._shapes = {}
            shapes = self._shapes

            def hook(mod: nn.Module, args: object, out: object) -> None:
                if isinstance(out, Tensor):
                    shapes.setdefault(names[id(mod)], tuple(out.shape))

            names = {id(module): n for n, module in self.model.named_modules() if n}
            handles = [module.register_forward_hook(hook) for n, module in self.model.named_modules() if n]
            try:
                with torch.no_grad():
                    _logits(self.model, F.interpolate(self.x, size=self.size, mode="bilinear"), self.extra, self.output)
            except Exception as err:  # noqa: BLE001 - a model of one input size: the ambiguity stays, said so
                shapes.clear()
                self.error = f"; a second input size {self.size} to settle it failed ({type(err).__name__})"
            finally:
                for handle in handles:
                    handle.remove()
        return self._shapes.get(name)


def _positions(shape: tuple[int, ...]) -> int:
    """How many positions an output of ``shape`` could have: its elements per sample over its largest dimension
    (the channels, for a feature map or tokens); ``(B, F)`` and ``(B, C, 1)`` outputs have one."""
    rest = shape[1:]
    return int(torch.tensor(rest).prod()) // max(rest) if rest and max(rest) > 0 else 0


def _grid(model: nn.Module, seen: _Seen, batch: int, size: tuple[int, int],
          second: _SecondLook) -> tuple[str, tuple[int, int], int | None] | str:
    """``(layout, (h, w), prefix)`` of a candidate's output, or why it is not one."""
    out = seen.output
    if seen.calls > 1:
        return "called more than once per forward"
    if not out.is_floating_point() or out.ndim not in (3, 4) or out.shape[0] != batch:
        return f"output {tuple(out.shape)} is not a batch of feature maps or tokens"
    try:
        layout = infer_layout(model, seen.name, out.shape, size)
        prefix = None
        if layout == "tokens":
            n = int(out.shape[1])
            splits = token_splits(n, size, prefix_tokens(model))
            if len(splits) > 1:
                splits = [s for s in splits if s[1:] in second.grids] or splits
            if len(splits) > 1 and (other := second.shape(seen.name)) is not None and len(other) == 3:
                splits = [s for s in splits if token_splits(int(other[1]), second.size, exact=s[0])
                          and int(other[1]) - s[0] > s[1] * s[2]]
            if len(splits) != 1:
                fits = ", ".join(f"{h}x{w} after {p} prefix token(s)" for p, h, w in splits) or "no grid"
                return f"layout unknown ({n} tokens fit {fits}{second.error})"
            prefix = splits[0][0]
        grid = reshape_activation(out[:1], layout, seen.name, model=model, image_size=size, prefix=prefix).shape[-2:]
    except ValueError as err:
        return f"layout unknown ({str(err).split(':')[1].strip() if ':' in str(err) else err})"
    h, w = int(grid[0]), int(grid[1])
    if h < 2 or w < 2:
        return f"a {h}x{w} grid at this input size"
    return layout, (h, w), prefix


def _is_cut(root: Any, leaf: Any, node: Any) -> bool:
    """Whether every path of the autograd graph from the logits (``root``) to the input (``leaf``) passes
    through ``node``: an exact, structural test (a path whose contribution is tiny still counts)."""
    return node is not None and not _reaches(root, leaf, node)


def _spatial_gradient(model: nn.Module, module: nn.Module, name: str, layout: str, x: Tensor, extra: ExtraInputs,
                      size: tuple[int, int], output: Any, prefix: int | None) -> str:
    """Where the target scores (the argmax classes) have a gradient at the module's output: ``"grid"`` (at its
    grid positions), ``"prefix"`` (only at prefix tokens: the class token) or ``"none"`` (nowhere: the logits
    do not vary, e.g. a zero-initialised head)."""
    recorder = LayerRecorder(name, need_grad=True)  # the capture's own hook: a leaf to differentiate to
    handle = module.register_forward_hook(recorder)
    try:
        with torch.no_grad():
            logits = _logits(model, x, extra, output)
            grad = None
            if recorder.outputs and logits.requires_grad:
                score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
                (grad,) = torch.autograd.grad(score, recorder.output, allow_unused=True)
    finally:
        handle.remove()
    if grad is None or not bool(grad.ne(0).any()):
        return "none"
    grid = reshape_activation(grad.detach(), layout, name, model=model, image_size=size, prefix=prefix)
    return "grid" if bool(grid.abs().sum(1).flatten(1).amax(1).gt(0).all()) else "prefix"


def choose_target_layer(model: nn.Module, images: Tensor, extra: object = None, output: Any = None) -> LayerChoice:
    """The target layer of ``model`` by the rule of the module docstring, decided on ``images`` ``(B, C, H, W)``
    (at most 2 of them are used) and cached for the model and the input's shape.

    Args:
        model: the classifier.
        images: a batch of its inputs (normalised as the model expects).
        extra: further model inputs (see [`ExtraInputs`][lightning_cam.methods.extra.ExtraInputs]).
        output: how to read the logits from the model's output
            ([`select_logits`][lightning_cam.utilities.outputs.select_logits]).

    Raises:
        NotExplainable: no module has a spatial output (nothing to explain, whatever the layer).
        ValueError: no module satisfies the rule (the message lists the latest candidates and why each failed).
    """
    x = images.detach()[:2]
    if x.is_inference():
        x = x.clone()
    more = ExtraInputs.of(extra).take(torch.arange(x.shape[0]), images.shape[0])
    key = (tuple(x.shape[1:]), x.dtype, x.device.type)
    cached = _CACHE.get(model, {}).get(key)
    if isinstance(cached, ValueError):
        raise type(cached)(str(cached))
    if cached is not None:
        return cached
    try:
        return _choose(model, x, images, more, output, key)
    except ValueError as err:  # the rule's verdict for this model and input: the same at every call
        _CACHE.setdefault(model, {})[key] = err.with_traceback(None)
        raise


def _choose(model: nn.Module, x: Tensor, images: Tensor, more: ExtraInputs, output: Any,
            key: tuple[Any, ...]) -> LayerChoice:
    """The rule of the module docstring on ``x`` (at most 2 images); the choice cached under ``key``."""
    size = (int(x.shape[-2]), int(x.shape[-1]))
    b = int(x.shape[0])
    with torch.inference_mode(False), eval_mode(model):
        x = x.clone().requires_grad_(True)
        view = x.view_as(x)  # a node of its own between the input leaf and the model
        seen, logits, finished = _record(model, view, more, output)
        root, leaf = logits.grad_fn, view.grad_fn
        if root is None or not _reaches(root, leaf, None):
            raise ValueError(
                f"the logits of {type(model).__name__} do not depend on its input through autograd (a forward under "
                "torch.no_grad(), or a non-differentiable step), so no layer can be chosen by the rule; name it: "
                "`target_layer=` (on CAMMixin: `cam_target_layer`), and use a gradient-free method if needed."
            )
        x = x.detach()
        head = _dense_head(model, finished, root) if logits.ndim == 4 else None
        modules = dict(model.named_modules())
        second = _SecondLook(model, x, more, output, seen)
        failed: list[str] = []
        skipped: list[str] = []  # later outputs with positions whose layout the rule could not read
        outputs: set[tuple[int, tuple[int, ...]]] = set()
        branches: list[tuple[_Seen, str, tuple[int, int], int | None]] = []  # grids that are not cuts, latest first
        tried = spatial = 0
        for item in reversed(seen):
            same = (item.output.data_ptr(), tuple(item.output.shape))
            if same in outputs:  # the same tensor as a later (outer) module's output: that one was tried
                continue
            outputs.add(same)
            shape = tuple(item.output.shape)
            if head is not None and (item.name == head or item.name.startswith(head + ".")
                                     or head.startswith(item.name + ".")):  # the head, inside it, or around it
                failed.append(f"{item.name} {shape}: in the head ({head}) of a dense output")
                continue
            found = _grid(model, item, b, size, second)
            if isinstance(found, str):
                failed.append(f"{item.name} {shape}: {found}")
                if item.output.ndim in (3, 4) and _positions(shape) >= 4:
                    spatial += 1
                    if found.startswith("layout unknown") and _is_cut(root, leaf, item.node):
                        skipped.append(failed[-1])  # a branch or a block's inside would not qualify anyway
                continue
            spatial += 1
            layout, grid, prefix = found
            module = modules[item.name]
            tried += 1
            if not _is_cut(root, leaf, item.node):
                failed.append(f"{item.name} {shape}: not a cut (other paths reach the logits)")
                branches.append((item, layout, grid, prefix))
                continue
            where = _spatial_gradient(model, module, item.name, layout, x, more, size, output, prefix)
            if where == "prefix":
                failed.append(f"{item.name} {shape}: a gradient at its prefix tokens only")
                continue
            if where == "none":  # the logits do not vary: (c) cannot tell anything; said in the reason
                failed.append("(c) not applied: the target scores have no gradient at all (a zero head?)")
            later = f"; later modules failed: {'; '.join(failed[:3])}" if failed else ""
            choice = LayerChoice(item.name, layout, grid, (
                f"{item.name}: the latest module whose output {shape} ({layout}, a {grid[0]}x"
                f"{grid[1]} grid) carries everything that reaches the logits and has a gradient at its positions "
                f"({tried} candidate(s) tried){later}"), prefix, tuple(skipped))
            _CACHE.setdefault(model, {})[key] = choice
            return choice
        several = _joint_cut(model, modules, branches, root, leaf, x, more, size, output)
        if several is not None:
            _CACHE.setdefault(model, {})[key] = several
            return several
    if not spatial:
        raise NotExplainable(no_spatial_layer(model, tuple(images.shape[1:])))
    shown = "; ".join(failed[:8]) or "no module returned a tensor"
    shown += " (modules returning tuples, or outputs of another batch size such as per-patch inner tokens, are never "
    shown += "candidates)"
    raise ValueError(
        f"no layer of {type(model).__name__} satisfies the default-layer rule (a single (B, ...) output with a "
        f"spatial grid of at least 2x2, a cut of the graph, with a gradient at its positions) for inputs of shape "
        f"{tuple(images.shape[1:])}; the latest candidates: {shown}. Name the layer: `target_layer=` (on "
        "CAMMixin: `cam_target_layer`), and its layout with `reshape=` if needed."
    )


_MAX_BRANCHES = 3  # layers of a joint cut
_JOINT_CANDIDATES = 16  # the latest non-cut outputs with a grid searched for one


def _joint_cut(model: nn.Module, modules: dict[str, nn.Module], branches: list[tuple[_Seen, str, tuple[int, int],
               int | None]], root: Any, leaf: Any, x: Tensor, extra: ExtraInputs, size: tuple[int, int],
               output: Any) -> LayerChoice | None:
    """When no single module is a cut: the latest set of 2 or 3 outputs with a grid that together are one (every
    path from the logits to the input passes through one of them) and each have a gradient at their positions,
    among the latest `_JOINT_CANDIDATES` such outputs (sets in the order of their latest members): the branches'
    outputs of a model whose branches meet only at the head. ``None`` if there is no such set."""
    outer = [b for b in branches if b[0].node is not None]
    names = [b[0].name for b in outer]
    # a module inside another candidate is never a branch's output: the outer one is (fewer sets to try)
    latest = [b for b in outer if not any(b[0].name.startswith(n + ".") for n in names)][:_JOINT_CANDIDATES]
    where: dict[int, str] = {}

    def spatial(i: int) -> bool:
        if i not in where:
            item, layout, _, prefix = latest[i]
            where[i] = _spatial_gradient(model, modules[item.name], item.name, layout, x, extra, size, output, prefix)
        return where[i] == "grid"

    for r in range(2, _MAX_BRANCHES + 1):
        for combo in itertools.combinations(range(len(latest)), r):
            if _reaches(root, leaf, [latest[i][0].node for i in combo]) or not all(spatial(i) for i in combo):
                continue
            chosen = [latest[i] for i in combo]
            picked = tuple(c[0].name for c in chosen)
            shapes = ", ".join(f"{c[0].name} {tuple(c[0].output.shape)}" for c in chosen)
            return LayerChoice("+".join(picked), chosen[0][1], chosen[0][2], (
                f"{' + '.join(picked)}: no single module carries everything that reaches the logits, and these "
                f"{len(picked)} latest outputs with a grid do together ({shapes}): each is explained and the maps "
                "are averaged"), chosen[0][3], (), picked)
    return None


def no_spatial_layer(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """The message for a model none of whose modules keeps a spatial layout (every output is ``(B, F)``, or has a
    single position): a class activation map has nothing to be made of, whatever the layer.

    Examples:
        >>> no_spatial_layer(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), (3, 2, 2))[:60]
        'Sequential has no layer with a spatial output for inputs of '
    """
    return (
        f"{type(model).__name__} has no layer with a spatial output for inputs of shape {input_shape}: every module "
        "returns (B, features) (e.g. an MLP on flattened images), so there is no grid of positions for a class "
        "activation map, whatever the layer. CAM methods need a model that keeps a spatial layout (convolutions, "
        "or transformer tokens) up to a layer; for this model, leave the CAM work off (remove the CAMCallback, or "
        "CAMCallback(stages=()))."
    )


def skipped_layers(method: str, choice: LayerChoice) -> str:
    """The warning for a choice that passed over later modules with a spatial output whose layout it could not
    read (``choice.skipped``): the map may come from an earlier layer than the one meant.

    Examples:
        >>> choice = LayerChoice("stem", "nchw", (3, 3), "", skipped=("norm (2, 9, 8): layout unknown",))
        >>> skipped_layers("GradCAM", choice)[:62]
        'GradCAM explains stem, an earlier layer than the last spatial '
    """
    return (
        f"{method} explains {choice.name}, an earlier layer than the last spatial output of the model: the "
        f"default-layer rule could not read the layout of {len(choice.skipped)} later module(s): "
        f"{'; '.join(choice.skipped[:3])}. If one of them is the layer to explain, name it (`target_layer=`; on "
        "CAMMixin: `cam_target_layer`) with its layout (`reshape=`, e.g. 'tokens' or a callable; on CAMMixin: "
        "`cam_reshape`), or use an input size at which its grid is unambiguous."
    )
