"""``ResNetClassifier``: a torchvision ResNet as a CAM-ready ``LightningModule``."""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import Tensor, nn

from lightning_cam.models.base import ImageClassifier, as_list

__all__ = ["ResNetClassifier"]

_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


class ResNetClassifier(ImageClassifier):
    """``torchvision.models.<arch>`` with its own head; the CAM target layer is ``model.layer4``.

    ResNets end in ``avgpool`` (global average pooling) -> ``fc``, so CAM applies as well as the
    gradient methods. ``in_channels != 3`` replaces ``conv1`` (e.g. 1 for MNIST; pretrained RGB
    filters are summed over their input channels and repeated so grey inputs give the same response).
    ``small_input=True`` swaps the stem for a 3x3 stride-1 ``conv1`` without the max-pool (the usual
    CIFAR variant), so 32x32 images give a 4x4 ``layer4`` map instead of 1x1.

    The arguments ``lr``, ``weight_decay``, ``cosine``, ``class_names``, ``mean``, ``std`` and ``task`` are those
    of [`ImageClassifier`][lightning_cam.models.resnet.ImageClassifier].

    Args:
        num_classes: number of classes (``model.fc`` is replaced when it differs from 1000).
        in_channels: input channels.
        arch: one of ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``, ``resnet152``.
        pretrained: load the torchvision ImageNet weights (downloads them once; off by default).
        small_input: CIFAR-style stem for small images.

    Examples:
        >>> import torch
        >>> model = ResNetClassifier(num_classes=10, in_channels=1, small_input=True)
        >>> model(torch.zeros(2, 1, 28, 28)).shape, model.cam_layer()
        (torch.Size([2, 10]), 'model.layer4')
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        arch: str = "resnet18",
        pretrained: bool = False,
        small_input: bool = False,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        cosine: bool = True,
        class_names: Sequence[str] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        task: str = "multiclass",
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, cosine=cosine, class_names=class_names, mean=mean, std=std,
                         task=task)
        if arch not in _ARCHS:
            raise ValueError(f"unknown arch {arch!r}; expected one of {list(_ARCHS)}")
        if num_classes < 2 or in_channels < 1:
            raise ValueError(f"need num_classes >= 2 and in_channels >= 1, got {num_classes}, {in_channels}")
        # Plain lists in the recorded hparams (see `as_list`); save_hyperparameters reads these locals.
        mean, std, class_names = as_list(mean), as_list(std), as_list(class_names)
        self.save_hyperparameters()
        weights = "DEFAULT" if pretrained else None
        model = getattr(torchvision.models, arch)(weights=weights)
        if small_input:
            old = model.conv1
            model.conv1 = nn.Conv2d(in_channels, old.out_channels, 3, stride=1, padding=1, bias=False)
            model.maxpool = nn.Identity()
        elif in_channels != 3:
            old = model.conv1
            conv = nn.Conv2d(in_channels, old.out_channels, 7, stride=2, padding=3, bias=False)
            if pretrained:
                grey = old.weight.detach().sum(1, keepdim=True) / in_channels
                conv.weight.data.copy_(grey.expand(-1, in_channels, -1, -1))
            model.conv1 = conv
        if model.fc.out_features != self.num_outputs(num_classes):
            model.fc = nn.Linear(model.fc.in_features, self.num_outputs(num_classes))
        self.model = model
        self.cam_target_layer = "model.layer4"

    def forward(self, images: Tensor) -> Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes)`` logits (``(B, 1)`` for ``task="binary"``)."""
        return self.model(images)
