"""Datamodules: the built-in synthetic Shapes data and CIFAR-10, MNIST and ImageFolder from local files.

Every datamodule yields dict batches ``{"image": (B, C, H, W) float32 normalised, "label": (B,) long}``;
Shapes batches also carry ``"mask"`` ``(B, H, W)`` bool and ``"box"`` ``(B, 4)`` float. Each exposes
``num_classes``, ``in_channels``, ``class_names``, ``mean`` and ``std``.
"""

from lightning_cam.data.shapes import SHAPES_CLASSES, SHAPES_MEAN, SHAPES_STD, ShapesDataset, masks_to_boxes
from lightning_cam.data.shapes_datamodule import ShapesDataModule
from lightning_cam.data.vision import CIFAR10DataModule, ImageFolderDataModule, MNISTDataModule

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
