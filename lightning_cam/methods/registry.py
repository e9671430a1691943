"""The method registry: ``@register_method`` where each method class is defined, ``get_method(name)`` and
``available_methods()`` read when asked ([`Registry`][lightning_cam.utilities.registry.Registry]).

Canonical names (each class's ``name``) are the names in logged keys (``cam/<name>/<metric>``), so they use only
letters, digits, ``_``, ``.`` and ``/`` (`TAG_NAME`): every logger keeps them as they are (MLflow, for one,
strips ``+``), so two methods can never collide in a logger. Other spellings (``"gradcam++"``, ``"Grad-CAM++"``)
are accepted as aliases.

A method of your own is a [`BaseCAM`][lightning_cam.methods.base.BaseCAM] subclass decorated with
[`register_method`][lightning_cam.methods.registry.register_method], in your own file: once that file has run, its name
works everywhere a method name
does (``CAMCallback(methods=...)``, ``get_method``, the YAML configs).
"""

from __future__ import annotations

import re
from typing import TypeVar

from lightning_cam.methods.base import BaseCAM
from lightning_cam.utilities.registry import Registry

__all__ = [
    "METHOD_REGISTRY",
    "TAG_NAME",
    "available_methods",
    "check_tag_name",
    "get_method",
    "register_method",
]

#: what a canonical method name (a part of every logged key) may contain.
TAG_NAME = re.compile(r"[A-Za-z0-9_./]+")

#: canonical method name -> class; the built-in methods are the modules of `lightning_cam.methods`.
METHOD_REGISTRY: Registry[type[BaseCAM]] = Registry("CAM method", package="lightning_cam.methods")

M = TypeVar("M", bound=type[BaseCAM])


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


def register_method(cls: M) -> M:
    """Class decorator: register a [`BaseCAM`][lightning_cam.methods.base.BaseCAM] subclass under its ``name``
    (checked by `check_tag_name`), its ``aliases`` and its class name.

    Examples:
        >>> from lightning_cam.methods import GradCAM
        >>> @register_method
        ... class DoubleGradCAM(GradCAM):
        ...     name = "double_gradcam"
        >>> get_method("Double-GradCAM") is DoubleGradCAM
        True
        >>> METHOD_REGISTRY.remove("double_gradcam") is DoubleGradCAM
        True
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseCAM)):
        raise TypeError(f"@register_method decorates a BaseCAM subclass, got {cls!r}.")
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a class attribute `name` (letters, digits, '_') to be registered.")
    # a subclass inherits its parent's `aliases`: only the ones it declares anew are its own
    inherited = {alias for base in cls.__mro__[1:] for alias in getattr(base, "aliases", ())}
    own = tuple(alias for alias in cls.aliases if alias not in inherited)
    METHOD_REGISTRY.add(check_tag_name(cls.name), cls, aliases=(cls.__name__, *own))
    return cls


def available_methods() -> list[str]:
    """The canonical names of the registered methods, in registration order (read when called).

    Examples:
        >>> available_methods()[:3]
        ['cam', 'gradcam', 'gradcam_pp']
    """
    return METHOD_REGISTRY.names()


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
    return METHOD_REGISTRY.get(name)
