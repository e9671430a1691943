"""Target layers and activation layouts: find the layer by name and bring its output to ``(B, C, h, w)``
(the default layer is chosen by `lightning_cam.methods.choose`).

Layouts a target layer can produce, and the ``reshape`` value that names each one:

| ``reshape`` | layer output | typical layers |
|---|---|---|
| ``"nchw"`` | ``(B, C, h, w)`` | CNN stages, ConvNeXt blocks (torchvision and timm) |
| ``"nhwc"`` | ``(B, h, w, C)`` | Swin blocks and their ``norm1`` (torchvision, timm) |
| ``"tokens"`` | ``(B, P + h*w, C)`` | ViT/DeiT blocks: ``P`` class/distillation/register tokens |
| ``"vit"`` | ``(B, 1 + s*s, C)`` | the class token (if present) dropped, square grid |
| callable | anything -> ``(B, C, h, w)`` | everything else |
| ``None`` | detected (see below) |  |

Detection (``reshape=None``) compares the output shape with the channel count the model itself states
around the layer: the last layer inside it (or before it) with a channel count (``Conv2d.out_channels``,
``BatchNorm``/``GroupNorm``/``LayerNorm`` features, ``Linear.out_features``) and the first one after it
(the channels it expects). A 4-D output whose channel count sits only in dimension 1 is ``nchw``, only in
dimension 3 ``nhwc``; a 3-D output with the channels last is ``tokens``, whose prefix-token count comes
from the model (timm's ``num_prefix_tokens``, torchvision's ``class_token``) or, failing that, from the
only count ``P <= 8`` that leaves a ``h x w`` grid with the image's aspect ratio (`token_splits`). A count
that several splits fit (9 tokens: a 3x3 grid, or 2x2 after five prefix tokens) is settled by the
default-layer rule with a second input size (the prefix stays, the grid grows). Anything else is an error
naming the layer, the shape and the options -- never a guess.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from math import isqrt

import torch  # noqa: F401  (the doctest examples use it)
from torch import Tensor, nn

from lightning_cam.utilities.compiled import compiled_aliases

__all__ = [
    "LAYOUTS",
    "NotExplainable",
    "Reshape",
    "TargetLayer",
    "check_reshape",
    "infer_layout",
    "prefix_tokens",
    "reshape_activation",
    "resolve_layer",
    "token_splits",
]

Reshape = str | Callable[[Tensor], Tensor] | None
#: a method's target layer: a dotted name or a module, several of them (their maps averaged), or ``None`` (the
#: default-layer rule chooses)
TargetLayer = str | nn.Module | Sequence[str | nn.Module] | None
#: the named layouts ``reshape`` accepts (``None`` = detect)
LAYOUTS = ("nchw", "nhwc", "tokens", "vit")
_MAX_PREFIX = 8  # class + distillation + register tokens searched when the model does not say


class NotExplainable(ValueError):
    """The model, or the layer named, has no spatial positions (every output ``(B, features)``): no CAM method can
    make a map of it, whatever the input. The callback leaves such a method out of the run with one warning."""

_PLAIN = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
    nn.Tanh, nn.Mish, nn.Dropout, nn.Dropout2d, nn.Identity,
)


def _close(name: str, candidates: Sequence[str], n: int = 8) -> list[str]:
    """The ``n`` names most like ``name``: difflib's ratio, then names sharing the last component."""
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not close:  # fall back to names that share the last component, then to anything loosely similar
        last = name.rsplit(".", 1)[-1]
        close = [c for c in candidates if c.rsplit(".", 1)[-1] == last][:n]
    if not close:
        close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.0)
    return close


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Find ``layer`` (a dotted module name or a module) in ``model`` -> ``(dotted name, module)``.

    A name that is not a full dotted path but is the unique *suffix* of one (``"layer4"`` inside a
    LightningModule that keeps the network as ``self.net``) is accepted. An ambiguous suffix is an error
    listing every candidate (up to 8; beyond that the 8 closest to the name, and how many there are).

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> resolve_layer(net, "1")[0]
        '1'
    """
    real = dict(model.named_modules(remove_duplicate=False))
    # "net.2" also names "net._orig_mod.2" of a torch.compile'd net; the real dotted name is returned
    named = {**real, **compiled_aliases(real)}
    if isinstance(layer, nn.Module):
        for name, module in real.items():
            if module is layer:
                return name, module
        raise ValueError(
            f"target_layer {type(layer).__name__} is not a submodule of {type(model).__name__}; pass a module "
            "from this model (e.g. model.layer4) or its dotted name."
        )
    if not isinstance(layer, str):
        raise TypeError(
            f"target_layer must be a dotted module name (str) or an nn.Module, got {type(layer).__name__}."
        )
    if layer == "":
        raise ValueError("target_layer '' is the whole model; name an inner layer such as the last conv block.")
    if layer in named:
        return resolve_layer(model, named[layer]) if layer not in real else (layer, real[layer])
    suffix = [n for n in named if n.endswith("." + layer)]
    distinct = {id(named[n]) for n in suffix}
    if len(distinct) == 1:
        return resolve_layer(model, named[suffix[0]])
    if len(suffix) > 1:
        shown = suffix if len(suffix) <= 8 else _close(layer, suffix, n=8)
        more = "" if len(suffix) <= 8 else f" ({len(suffix)} in all; the 8 closest shown)"
        raise ValueError(
            f"target_layer {layer!r} is ambiguous in {type(model).__name__}: it matches {shown}{more}; "
            "pass the full dotted name of the one you mean."
        )
    names = [n for n in named if n]
    raise ValueError(
        f"unknown target_layer {layer!r} in {type(model).__name__}. Closest module names: "
        f"{_close(layer, names, n=5)}. See dict(model.named_modules()) for all names."
    )


# ---------------------------------------------------------------- layouts
def _channel_hint(module: nn.Module, consumes: bool) -> tuple[int, str] | None:
    """``(channels, "first" | "last")`` a leaf module produces (or, with ``consumes``, expects)."""
    if isinstance(module, nn.Conv2d):
        return (module.in_channels if consumes else module.out_channels), "first"
    if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)):
        return module.num_features, "first"
    if isinstance(module, nn.GroupNorm):
        return module.num_channels, "first"
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
        # timm's and torchvision's LayerNorm2d subclass nn.LayerNorm but normalise dimension 1
        side = "first" if "2d" in type(module).__name__.lower() else "last"
        return module.normalized_shape[0], side
    if isinstance(module, nn.Linear):
        return (module.in_features if consumes else module.out_features), "last"
    return None


def _hints(model: nn.Module, layer_name: str) -> list[tuple[int, str, str]]:
    """Channel statements around ``layer_name``: ``(channels, side, source)`` for the last leaf inside
    the layer, the last leaf before it and the first leaf after it that state a channel count."""
    named = list(model.named_modules())
    names = [n for n, _ in named]
    start = names.index(layer_name)
    inside = [i for i, n in enumerate(names) if n == layer_name or n.startswith(layer_name + ".")]
    stop = max(inside) + 1
    out: list[tuple[int, str, str]] = []
    for i in reversed(inside):
        hint = _channel_hint(named[i][1], consumes=False)
        if hint is not None and not list(named[i][1].children()):
            out.append((*hint, f"{names[i] or 'the model'} (inside)"))
            break
    for i in range(start - 1, -1, -1):
        if list(named[i][1].children()):
            continue
        hint = _channel_hint(named[i][1], consumes=False)
        if hint is not None:
            out.append((*hint, f"{names[i]} (before)"))
            break
    for i in range(stop, len(named)):
        if list(named[i][1].children()):
            continue
        hint = _channel_hint(named[i][1], consumes=True)
        if hint is not None:
            out.append((*hint, f"{names[i]} (after)"))
            break
    return out


def _leaf_side(model: nn.Module, layer_name: str) -> str | None:
    """The layout of the layer's output as its last leaf states it: walking back from the layer's last
    leaf over element-wise leaves (ReLU, Dropout, Identity: they keep the layout), the first leaf with a
    known side decides; any other leaf (a Permute, a reshape) leaves it unknown."""
    named = list(model.named_modules())
    names = [n for n, _ in named]
    i = max(j for j, n in enumerate(names) if n == layer_name or n.startswith(layer_name + "."))
    while i >= 0:
        module = named[i][1]
        if list(module.children()):
            i -= 1
            continue
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            return "first"
        hint = _channel_hint(module, consumes=False)
        if hint is not None:
            return hint[1]
        if not isinstance(module, _ELEMENTWISE):
            return None
        i -= 1
    return None


def prefix_tokens(model: nn.Module) -> int | None:
    """How many class/distillation/register tokens precede the patch tokens, as the model states it.

    timm's ``num_prefix_tokens``; torchvision's ``VisionTransformer.class_token`` (1); ``None`` if unknown.

    Examples:
        >>> import torchvision
        >>> prefix_tokens(torchvision.models.vit_b_16(weights=None, image_size=32))
        1
    """
    for module in model.modules():
        count = getattr(module, "num_prefix_tokens", None)
        if isinstance(count, int) and not isinstance(count, bool):
            return count
        if isinstance(getattr(module, "class_token", None), nn.Parameter):
            return 1
    return None


def _grid(n: int, image_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """``(h, w)`` with ``h * w = n`` and the image's aspect ratio (square without an image size)."""
    if n <= 0:
        return None
    if image_size is None:
        side = isqrt(n)
        return (side, side) if side * side == n else None
    big_h, big_w = image_size
    h = isqrt(n * big_h // big_w) if big_w else 0
    for cand in (h - 1, h, h + 1):
        if cand > 0 and n % cand == 0 and cand * big_w == (n // cand) * big_h:
            return cand, n // cand
    return None


def _layout_error(layer_name: str, shape: tuple[int, ...], why: str) -> ValueError:
    return ValueError(
        f"cannot tell the layout of target layer {layer_name!r}'s output of shape {shape}: {why}. Name it: "
        "reshape='nchw' for (B, C, h, w), 'nhwc' for channels-last (B, h, w, C), 'tokens' for (B, N, C) "
        "transformer tokens ('vit': one class token, square grid), or a callable returning (B, C, h, w) "
        "(on CAMMixin: the `cam_reshape` attribute)."
    )


def infer_layout(
    model: nn.Module, layer_name: str, shape: Sequence[int], image_size: tuple[int, int] | None = None
) -> str:
    """Detect the layout (``"nchw"``, ``"nhwc"`` or ``"tokens"``) of ``layer_name``'s output of ``shape``.

    See the module docstring for the rule. Raises a ``ValueError`` naming the layer, the shape and the
    ``reshape`` options when the model does not settle it.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
        >>> infer_layout(net, "1", (2, 8, 6, 6))
        'nchw'
        >>> infer_layout(nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8)), "1", (2, 5, 5, 8))
        'nhwc'
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) <= 2:
        raise NotExplainable(
            f"target layer {layer_name!r} outputs {shape}: one vector per sample, with no spatial positions (a "
            "flattened, pooled or fully-connected layer), so no map can be made from it. Name a layer before the "
            "flattening (a convolution or a transformer block; target_layer=None chooses one); a model without "
            "such a layer (e.g. an MLP on flattened images) cannot be explained by CAM methods."
        )
    hints = _hints(model, layer_name)
    stated = ", ".join(f"{c} channels from {src}" for c, _, src in hints) or "no layer around it states a channel count"
    if len(shape) == 4:
        for channels, _, _ in hints:
            first, last = shape[1] == channels, shape[3] == channels
            if first != last:
                return "nchw" if first else "nhwc"
        if any(shape[1] == c and shape[3] == c for c, _, _ in hints):
            side = _leaf_side(model, layer_name)
            if side is not None:
                return "nchw" if side == "first" else "nhwc"
            raise _layout_error(layer_name, shape, f"dimensions 1 and 3 both match ({stated})")
        raise _layout_error(layer_name, shape, f"neither dimension 1 nor 3 matches ({stated})")
    if len(shape) == 3:
        if any(shape[2] == c for c, _, _ in hints):
            return "tokens"
        if any(shape[1] == c for c, _, _ in hints):
            raise _layout_error(layer_name, shape, f"channels-first sequences (B, C, N) are not supported ({stated})")
        raise _layout_error(layer_name, shape, f"the last dimension does not match ({stated})")
    raise _layout_error(layer_name, shape, "CAM methods need 4-D feature maps or 3-D tokens")


def token_splits(n: int, image_size: tuple[int, int] | None, stated: int | None = None,
                 exact: int | None = None) -> list[tuple[int, int, int]]:
    """The ``(prefix, h, w)`` splits of ``n`` tokens that the layer's shape allows: ``exact`` when given (decided
    for the layer), else every prefix-token count ``P <= 8`` that leaves a grid of the image's aspect ratio (a
    layer before the class token is added has none, whatever the model says); of several, those whose grid
    divides the image size exactly (patch grids do), then the model's own count (``stated``). More than one
    split is an ambiguity the caller must settle (the default-layer rule does, with a second input size).

    Examples:
        >>> token_splits(1 + 4 * 6, (32, 48))
        [(1, 4, 6)]
        >>> token_splits(9, (96, 96))  # 3x3 without a prefix token, 2x2 after five, 1x1 after eight
        [(0, 3, 3), (5, 2, 2), (8, 1, 1)]
    """
    found = [(p, *g) for p in ([exact] if exact is not None else range(_MAX_PREFIX + 1))
             if (g := _grid(n - p, image_size)) is not None]
    if len(found) > 1 and image_size is not None:
        found = [f for f in found if image_size[0] % f[1] == 0 and image_size[1] % f[2] == 0] or found
    if len(found) > 1 and stated is not None:
        found = [f for f in found if f[0] == stated] or found
    return found


def _token_grid(
    n: int, prefix: int | None, image_size: tuple[int, int] | None, layer_name: str, shape: tuple[int, ...],
    exact: int | None = None,
) -> tuple[int, int, int]:
    """``(prefix, h, w)`` for ``n`` tokens at this layer: the one split of `token_splits`, else an error."""
    found = token_splits(n, image_size, prefix, exact)
    if len(found) == 1:
        return found[0]
    aspect = f"the image's {image_size[0]}x{image_size[1]} aspect ratio" if image_size else "a square grid"
    if not found:
        why = f"{n} tokens minus 0..{_MAX_PREFIX} prefix tokens give no grid of {aspect}"
    else:
        why = f"{n} tokens fit several prefix-token counts: " + ", ".join(f"{p} (+{h}x{w})" for p, h, w in found)
    raise ValueError(
        f"cannot map target layer {layer_name!r}'s tokens of shape {shape} to a grid: {why}. Pass "
        "reshape='vit' (one class token dropped if N = 1 + s*s, square grid) or a callable returning "
        "(B, C, h, w) (on CAMMixin: the `cam_reshape` attribute)."
    )


def _vit_tokens(tokens: Tensor) -> Tensor:
    b, n, c = tokens.shape
    side = isqrt(n - 1) if n > 1 else 0
    if side * side == n - 1 and side > 0:
        tokens = tokens[:, 1:]
    else:
        side = isqrt(n)
        if side * side != n:
            raise ValueError(
                f"reshape='vit' needs N = 1 + s*s (class token plus a square grid) or N = s*s tokens, got N={n}; "
                "pass a callable reshape that maps the (B, N, C) tokens to (B, C, h, w)."
            )
    return tokens.reshape(b, side, side, c).permute(0, 3, 1, 2)


def check_reshape(reshape: object) -> Reshape:
    """Validate a ``reshape`` option: ``None``/``"auto"`` (detect), a name in `LAYOUTS`, or a callable.

    Examples:
        >>> check_reshape("NHWC")
        'nhwc'
    """
    if reshape is None or callable(reshape):
        return reshape
    if isinstance(reshape, str) and reshape.lower() in (*LAYOUTS, "auto"):
        return None if reshape.lower() == "auto" else reshape.lower()
    raise ValueError(
        f"reshape must be None, 'vit' or a callable (B, N, C) -> (B, C, h, w), or a layout name {list(LAYOUTS)} "
        f"(None or 'auto' detect it); got {reshape!r}."
    )


def reshape_activation(
    value: Tensor,
    reshape: Reshape,
    layer_name: str,
    *,
    model: nn.Module | None = None,
    image_size: tuple[int, int] | None = None,
    prefix: int | None = None,
) -> Tensor:
    """Bring a target-layer output (or its gradient) to ``(B, C, h, w)``.

    ``reshape`` is a layout name (see the module docstring), a callable applied as is, or ``None``: the
    layout is detected with `infer_layout` (which needs ``model``; without it ``None`` means
    ``"nchw"``). ``image_size`` ``(H, W)`` fixes the token grid's aspect ratio; ``prefix`` the number of
    prefix tokens when it was decided for the layer (else it is read from the token count).

    Examples:
        >>> reshape_activation(torch.zeros(2, 5, 7, 3), "nhwc", "layer").shape
        torch.Size([2, 3, 5, 7])
        >>> reshape_activation(torch.zeros(2, 1 + 4 * 6, 3), "tokens", "blk", image_size=(32, 48)).shape
        torch.Size([2, 3, 4, 6])
    """
    layout: Reshape = reshape
    if layout is None:
        layout = "nchw" if model is None else infer_layout(model, layer_name, value.shape, image_size)
    shape = tuple(value.shape)
    if layout == "vit":
        if value.ndim != 3:
            raise ValueError(
                f"reshape='vit' expects (B, N, C) tokens from target layer {layer_name!r}, got shape {shape}."
            )
        out = _vit_tokens(value)
    elif layout == "tokens":
        if value.ndim != 3:
            raise ValueError(
                f"reshape='tokens' expects (B, N, C) tokens from target layer {layer_name!r}, got shape {shape}."
            )
        stated = prefix_tokens(model) if model is not None else None
        p, h, w = _token_grid(shape[1], stated, image_size, layer_name, shape, exact=prefix)
        out = value[:, p:].reshape(shape[0], h, w, shape[2]).permute(0, 3, 1, 2)
    elif layout == "nhwc":
        if value.ndim != 4:
            raise ValueError(
                f"reshape='nhwc' expects channels-last (B, h, w, C) from target layer {layer_name!r}, got {shape}."
            )
        out = value.permute(0, 3, 1, 2)
    elif layout == "nchw":
        out = value
    else:
        out = layout(value)  # type: ignore[operator]
    if not isinstance(out, Tensor) or out.ndim != 4:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        hint = (
            " The reshape callable must return (B, C, h, w)."
            if callable(layout)
            else " For transformer tokens (B, N, C) pass reshape='tokens' or a callable returning (B, C, h, w)."
        )
        raise ValueError(
            f"target layer {layer_name!r} gives activations of shape {got}; CAM methods need 4-D (B, C, h, w) "
            f"feature maps.{hint} Or choose a convolutional layer."
        )
    return out
