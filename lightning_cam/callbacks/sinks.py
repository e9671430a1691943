"""Where the callback's images go: one small sink per logger kind behind
[`ImageSink`][lightning_cam.callbacks.sinks.ImageSink].

| logger | sink |
|---|---|
| TensorBoard (any | `TensorBoardSink`: ``experiment.add_image``; files in the logger's ``log_dir`` |
| package, or any logger |  |
| whose ``experiment`` |  |
| has ``add_image``) |  |
| W&B | `WandbSink`: ``WandbLogger.log_image`` (with a caption); files in the run's files folder (synced with the run) |
| MLflow | `MLflowSink`: ``experiment.log_image(run_id, key=..., step=...)``; files as image artifacts of the run |
| Comet | `CometSink`: ``experiment.log_image(name=..., step=...)`` |
| Neptune | `NeptuneSink`: ``run[tag].append(File.as_image(...), step=...)`` |
| anything else (CSV, | `PNGDirectorySink`: PNG files in the logger's own ``log_dir`` |
| a custom logger) |  |

Never a file outside a logger's own place: a trainer without loggers (``logger=False``, ``fast_dev_run``'s
dummy logger) gets no sink at all. `image_sinks` picks the sinks of a trainer's loggers,
`log_to_all` writes one image to every sink and returns the failures instead of raising (one broken
logger neither stops training nor the other loggers), `missing_sinks_message` is the setup warning.
"""

from __future__ import annotations

import importlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from torch import Tensor

from lightning_cam.render import to_uint8
from lightning_cam.utilities.lightning import (
    COMET_LOGGERS,
    DUMMY_LOGGERS,
    MLFLOW_LOGGERS,
    NEPTUNE_LOGGERS,
    TENSORBOARD_LOGGERS,
    WANDB_LOGGERS,
)

__all__ = [
    "CometSink",
    "ImageSink",
    "MLflowSink",
    "NeptuneSink",
    "PNG_COMPRESS_LEVEL",
    "PNGDirectorySink",
    "TensorBoardSink",
    "WandbSink",
    "image_sinks",
    "log_to_all",
    "logger_dir",
    "missing_sinks_message",
    "safe_name",
    "sink_for",
    "to_hwc_uint8",
]

#: zlib level of the PNG files the callback writes itself (a directory of PNG files, the end-of-fit files): 1, 2-3
#: times faster to encode than Pillow's default 6 on the callback's grids, for files about 15 % larger
PNG_COMPRESS_LEVEL = 1


def safe_name(name: str) -> str:
    """A file-name-safe form of a method name or tag: ``+`` becomes ``p``, anything but letters, digits,
    ``_``, ``.`` and ``-`` becomes ``_``.

    Examples:
        >>> safe_name("gradcam++")
        'gradcampp'
        >>> safe_name("cam/gradcam/grid")
        'cam_gradcam_grid'
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name.replace("+", "p"))


def to_hwc_uint8(image: Tensor) -> np.ndarray:
    """``(3, H, W)`` float in ``[0, 1]`` -> ``(H, W, 3)`` uint8 numpy array (what W&B, MLflow, Comet and
    Neptune take).

    Examples:
        >>> import torch
        >>> to_hwc_uint8(torch.ones(3, 2, 4)).shape
        (2, 4, 3)
    """
    return to_uint8(image.cpu()).permute(1, 2, 0).numpy()


class ImageSink(ABC):
    """One destination of images: ``image`` is always ``(3, H, W)`` float in ``[0, 1]``.

    Both methods raise on failure; `log_to_all` turns the failures into reported faults.
    """

    #: whether the writes may run on a background thread, after the training thread has logged later steps
    #: (`lightning_cam.callbacks.writer`): a logger that takes images at any step and from any thread
    background: ClassVar[bool] = False
    #: whether `log_image` shows the image in a viewer (a step-indexed series); ``False`` for a directory of PNG
    #: files, where `save` alone keeps an end-of-fit image (no second copy named by step)
    shows_images: bool = True
    #: whether the logger draws its own chart of every logged scalar (TensorBoard, W&B, MLflow, Comet, Neptune);
    #: ``False`` for a directory of PNG files, the one place where the summary view's figure is the only chart
    draws_charts: bool = True

    @abstractmethod
    def log_image(self, tag: str, image: Tensor, step: int, caption: str | None = None) -> None:
        """Log ``image`` under ``tag`` at ``step`` (the grids of every logged validation), with ``caption``
        where the logger shows one."""

    @abstractmethod
    def save(self, image: Tensor, filename: str) -> str | None:
        """Keep ``image`` as the file ``filename`` (a PNG) where this logger keeps its files; returns its path
        (or artifact name), ``None`` if this logger keeps no files."""


class PNGDirectorySink(ImageSink):
    """PNG files in ``directory`` (created on the first write): ``log_image`` writes
    ``<safe tag>_step<step>.png``, ``save`` writes ``filename``.

    Examples:
        >>> import tempfile, torch
        >>> sink = PNGDirectorySink(tempfile.mkdtemp())
        >>> os.path.basename(sink.save(torch.rand(3, 8, 8), "cam_evolution_gradcam.png"))
        'cam_evolution_gradcam.png'
        >>> os.path.basename(sink.path_of("cam/gradcam_pp/grid", 3))
        'cam_gradcam_pp_grid_step3.png'
    """

    background = True
    shows_images = False
    draws_charts = False

    def __init__(self, directory: str) -> None:
        self.directory = str(directory)

    def path_of(self, tag: str, step: int) -> str:
        """The file [`log_image`][lightning_cam.callbacks.sinks.ImageSink.log_image] writes for ``tag`` at ``step``."""
        return os.path.join(self.directory, f"{safe_name(tag)}_step{int(step)}.png")

    def log_image(self, tag: str, image: Tensor, step: int, caption: str | None = None) -> None:
        self._write(image, self.path_of(tag, step))

    def save(self, image: Tensor, filename: str) -> str:
        return self._write(image, os.path.join(self.directory, filename))

    def _write(self, image: Tensor, path: str) -> str:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # zlib level 1: 2-3 times faster to encode than Pillow's default 6, files about 15 % larger
        Image.fromarray(to_hwc_uint8(image)).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return path


class TensorBoardSink(ImageSink):
    """A TensorBoard logger (or any logger whose ``experiment`` has ``add_image``): ``log_image`` is
    ``logger.experiment.add_image(tag, image, global_step=step)`` (TensorBoard shows no caption: the step
    slider and the scalars' step axis are the same), ``save`` writes a PNG into the logger's ``log_dir``."""

    background = True

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def log_image(self, tag: str, image: Tensor, step: int, caption: str | None = None) -> None:
        self.logger.experiment.add_image(tag, image, global_step=step, dataformats="CHW")

    def save(self, image: Tensor, filename: str) -> str | None:
        directory = logger_dir(self.logger)
        return None if directory is None else PNGDirectorySink(directory).save(image, filename)


class WandbSink(ImageSink):
    """A ``WandbLogger``: ``log_image`` is ``logger.log_image(tag, [image], step=step, caption=[caption])``
    (W&B plots it against ``trainer/global_step`` like the scalars), ``save`` writes the PNG into the run's
    files folder (``experiment.dir``), which W&B syncs with the run."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def log_image(self, tag: str, image: Tensor, step: int, caption: str | None = None) -> None:
        extra = {"caption": [caption]} if caption else {}
        self.logger.log_image(key=tag, images=[to_hwc_uint8(image)], step=step, **extra)

    def save(self, image: Tensor, filename: str) -> str:
        return PNGDirectorySink(str(self.logger.experiment.dir)).save(image, filename)


class MLflowSink(ImageSink):
    """An ``MLFlowLogger``: ``log_image`` is MLflow's step-indexed image,
    ``experiment.log_image(run_id, image, key=tag, step=step)`` (artifacts under ``images/`` of the run);
    ``save`` is the image artifact ``filename`` of the run (never a file in the tracking store's root)."""

    background = True

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def log_image(self, tag: str, image: Tensor, step: int, caption: str | None = None) -> None:
        self.logger.experiment.log_image(self.logger.run_id, to_hwc_uint8(image), key=tag, step=int(step))

    def save(self, image: Tensor, filename: str) -> str:
        self.logger.experiment.log_image(self.logger.run_id, to_hwc_uint8(image), artifact_file=filename)
        return filename


class CometSink(ImageSink):
    """A ``CometLogger``: ``experiment.log_image(image, name=tag, step=step)``; ``save`` logs it under
    ``filename``."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def log_image(self, tag: str, image: Tensor, step: int, caption: str | None = None) -> None:
        self.logger.experiment.log_image(to_hwc_uint8(image), name=tag, step=int(step))

    def save(self, image: Tensor, filename: str) -> str:
        self.logger.experiment.log_image(to_hwc_uint8(image), name=filename)
        return filename


class NeptuneSink(ImageSink):
    """A ``NeptuneLogger``: ``run[tag].append(File.as_image(image), step=step)`` (a series of images);
    ``save`` uploads it as ``cam_files/<filename>``."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    @staticmethod
    def _file(image: Tensor) -> Any:
        types = importlib.import_module("neptune.types")  # optional package: only when a NeptuneLogger exists
        return types.File.as_image(to_hwc_uint8(image))

    def log_image(self, tag: str, image: Tensor, step: int, caption: str | None = None) -> None:
        self.logger.experiment[tag].append(self._file(image), step=int(step), description=caption)

    def save(self, image: Tensor, filename: str) -> str:
        key = f"cam_files/{safe_name(filename)}"
        self.logger.experiment[key].upload(self._file(image))
        return key


def logger_dir(logger: Any) -> str | None:
    """The logger's own directory: its ``log_dir``, else its ``save_dir``; ``None`` if it has neither."""
    for attr in ("log_dir", "save_dir"):
        try:
            path = getattr(logger, attr, None)
        except Exception:  # noqa: BLE001 - a custom logger's property may fail: then it has no directory
            path = None
        if path:
            return str(path)
    return None


def _has_add_image(logger: Any) -> bool:
    try:
        return callable(getattr(logger.experiment, "add_image", None))
    except Exception:  # noqa: BLE001 - a custom logger's experiment may fail to start: no image call then
        return False


def sink_for(logger: Any) -> ImageSink | None:
    """The sink of one logger (see the module's table), ``None`` when it can neither show images nor has a
    directory (and for Lightning's ``DummyLogger``, which stands for "no logger")."""
    if isinstance(logger, DUMMY_LOGGERS):
        return None
    if isinstance(logger, TENSORBOARD_LOGGERS):
        return TensorBoardSink(logger)
    for kinds, sink in ((WANDB_LOGGERS, WandbSink), (MLFLOW_LOGGERS, MLflowSink), (COMET_LOGGERS, CometSink),
                        (NEPTUNE_LOGGERS, NeptuneSink)):
        if isinstance(logger, kinds):
            return sink(logger)
    if _has_add_image(logger):
        return TensorBoardSink(logger)
    directory = logger_dir(logger)
    return None if directory is None else PNGDirectorySink(directory)


def image_sinks(trainer: Any) -> list[ImageSink]:
    """One sink per logger of ``trainer`` that can keep images, in ``trainer.loggers`` order (rank zero only:
    some loggers start their run when asked for it)."""
    sinks = (sink_for(lg) for lg in trainer.loggers)
    return [s for s in sinks if s is not None]


def missing_sinks_message(trainer: Any) -> str | None:
    """The setup warning when some of the trainer's loggers (or all: no logger) get no images, ``None`` when
    every logger gets them.

    Examples:
        >>> class T:
        ...     loggers = []
        ...     fast_dev_run = False
        >>> print(missing_sinks_message(T()))  # doctest: +NORMALIZE_WHITESPACE
        CAMCallback: the trainer has no logger, so the CAM heatmap grids and evolution images are neither shown
        nor saved (the cam/<method>/<metric> scalars are still in trainer.callback_metrics). Give the trainer a
        logger (TensorBoard, W&B, MLflow, CSV, ...) to see them.
    """
    loggers = [lg for lg in trainer.loggers if not isinstance(lg, DUMMY_LOGGERS)]
    if not loggers:
        why = ("fast_dev_run replaces the trainer's loggers" if getattr(trainer, "fast_dev_run", False)
               else "the trainer has no logger")
        return (
            f"CAMCallback: {why}, so the CAM heatmap grids and evolution images are neither shown nor saved (the "
            "cam/<method>/<metric> scalars are still in trainer.callback_metrics). Give the trainer a logger "
            "(TensorBoard, W&B, MLflow, CSV, ...) to see them."
        )
    blind = [type(lg).__name__ for lg in loggers if sink_for(lg) is None]
    if not blind:
        return None
    return (
        f"CAMCallback: logger(s) {blind} have no image call and no log_dir, so they get the cam/<method>/<metric> "
        "scalars but no CAM heatmap grids; give them a `log_dir` (PNG files go there) or add a TensorBoardLogger."
    )


def log_to_all(
    sinks: Sequence[ImageSink], tag: str, image: Tensor, step: int, caption: str | None = None
) -> list[BaseException]:
    """``sink.log_image(tag, image, step, caption)`` on each sink; returns the exceptions raised (one per
    failing sink) instead of raising.

    Examples:
        >>> import torch
        >>> class Broken(PNGDirectorySink):
        ...     def log_image(self, tag, image, step, caption=None):
        ...         raise OSError("disk full")
        >>> log_to_all([Broken("unused")], "cam/gradcam/grid", torch.rand(3, 8, 8), 0)
        [OSError('disk full')]
    """
    errors: list[BaseException] = []
    for sink in sinks:
        try:
            sink.log_image(tag, image, step, caption)
        except Exception as err:  # noqa: BLE001 - a failing logger is a reported fault, never fatal
            errors.append(err)
    return errors
