"""Where the callback's images go: one small sink per logger kind behind :class:`ImageSink`.

Today's kinds: :class:`TensorBoardSink` (``add_image`` on a TensorBoard logger) and :class:`PNGDirectorySink`
(PNG files in a directory). :func:`image_sinks` picks the sinks of a trainer's loggers, :func:`output_dir`
the directory of the callback's files, :func:`log_to_all` writes one image to every sink and returns the
failures instead of raising (one broken logger neither stops training nor the other loggers).
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.loggers import TensorBoardLogger as FabricTensorBoardLogger
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import save_image

__all__ = [
    "ImageSink",
    "PNGDirectorySink",
    "TensorBoardSink",
    "image_sinks",
    "log_to_all",
    "output_dir",
    "safe_name",
    "tensorboard_loggers",
]


def safe_name(name: str) -> str:
    """A file-name-safe form of a method name or tag: ``+`` becomes ``p``, anything but letters, digits,
    ``_``, ``.`` and ``-`` becomes ``_``.

    Example:
        >>> safe_name("gradcam++")
        'gradcampp'
        >>> safe_name("cam/gradcam/grid")
        'cam_gradcam_grid'
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name.replace("+", "p"))


class ImageSink(ABC):
    """One destination of images: ``image`` is always ``(3, H, W)`` float in ``[0, 1]``.

    Both methods raise on failure; :func:`log_to_all` turns the failures into reported faults.
    """

    @abstractmethod
    def log_image(self, tag: str, image: Tensor, step: int) -> None:
        """Log ``image`` under ``tag`` at ``step`` (the grids of every logged epoch)."""

    @abstractmethod
    def save(self, image: Tensor, filename: str) -> str:
        """Keep ``image`` as the file ``filename`` (a PNG) and return its path."""


class PNGDirectorySink(ImageSink):
    """PNG files in ``directory`` (created on the first write): ``log_image`` writes
    ``<safe tag>_step<step>.png``, ``save`` writes ``filename``.

    Example:
        >>> import tempfile, torch
        >>> sink = PNGDirectorySink(tempfile.mkdtemp())
        >>> os.path.basename(sink.save(torch.rand(3, 8, 8), "cam_evolution_gradcam.png"))
        'cam_evolution_gradcam.png'
        >>> os.path.basename(sink.path_of("cam/gradcam++/grid", 3))
        'cam_gradcampp_grid_step3.png'
    """

    def __init__(self, directory: str) -> None:
        self.directory = str(directory)

    def path_of(self, tag: str, step: int) -> str:
        """The file :meth:`log_image` writes for ``tag`` at ``step``."""
        return os.path.join(self.directory, f"{safe_name(tag)}_step{int(step)}.png")

    def log_image(self, tag: str, image: Tensor, step: int) -> None:
        self._write(image, self.path_of(tag, step))

    def save(self, image: Tensor, filename: str) -> str:
        return self._write(image, os.path.join(self.directory, filename))

    def _write(self, image: Tensor, path: str) -> str:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_image(image, path)
        return path


class TensorBoardSink(ImageSink):
    """A TensorBoard logger: ``log_image`` is ``logger.experiment.add_image(tag, image, global_step=step)``,
    ``save`` writes a PNG into the logger's own ``log_dir``."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def log_image(self, tag: str, image: Tensor, step: int) -> None:
        self.logger.experiment.add_image(tag, image, global_step=step, dataformats="CHW")

    def save(self, image: Tensor, filename: str) -> str:
        return PNGDirectorySink(str(self.logger.log_dir)).save(image, filename)


def tensorboard_loggers(trainer: pl.Trainer) -> list[Any]:
    """Every logger of ``trainer`` that can take images (TensorBoard), in ``trainer.loggers`` order."""
    return [lg for lg in trainer.loggers if isinstance(lg, (TensorBoardLogger, FabricTensorBoardLogger))]


def image_sinks(trainer: pl.Trainer) -> list[ImageSink]:
    """The sinks that receive the callback's grids: one :class:`TensorBoardSink` per TensorBoard logger of
    ``trainer``, in ``trainer.loggers`` order (the other loggers get the scalars only, for now)."""
    return [TensorBoardSink(lg) for lg in tensorboard_loggers(trainer)]


def output_dir(trainer: pl.Trainer) -> str | None:
    """Directory for the callback's PNG files: the first TensorBoard logger's ``log_dir``, else
    ``trainer.log_dir`` (the first logger's, or ``trainer.default_root_dir``). ``None`` when the trainer has
    no logger at all (``logger=False`` asks for no output, so no files are written into the working
    directory)."""
    if not trainer.loggers:
        return None
    for lg in tensorboard_loggers(trainer):
        path = getattr(lg, "log_dir", None)
        if path:
            return str(path)
    try:
        path = trainer.log_dir
    except Exception:  # noqa: BLE001 - exotic loggers may not define a log_dir
        path = None
    return str(path or trainer.default_root_dir)


def log_to_all(sinks: Sequence[ImageSink], tag: str, image: Tensor, step: int) -> list[BaseException]:
    """``sink.log_image(tag, image, step)`` on each sink; returns the exceptions raised (one per failing
    sink) instead of raising.

    Example:
        >>> import torch
        >>> class Broken(PNGDirectorySink):
        ...     def log_image(self, tag, image, step):
        ...         raise OSError("disk full")
        >>> log_to_all([Broken("unused")], "cam/gradcam/grid", torch.rand(3, 8, 8), 0)
        [OSError('disk full')]
    """
    errors: list[BaseException] = []
    for sink in sinks:
        try:
            sink.log_image(tag, image, step)
        except Exception as err:  # noqa: BLE001 - a failing logger is a reported fault, never fatal
            errors.append(err)
    return errors
