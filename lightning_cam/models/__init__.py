"""Small image classifiers that carry :class:`~lightning_cam.CAMMixin`, ready for the CAM callback."""

from lightning_cam.models.base import ImageClassifier
from lightning_cam.models.gap import GAPClassifier

__all__ = ["GAPClassifier", "ImageClassifier", "ResNetClassifier"]


def __getattr__(name: str):  # ResNetClassifier imports torchvision lazily
    if name == "ResNetClassifier":
        from lightning_cam.models.resnet import ResNetClassifier

        return ResNetClassifier
    raise AttributeError(f"module 'lightning_cam.models' has no attribute {name!r}")
