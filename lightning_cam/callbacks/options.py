"""``CAMCallback``'s arguments: each checked once, at construction, with a message naming the value and the fix.

Methods become classes under their canonical (tag) names, ``method_kwargs`` keys follow them, metric names
and numbers are checked, so a misconfigured callback fails before any training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from lightning_cam.methods import BaseCAM, get_method
from lightning_cam.methods.layers import TargetLayer
from lightning_cam.methods.registry import check_tag_name
from lightning_cam.utilities.checks import check_alpha, colormap_table
from lightning_cam.utilities.checks import check_options as check_metric_options

__all__ = [
    "build_methods",
    "canonical_name",
    "check_display",
    "check_metric_kwargs",
    "check_schedule",
    "check_target",
    "resolve_method_kwargs",
    "resolve_methods",
]


def canonical_name(cls: type[BaseCAM], spec: str | type[BaseCAM]) -> str:
    """The tag name of a method class: its ``name`` attribute (canonical in the registry), else the name it
    was given, else its lower-cased class name; one that some logger would change is a ``ValueError``
    (`check_tag_name`)."""
    name = getattr(cls, "name", None)
    return check_tag_name(str(name) if name else (spec if isinstance(spec, str) else cls.__name__.lower()))


def resolve_methods(methods: str | type[BaseCAM] | Sequence[str | type[BaseCAM]]) -> dict[str, type[BaseCAM]]:
    """Canonical name -> method class, in the order given; names and aliases through
    [`lightning_cam.methods.get_method`][lightning_cam.methods.get_method] (unknown -> ``ValueError`` listing the valid
    ones).

    Examples:
        >>> list(resolve_methods(("Grad-CAM++", "grad_cam")))
        ['gradcam_pp', 'gradcam']
        >>> resolve_methods(("gradcam", "Grad-CAM"))
        Traceback (most recent call last):
        ...
        ValueError: method 'Grad-CAM' is listed twice (as 'gradcam'); list each method once.
    """
    specs = (methods,) if isinstance(methods, (str, type)) else tuple(methods)
    if not specs:
        raise ValueError("`methods` is empty; name at least one CAM method, e.g. methods=('gradcam',).")
    classes: dict[str, type[BaseCAM]] = {}
    for spec in specs:
        cls = get_method(spec)  # unknown -> ValueError with the valid names
        name = canonical_name(cls, spec)
        if name in classes:
            raise ValueError(f"method {spec!r} is listed twice (as {name!r}); list each method once.")
        classes[name] = cls
    return classes


def _method_key(key: str, classes: Mapping[str, type[BaseCAM]]) -> str | None:
    if key in classes:
        return key
    try:
        cls = get_method(key)
    except ValueError:
        return None
    return next((name for name, c in classes.items() if c is cls), None)


def resolve_method_kwargs(
    method_kwargs: Mapping[str, Mapping[str, Any]] | None, classes: Mapping[str, type[BaseCAM]]
) -> dict[str, dict[str, Any]]:
    """``method_kwargs`` keyed by the canonical names of ``classes`` (aliases accepted); a key naming no
    listed method is a ``ValueError``.

    Examples:
        >>> resolve_method_kwargs({"Score-CAM": {"batch_size": 64}}, resolve_methods("scorecam"))
        {'scorecam': {'batch_size': 64}}
    """
    resolved: dict[str, dict[str, Any]] = {}
    extra: list[str] = []
    for key, kwargs in (method_kwargs or {}).items():
        name = _method_key(key, classes)
        if name is None:
            extra.append(key)
        else:
            resolved[name] = dict(kwargs)
    if extra:
        raise ValueError(f"`method_kwargs` names {extra}, which are not in methods={list(classes)}.")
    return resolved


def build_methods(
    classes: Mapping[str, type[BaseCAM]], model: nn.Module, layer: TargetLayer,
    method_kwargs: Mapping[str, Mapping[str, Any]],
    shared: Mapping[str, Any] | None = None,
) -> dict[str, BaseCAM]:
    """One method object per class on ``model`` at ``layer``, with the ``shared`` arguments of every method
    (the module's [`cam_method_kwargs`][lightning_cam.mixin.CAMMixin.cam_method_kwargs], e.g. its activation layout)
    overridden
    by its own ``method_kwargs`` (a constructor that rejects them -> ``TypeError`` naming the method)."""
    cams: dict[str, BaseCAM] = {}
    for name, cls in classes.items():
        try:
            cams[name] = cls(model, target_layer=layer, **{**(shared or {}), **method_kwargs.get(name, {})})
        except TypeError as err:
            raise TypeError(f"cannot build CAM method {name!r} ({cls.__name__}): {err}") from err
    return cams


def check_schedule(every_n_epochs: int, max_samples: int | None, num_images: int) -> None:
    """When and how much: ``every_n_epochs >= 1``, ``max_samples`` ``None`` or ``>= 0``, ``num_images >= 0``."""
    if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
        raise ValueError(f"`every_n_epochs` must be an int >= 1, got {every_n_epochs!r}.")
    if max_samples is not None and (not isinstance(max_samples, int) or max_samples < 0):
        raise ValueError(f"`max_samples` must be None (all) or an int >= 0, got {max_samples!r}.")
    if not isinstance(num_images, int) or num_images < 0:
        raise ValueError(f"`num_images` must be an int >= 0, got {num_images!r}.")


def check_target(target: str) -> None:
    """``target`` is ``'pred'`` or ``'label'``."""
    if target not in ("pred", "label"):
        raise ValueError(f"`target` must be 'pred' (explain the prediction) or 'label', got {target!r}.")


def check_display(colormap: str, alpha: float, tile_size: int) -> None:
    """The grids' look: a matplotlib ``colormap``, ``alpha`` in ``[0, 1]``, ``tile_size >= 16`` pixels.

    Examples:
        >>> check_display("jet", 1.5, 128)
        Traceback (most recent call last):
        ...
        ValueError: `alpha` (the heatmap's weight in the overlay) must be in [0, 1], got 1.5.
    """
    check_alpha(alpha)
    colormap_table(colormap)  # unknown colormap -> ValueError now, not at the first epoch
    if tile_size < 16:
        raise ValueError(f"`tile_size` must be at least 16 pixels, got {tile_size}.")


def check_metric_kwargs(metric_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``metric_kwargs`` once [`lightning_cam.evaluate_batch`][lightning_cam.evaluate_batch] accepts them
    (unknown or
    out-of-range options -> error now, not at every epoch)."""
    options = dict(metric_kwargs or {})
    check_metric_options(dict(options))
    return options
