"""Datamodules: the built-in synthetic Shapes data and CIFAR-10, MNIST and ImageFolder from local files.

Every datamodule yields dict batches ``{"image": (B, C, H, W) float32 normalised, "label": (B,) long}``;
Shapes batches also carry ``"mask"`` ``(B, H, W)`` bool and ``"box"`` ``(B, 4)`` float. Each exposes
``num_classes``, ``in_channels``, ``class_names``, ``mean`` and ``std``.
"""

from lightning_cam.data.shapes import SHAPES_CLASSES, SHAPES_MEAN, SHAPES_STD, ShapesDataset, masks_to_boxes
from lightning_cam.data.shapes_datamodule import ShapesDataModule

__all__ = [
    "SHAPES_CLASSES",
    "SHAPES_MEAN",
    "SHAPES_STD",
    "CIFAR10DataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "ShapesDataModule",
    "ShapesDataset",
    "masks_to_boxes",
]

_VISION = {"CIFAR10DataModule", "ImageFolderDataModule", "MNISTDataModule"}


def __getattr__(name: str):  # the torchvision-backed datamodules are imported on first use
    if name in _VISION:
        from lightning_cam.data import vision

        return getattr(vision, name)
    raise AttributeError(f"module 'lightning_cam.data' has no attribute {name!r}")
