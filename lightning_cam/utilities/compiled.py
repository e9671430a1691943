"""CAM work on ``torch.compile``'d modules: run them eagerly, and name their layers with or without ``_orig_mod``.

A compiled graph skips forward hooks registered after compilation, so the target layer's hook would never fire
(the CAM methods would report the layer as "not called"). CAM passes therefore run under
`eager_compiled`, which makes every compiled module (``self.net = torch.compile(net)``, a LightningModule
compiled whole with ``model.compile()`` or ``torch.compile(model)``) run its original Python code, hooks
included, for the duration of the block; training and validation keep the compiled code. Layer names go
through `compiled_aliases`: ``"net.2"`` and ``"net._orig_mod.2"`` name the same layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

__all__ = ["compiled_aliases", "eager_compiled", "strip_compiled"]

_ORIG = "_orig_mod"


def strip_compiled(name: str) -> str:
    """``name`` without the ``_orig_mod`` components that ``torch.compile`` wrappers add.

    Examples:
        >>> strip_compiled("net._orig_mod.2"), strip_compiled("_orig_mod.features.1"), strip_compiled("fc")
        ('net.2', 'features.1', 'fc')
    """
    return ".".join(part for part in name.split(".") if part != _ORIG)


def compiled_aliases(named: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
    """The extra names of ``named`` (``dict(model.named_modules())``) that skip ``_orig_mod`` components, for
    the modules inside compiled wrappers; names already in ``named`` are never shadowed.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> model = nn.Sequential(torch.compile(net, backend="eager"))
        >>> sorted(compiled_aliases(dict(model.named_modules())))
        ['0.0', '0.1']
    """
    aliases: dict[str, nn.Module] = {}
    for name, module in named.items():
        if _ORIG in name.split("."):
            alias = strip_compiled(name)
            if alias not in named and alias not in aliases:
                aliases[alias] = module
    return aliases


@contextlib.contextmanager
def eager_compiled() -> Iterator[None]:
    """Run every compiled module eagerly (its original code, hooks included) inside the block.

    Examples:
        >>> net = torch.compile(nn.Linear(2, 2), backend="eager")
        >>> calls = []
        >>> _ = net._orig_mod.register_forward_hook(lambda *args: calls.append(1))
        >>> with eager_compiled():
        ...     _ = net(torch.zeros(1, 2))
        >>> calls
        [1]
    """
    with torch.compiler.set_stance("force_eager"):
        yield
