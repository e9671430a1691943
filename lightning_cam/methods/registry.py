"""Method registry: the one list of methods (``METHODS``), ``get_method(name)`` and ``available_methods()``."""

from __future__ import annotations

from lightning_cam.methods.activation import CAM, EigenCAM, FakeCAM, ScoreCAM
from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.gradient import (
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    SmoothGradCAMPlusPlus,
    XGradCAM,
)

__all__ = [
    "CAM",
    "METHODS",
    "EigenCAM",
    "FakeCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "ScoreCAM",
    "SmoothGradCAMPlusPlus",
    "XGradCAM",
    "available_methods",
    "get_method",
]

#: every CAM method class, in the order of the design table: the one list of methods.
METHODS: tuple[type[BaseCAM], ...] = (
    CAM,
    GradCAM,
    GradCAMPlusPlus,
    SmoothGradCAMPlusPlus,
    XGradCAM,
    LayerCAM,
    HiResCAM,
    ScoreCAM,
    EigenCAM,
    FakeCAM,
)


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "-_ ")


_REGISTRY: dict[str, type[BaseCAM]] = {}
for _cls in METHODS:
    for _name in (_cls.name, _cls.__name__, *_cls.aliases):
        _REGISTRY[_key(_name)] = _cls


def available_methods() -> list[str]:
    """Canonical method names, in the order of the design table.

    Example:
        >>> available_methods()[:3]
        ['cam', 'gradcam', 'gradcam++']
    """
    return [cls.name for cls in METHODS]


def get_method(name: str | type[BaseCAM]) -> type[BaseCAM]:
    """The method class for ``name``: a canonical name, an alias or the class name.

    Case-insensitive; ``-``, ``_`` and spaces are ignored (``"Grad-CAM++"``, ``"grad_cam_pp"``,
    ``"GradCAMPlusPlus"`` all work). A class is returned as is. Unknown names raise ``ValueError``
    listing the valid ones.

    Example:
        >>> get_method("Grad-CAM++").__name__
        'GradCAMPlusPlus'
    """
    if isinstance(name, type) and issubclass(name, BaseCAM):
        return name
    if not isinstance(name, str):
        raise TypeError(f"method name must be a str, got {type(name).__name__}.")
    cls = _REGISTRY.get(_key(name))
    if cls is None:
        raise ValueError(f"unknown CAM method {name!r}; valid names: {', '.join(available_methods())}.")
    return cls
