"""Context managers that put a model in a known mode and restore it afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode (BatchNorm/Dropout must not couple samples, update running statistics or
    draw random numbers); restore every module's own train/eval flag afterwards, even on an exception.

    Examples:
        >>> net = nn.Sequential(nn.BatchNorm1d(2)).train()
        >>> with eval_mode(net):
        ...     net.training
        False
        >>> net.training
        True
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for module, training in modes:
            module.training = training
