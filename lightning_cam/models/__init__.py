"""Small image classifiers that carry [`CAMMixin`][lightning_cam.CAMMixin], ready for the CAM callback."""

from lightning_cam.models.base import ImageClassifier
from lightning_cam.models.embedding import EmbeddingNet
from lightning_cam.models.gap import GAPClassifier
from lightning_cam.models.resnet import ResNetClassifier
from lightning_cam.models.segmenter import UNetSegmenter

__all__ = ["EmbeddingNet", "GAPClassifier", "ImageClassifier", "ResNetClassifier", "UNetSegmenter"]
