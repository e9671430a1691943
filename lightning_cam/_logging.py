"""Where the callback's images go: TensorBoard loggers, PNG files, and rank-zero progress lines."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor

__all__ = ["Progress", "image_dir", "log_image", "safe_name", "tensorboard_loggers"]


def tensorboard_loggers(trainer: pl.Trainer) -> list[Any]:
    """Every logger of ``trainer`` that can take images (TensorBoard), in ``trainer.loggers`` order."""
    from lightning_fabric.loggers import TensorBoardLogger as FabricTB
    from pytorch_lightning.loggers import TensorBoardLogger

    return [lg for lg in trainer.loggers if isinstance(lg, (TensorBoardLogger, FabricTB))]


def log_image(loggers: Sequence[Any], tag: str, image: Tensor, step: int) -> list[BaseException]:
    """``add_image(tag, image, global_step=step)`` on each logger; returns the exceptions raised (one per
    logger that failed) instead of raising, so one broken logger neither stops training nor the others.

    ``image`` is ``(3, H, W)`` float in ``[0, 1]``.
    """
    errors: list[BaseException] = []
    for lg in loggers:
        try:
            lg.experiment.add_image(tag, image, global_step=step, dataformats="CHW")
        except Exception as err:  # noqa: BLE001 - a failing logger is a reported fault, never fatal
            errors.append(err)
    return errors


def image_dir(trainer: pl.Trainer) -> str | None:
    """Directory for PNG files: the first TensorBoard logger's ``log_dir``, else ``trainer.log_dir`` (the first
    logger's, or ``trainer.default_root_dir``). ``None`` when the trainer has no logger at all
    (``logger=False`` asks for no output, so no files are written into the working directory)."""
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


def safe_name(name: str) -> str:
    """A file-name-safe form of a method name (``gradcam++`` -> ``gradcampp``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name.replace("+", "p"))


def save_png(image: Tensor, directory: str, filename: str) -> str:
    """Save ``(3, H, W)`` float ``[0, 1]`` as a PNG and return its path (creates the directory)."""
    from torchvision.utils import save_image

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, filename)
    save_image(image, path)
    return path


class Progress:
    """Rank-zero progress lines for CAM work: quiet for short work, a line every ``interval`` seconds and a
    summary at the end once the work has taken longer than ``after`` seconds (or always, ``enabled=True``;
    never, ``enabled=False``). Only ``time.perf_counter`` is read: no effect on results."""

    def __init__(self, enabled: bool | None, after: float = 10.0, interval: float = 30.0) -> None:
        self.enabled = enabled
        self.after = after
        self.interval = interval
        self.start = time.perf_counter()
        self.last = self.start

    def restart(self) -> None:
        self.start = self.last = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def _on(self) -> bool:
        return self.enabled is True or (self.enabled is None and self.elapsed >= self.after)

    def step(self, message: str) -> None:
        now = time.perf_counter()
        if self.enabled is not False and self._on() and (self.enabled is True or now - self.last >= self.interval):
            self.last = now
            rank_zero_info(f"[lightning_cam] {message} ({self.elapsed:.1f}s)")

    def done(self, message: str) -> None:
        if self.enabled is not False and self._on():
            rank_zero_info(f"[lightning_cam] {message} in {self.elapsed:.1f}s")
