"""Target-layer lookup and activation layouts for the CAM methods.

Input checks live in :mod:`lightning_cam.utilities.checks`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from math import isqrt

from torch import Tensor, nn

from lightning_cam.utilities.compiled import compiled_aliases

__all__ = ["reshape_activation", "resolve_layer"]


def _close(name: str, candidates: Sequence[str], n: int = 5) -> list[str]:
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
    LightningModule that keeps the network as ``self.net``) is accepted.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> resolve_layer(net, "1")[0]
        '1'
    """
    named = dict(model.named_modules(remove_duplicate=False))
    named.update(compiled_aliases(named))  # "net.2" also names "net._orig_mod.2" of a torch.compile'd net
    if isinstance(layer, nn.Module):
        for name, module in named.items():
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
        return layer, named[layer]
    suffix = [n for n in named if n.endswith("." + layer)]
    distinct = {id(named[n]) for n in suffix}
    if len(distinct) == 1:
        return suffix[0], named[suffix[0]]
    if len(suffix) > 1:
        raise ValueError(
            f"target_layer {layer!r} is ambiguous in {type(model).__name__}: it matches {suffix[:8]}; "
            "pass the full dotted name of the one you mean."
        )
    names = [n for n in named if n]
    raise ValueError(
        f"unknown target_layer {layer!r} in {type(model).__name__}. Closest module names: "
        f"{_close(layer, names)}. See dict(model.named_modules()) for all names."
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


def reshape_activation(
    value: Tensor, reshape: str | Callable[[Tensor], Tensor] | None, layer_name: str
) -> Tensor:
    """Bring a target-layer output (or its gradient) to ``(B, C, h, w)``.

    ``reshape=None`` requires a 4-D output; ``"vit"`` maps ``(B, N, C)`` tokens to a square grid (dropping
    the class token when ``N = 1 + s*s``); a callable is applied as is.
    """
    if reshape is None:
        out = value
    elif reshape == "vit":
        if value.ndim != 3:
            raise ValueError(
                f"reshape='vit' expects (B, N, C) tokens from target layer {layer_name!r}, "
                f"got shape {tuple(value.shape)}."
            )
        out = _vit_tokens(value)
    else:
        out = reshape(value)  # type: ignore[operator]
    if not isinstance(out, Tensor) or out.ndim != 4:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        hint = (
            " For transformer tokens (B, N, C) pass reshape='vit' or a callable returning (B, C, h, w)."
            if reshape is None
            else " The reshape callable must return (B, C, h, w)."
        )
        raise ValueError(
            f"target layer {layer_name!r} gives activations of shape {shape}; CAM methods need 4-D (B, C, h, w) "
            f"feature maps.{hint} Or choose a convolutional layer."
        )
    return out
