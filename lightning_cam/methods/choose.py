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
    reaches the head only through the class token fails: its patch tokens get no gradient).

A module called more than once per forward, or returning a tuple, is not a candidate; of modules returning
the very same tensor (a block and its last layer, ``Identity``) the outermost is kept. Cost: one recording
forward with autograd, in whose graph (b) is a walk (no model work), then one forward and backward per cut
tried for (c), once per model and input shape (cached). When no module qualifies, the error lists the
latest candidates with their shapes and why each failed, and names ``target_layer`` / ``cam_target_layer``.

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

import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lightning_cam.methods.capture import LayerRecorder
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.layers import infer_layout, reshape_activation
from lightning_cam.utilities.modes import eval_mode
from lightning_cam.utilities.outputs import select_logits

__all__ = ["LayerChoice", "choose_target_layer"]


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


@dataclass
class _Seen:
    name: str
    output: Tensor
    calls: int
    node: Any  # the output's autograd node at the moment the module returned it (None without one)


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], LayerChoice]] = weakref.WeakKeyDictionary()


def _record(model: nn.Module, x: Tensor, extra: ExtraInputs, output: Any) -> tuple[list[_Seen], Tensor]:
    """One forward with autograd from the input, recording every module's output and its autograd node (in
    the order the forwards finish) and the logits."""
    seen: dict[int, _Seen] = {}
    order: list[int] = []
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(mod: nn.Module, args: object, out: object, _name: str = name) -> None:
            key = id(mod)
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
    return [seen[k] for k in order], logits


def _logits(model: nn.Module, x: Tensor, extra: ExtraInputs, output: Any) -> Tensor:
    """``model(x, *extra)``'s logits, read by the one output rule."""
    return select_logits(model(x, *extra.args, **dict(extra.kwargs)), output, model)


def _reaches(root: Any, target: Any, blocked: Any) -> bool:
    """Whether the autograd graph leads from ``root`` to ``target`` without passing through ``blocked``."""
    stack, visited = [root], {id(blocked)}
    while stack:
        node = stack.pop()
        if node is None or id(node) in visited:
            continue
        if node is target:
            return True
        visited.add(id(node))
        stack.extend(n for n, _ in getattr(node, "next_functions", ()))
    return False


def _grid(model: nn.Module, seen: _Seen, batch: int, size: tuple[int, int]) -> tuple[str, tuple[int, int]] | str:
    """``(layout, (h, w))`` of a candidate's output, or why it is not one."""
    out = seen.output
    if seen.calls > 1:
        return "called more than once per forward"
    if not out.is_floating_point() or out.ndim not in (3, 4) or out.shape[0] != batch:
        return f"output {tuple(out.shape)} is not a batch of feature maps or tokens"
    try:
        layout = infer_layout(model, seen.name, out.shape, size)
        grid = reshape_activation(out[:1], layout, seen.name, model=model, image_size=size).shape[-2:]
    except ValueError as err:
        return f"layout unknown ({str(err).split(':')[1].strip() if ':' in str(err) else err})"
    h, w = int(grid[0]), int(grid[1])
    if h < 2 or w < 2:
        return f"a {h}x{w} grid at this input size"
    return layout, (h, w)


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
        ValueError: no module satisfies the rule (the message lists the latest candidates and why each failed).
    """
    x = images.detach()[:2]
    if x.is_inference():
        x = x.clone()
    more = ExtraInputs.of(extra).take(torch.arange(x.shape[0]), images.shape[0])
    key = (tuple(x.shape[1:]), x.dtype, x.device.type)
    cached = _CACHE.get(model, {}).get(key)
    if cached is not None:
        return cached
    size = (int(x.shape[-2]), int(x.shape[-1]))
    b = int(x.shape[0])
    with torch.inference_mode(False), eval_mode(model):
        x = x.clone().requires_grad_(True)
        view = x.view_as(x)  # a node of its own between the input leaf and the model
        seen, logits = _record(model, view, more, output)
        root, leaf = logits.grad_fn, view.grad_fn
        if root is None or not _reaches(root, leaf, None):
            raise ValueError(
                f"the logits of {type(model).__name__} do not depend on its input through autograd (a forward under "
                "torch.no_grad(), or a non-differentiable step), so no layer can be chosen by the rule; name it: "
                "`target_layer=` (on CAMMixin: `cam_target_layer`), and use a gradient-free method if needed."
            )
        x = x.detach()
        modules = dict(model.named_modules())
        failed: list[str] = []
        outputs: set[tuple[int, tuple[int, ...]]] = set()
        tried = 0
        for item in reversed(seen):
            same = (item.output.data_ptr(), tuple(item.output.shape))
            if same in outputs:  # the same tensor as a later (outer) module's output: that one was tried
                continue
            outputs.add(same)
            found = _grid(model, item, b, size)
            if isinstance(found, str):
                failed.append(f"{item.name} {tuple(item.output.shape)}: {found}")
                continue
            layout, grid = found
            module = modules[item.name]
            tried += 1
            if not _is_cut(root, leaf, item.node):
                failed.append(f"{item.name} {tuple(item.output.shape)}: not a cut (other paths reach the logits)")
                continue
            prefix = int(item.output.shape[1]) - grid[0] * grid[1] if layout == "tokens" else None
            where = _spatial_gradient(model, module, item.name, layout, x, more, size, output, prefix)
            if where == "prefix":
                failed.append(f"{item.name} {tuple(item.output.shape)}: a gradient at its prefix tokens only")
                continue
            if where == "none":  # the logits do not vary: (c) cannot tell anything; said in the reason
                failed.append("(c) not applied: the target scores have no gradient at all (a zero head?)")
            later = f"; later modules failed: {'; '.join(failed[:3])}" if failed else ""
            choice = LayerChoice(item.name, layout, grid, (
                f"{item.name}: the latest module whose output {tuple(item.output.shape)} ({layout}, a {grid[0]}x"
                f"{grid[1]} grid) carries everything that reaches the logits and has a gradient at its positions "
                f"({tried} candidate(s) tried){later}"), prefix)
            _CACHE.setdefault(model, {})[key] = choice
            return choice
    shown = "; ".join(failed[:8]) or "no module returned a tensor"
    shown += " (modules returning tuples, or outputs of another batch size such as per-patch inner tokens, are never "
    shown += "candidates)"
    raise ValueError(
        f"no layer of {type(model).__name__} satisfies the default-layer rule (a single (B, ...) output with a "
        f"spatial grid of at least 2x2, a cut of the graph, with a gradient at its positions) for inputs of shape "
        f"{tuple(images.shape[1:])}; the latest candidates: {shown}. Name the layer: `target_layer=` (on "
        "CAMMixin: `cam_target_layer`), and its layout with `reshape=` if needed."
    )

