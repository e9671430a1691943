"""``Registry``: one table of named entries (methods, metrics, views, target kinds), filled where each entry is
defined and read when asked.

Every registry of the package is one [`Registry`][lightning_cam.utilities.registry.Registry]. An entry registers itself
with the registry's
decorator in the file that defines it (``@register_method``, ``@register_metric``, ``@register_view``,
``@register_target``), like timm's ``@register_model``; the built-in entries are the modules of one package,
all imported the first time the table is read, so a new built-in entry is one new file and nothing else. A
user's entry registers when the user's own module runs the decorator, before or after ``import
lightning_cam``. Every list (names, defaults) is computed from the table when asked, never frozen at import.
A package of built-in entries calls `load` as it is imported, so their order is fixed (its explicit imports
first, then its other modules in name order), whichever module a program imports first.

Examples:
    >>> colours: Registry[str] = Registry("colour")
    >>> colours.add("red", "#f00", aliases=("Rouge",))
    '#f00'
    >>> colours.get("rouge"), colours.names()
    ('#f00', ['red'])
    >>> colours.get("blue")
    Traceback (most recent call last):
    ...
    ValueError: unknown colour 'blue'; valid names: red.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["Registry", "check_key_name", "lookup_key"]

T = TypeVar("T")


def lookup_key(name: str) -> str:
    """How a name is looked up: case-insensitive, ``-``, ``_`` and spaces ignored.

    Examples:
        >>> lookup_key("Grad-CAM++") == lookup_key("gradcam++")
        True
    """
    return "".join(ch for ch in name.lower() if ch not in "-_ ")


def check_key_name(name: str, what: str, lower: bool = False) -> str:
    """``name`` if it can be a part of every logged key: letters, digits and ``_`` (lower-case only when ``lower``);
    else a ``ValueError`` that names ``what`` carries it. The one rule for view, metric and target-kind names.

    Examples:
        >>> check_key_name("per_class", "view PerClassView")
        'per_class'
        >>> check_key_name("Peak Drop", "metric", lower=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: metric needs a name of lower-case letters, digits and '_' ..., got 'Peak Drop'.
    """
    if not name or not name.replace("_", "").isalnum() or (lower and name != name.lower()):
        case = "lower-case " if lower else ""
        raise ValueError(f"{what} needs a name of {case}letters, digits and '_' (a part of every logged key), "
                         f"got {name!r}.")
    return name


class Registry(Generic[T]):
    """Canonical name -> entry, in registration order, with aliases.

    Args:
        kind: what an entry is, for messages (``"CAM method"``).
        package: the package whose modules hold the built-in entries; imported on the first read.
        loose: look names up by `lookup_key` (case and ``-``/``_``/space insensitive); else exactly.
    """

    def __init__(self, kind: str, package: str | None = None, loose: bool = True) -> None:
        self.kind = kind
        self.package = package
        self.loose = loose
        self._entries: dict[str, T] = {}
        self._lookup: dict[str, str] = {}
        self._loaded = package is None

    def _key(self, name: str) -> str:
        return lookup_key(name) if self.loose else name

    def load(self) -> None:
        """Import every module of `package` once, in name order, so that the built-in entries have registered;
        each registry's package calls it as it is imported, so the registration order does not depend on which
        module a program happened to import first."""
        if self._loaded or self.package is None:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            importlib.import_module(f"{self.package}.{info.name}")

    def add(self, name: str, entry: T, aliases: tuple[str, ...] = ()) -> T:
        """Register ``entry`` under ``name`` (and ``aliases``); returns it. Registering the same entry again is a
        no-op; another entry under a taken name is a ``ValueError`` naming both."""
        if not name:
            raise ValueError(f"a {self.kind} needs a name to be registered, got {name!r}.")
        for alias in (name, *aliases):
            owner = self._lookup.get(self._key(alias))
            if owner is not None and self._entries[owner] is not entry:
                raise ValueError(f"two {self.kind}s are named {alias!r}: {self._entries[owner]!r} and {entry!r}; "
                                 "give the new one another name.")
        self._entries[name] = entry
        for alias in (name, *aliases):
            self._lookup[self._key(alias)] = name
        return entry

    def remove(self, name: str) -> T:
        """Unregister ``name`` (and its aliases); returns the entry."""
        canonical = self.canonical(name)
        entry = self._entries.pop(canonical)
        self._lookup = {k: v for k, v in self._lookup.items() if v != canonical}
        return entry

    def canonical(self, name: str) -> str:
        """The canonical name of ``name`` (an alias, another spelling), else ``ValueError`` listing the valid ones."""
        self.load()
        canonical = self._lookup.get(self._key(name)) if isinstance(name, str) else None
        if canonical is None:
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}.")
        return canonical

    def get(self, name: str) -> T:
        """The entry of ``name`` (see [`canonical`][lightning_cam.utilities.registry.Registry.canonical])."""
        return self._entries[self.canonical(name)]

    def names(self, where: Callable[[T], bool] | None = None) -> list[str]:
        """The canonical names, in registration order (only those whose entry satisfies ``where``)."""
        self.load()
        return [name for name, entry in self._entries.items() if where is None or where(entry)]

    def __contains__(self, name: object) -> bool:
        self.load()
        return isinstance(name, str) and self._key(name) in self._lookup

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs, in registration order."""
        self.load()
        return list(self._entries.items())
