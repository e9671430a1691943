"""Method registry: the one list of methods (``METHODS``), ``get_method(name)`` and ``available_methods()``.

Canonical names (each class's ``name``) are the names in logged keys (``cam/<name>/<metric>``), so they use only
letters, digits, ``_``, ``.`` and ``/`` (:data:`TAG_NAME`): every logger keeps them as they are (MLflow, for one,
strips ``+``), so two methods can never collide in a logger. Older spellings (``"gradcam++"``, ``"Grad-CAM++"``)
stay accepted as aliases.
"""

from __future__ import annotations

import re

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
    "TAG_NAME",
    "XGradCAM",
    "available_methods",
    "check_tag_name",
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


#: what a canonical method name (a part of every logged key) may contain.
TAG_NAME = re.compile(r"[A-Za-z0-9_./]+")


def check_tag_name(name: str) -> str:
    """``name`` if it can be a part of a logged key in every logger (only letters, digits, ``_``, ``.``, ``/``),
    else ``ValueError`` naming the fix.

    Examples:
        >>> check_tag_name("gradcam_pp")
        'gradcam_pp'
        >>> check_tag_name("my+cam")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: method name 'my+cam' would be changed by some loggers ...
    """
    if not TAG_NAME.fullmatch(name):
        suggestion = re.sub(r"[^A-Za-z0-9_./]+", "_", name.replace("+", "_p")).strip("_") or "my_cam"
        raise ValueError(
            f"method name {name!r} would be changed by some loggers (MLflow strips '+'); give the class a `name` "
            f"made of letters, digits, '_', '.' and '/' only, e.g. {suggestion!r}."
        )
    return name


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "-_ ")


_REGISTRY: dict[str, type[BaseCAM]] = {}
for _cls in METHODS:
    for _name in (_cls.name, _cls.__name__, *_cls.aliases):
        _REGISTRY[_key(_name)] = _cls


def available_methods() -> list[str]:
    """Canonical method names, in the order of the design table.

    Examples:
        >>> available_methods()[:4]
        ['cam', 'gradcam', 'gradcam_pp', 'smoothgradcam_pp']
    """
    return [cls.name for cls in METHODS]


def get_method(name: str | type[BaseCAM]) -> type[BaseCAM]:
    """The method class for ``name``: a canonical name, an alias or the class name.

    Case-insensitive; ``-``, ``_`` and spaces are ignored (``"Grad-CAM++"``, ``"grad_cam_pp"``,
    ``"GradCAMPlusPlus"`` all work). A class is returned as is. Unknown names raise ``ValueError``
    listing the valid ones.

    Examples:
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
