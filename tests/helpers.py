"""Test doubles shared by several test files (imported as ``tests.helpers``)."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.loggers import TensorBoardLogger


class _FailingWriter:
    """A SummaryWriter stand-in whose ``add_image`` always fails; everything else is the real writer."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def add_image(self, *args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FailingTB(TensorBoardLogger):
    """A TensorBoard logger whose ``add_image`` always fails (scalars still work)."""

    @property
    def experiment(self) -> Any:
        return _FailingWriter(super().experiment)
