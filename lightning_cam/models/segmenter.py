"""``UNetSegmenter``: a small U-Net (encoder, decoder with skip connections, a 1x1 head) for ``task="segmentation"``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_cam.models.base import ImageClassifier, as_list
from lightning_cam.targets.task import check_task

__all__ = ["UNetSegmenter"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Decoder(nn.Module):
    """Upsample, concatenate the encoder's stage of the same size, a conv block; its output is the last stage's."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        ups = list(reversed(channels))
        self.blocks = nn.ModuleList(_block(ups[i] + ups[i + 1], ups[i + 1]) for i in range(len(ups) - 1))

    def forward(self, stages: list[Tensor]) -> Tensor:
        x = stages[-1]
        for block, skip in zip(self.blocks, reversed(stages[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x


class _Encoder(nn.Module):
    """Conv blocks, each after the first starting with a 2x2 max-pool; returns every stage's output."""

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        cins = [in_channels, *channels[:-1]]
        self.stages = nn.ModuleList(
            nn.Sequential(*([nn.MaxPool2d(2)] if i else []), *_block(cin, cout))
            for i, (cin, cout) in enumerate(zip(cins, channels))
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class _Context(nn.Module):
    """Image-level context at the bottleneck (DeepLabV3's image pooling, PSPNet's global prior): the stage's mean over
    space, a 1x1 conv and a ReLU, added at every position, so each pixel's class can depend on the whole image."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.proj(x.mean(dim=(2, 3), keepdim=True))


class UNetSegmenter(ImageClassifier):
    """A small U-Net: ``encoder`` (conv stages at 1, 1/2, 1/4, ... of the input), ``decoder`` (upsampling with the
    encoder's stages as skip connections, back to full size) and ``head`` (a 1x1 conv to ``(B, K, H, W)`` logits).

    The CAM callback explains it under ``task="segmentation"`` (`lightning_cam.targets.segmentation`): by the
    default-layer rule the decoder's output, the last stage before the head (`lightning_cam.methods.choose`,
    rule (d)). The loss is the per-pixel cross-entropy, ``val_acc`` the pixel accuracy. The other arguments are
    those of [`ImageClassifier`][lightning_cam.models.base.ImageClassifier]; ``ignore_index`` (e.g. ``0``, the
    background) is a class a CAM pair never names; ``class_weights`` weigh the cross-entropy per class (the
    background, most of the pixels, weighed down learns the objects sooner: ``[0.2, 1, 1, ...]``).

    ``context=True`` adds image-level context at the bottleneck (`_Context`: the deepest stage's mean over space, a
    1x1 conv, added at every position, as DeepLabV3's image pooling and PSPNet's global prior do), so a pixel's class
    can depend on anything in the image, not only on its ~30-pixel receptive field: what lets a segmenter learn a
    cue far from the object (the planted watermark of ``configs/shapes_segmentation_shortcut.yaml``).
    ``cam_layer`` sets the layer CAM explains (the mixin's ``cam_target_layer``; ``None``: the rule's choice, the
    decoder's output). At the decoder's output, one 1x1 conv before the logits, a gradient map is the class's
    logit map over the image, so it shows *where* the class is predicted, not *what* decides it; to see a cue that
    decides a class from elsewhere in the image, explain the bottleneck (``"encoder.stages.<last>"``, the layer
    pytorch-grad-cam's DeepLabV3 tutorial explains).

    Args:
        num_classes: the classes of the label maps, the background included.
        in_channels: input channels.
        channels: output channels of each encoder stage (the decoder mirrors them).
        context: image-level context at the bottleneck (see above).
        cam_layer: the dotted name of the layer CAM explains; ``None``: chosen by the rule.

    Examples:
        >>> model = UNetSegmenter(num_classes=6, channels=(8, 16, 32))
        >>> model(torch.zeros(2, 3, 32, 32)).shape, model.cam_task.kind
        (torch.Size([2, 6, 32, 32]), 'segmentation')
        >>> UNetSegmenter(channels=(8, 16), context=True, cam_layer="encoder.stages.1").cam_layer()
        'encoder.stages.1'
    """

    def __init__(
        self,
        num_classes: int = 6,
        in_channels: int = 3,
        channels: Sequence[int] = (16, 32, 64),
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        cosine: bool = True,
        class_names: Sequence[str] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        task: str = "segmentation",
        ignore_index: int | None = 0,
        class_weights: Sequence[float] | None = None,
        context: bool = False,
        cam_layer: str | None = None,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, cosine=cosine, class_names=class_names, mean=mean, std=std,
                         task=task)
        task_ = check_task(self.cam_task)
        if task_.kind != "segmentation":
            raise ValueError(f"UNetSegmenter is a segmenter: task must be 'segmentation', got {task!r}")
        if num_classes < 2 or in_channels < 1 or len(channels) < 2 or min(channels) < 1:
            raise ValueError(
                f"need num_classes >= 2, in_channels >= 1 and at least two positive stage widths; got "
                f"num_classes={num_classes}, in_channels={in_channels}, channels={list(channels)}"
            )
        if class_weights is not None and (len(class_weights) != num_classes or min(class_weights) < 0):
            raise ValueError(f"class_weights must hold {num_classes} non-negative weights (one per class), got "
                             f"{list(class_weights)}")
        channels = list(channels)
        mean, std, class_names = as_list(mean), as_list(std), as_list(class_names)
        class_weights = as_list(class_weights)
        self.save_hyperparameters()
        self.register_buffer("loss_weights", torch.tensor(class_weights or [], dtype=torch.float32), persistent=False)
        self.cam_task = dataclasses.replace(task_, ignore_index=ignore_index)
        self.encoder = _Encoder(in_channels, channels)
        self.context = _Context(channels[-1]) if context else None
        self.decoder = _Decoder(channels)
        self.head = nn.Conv2d(channels[0], num_classes, 1)
        if cam_layer is not None and cam_layer not in dict(self.named_modules()):
            stages = [f"encoder.stages.{i}" for i in range(len(channels))]
            raise ValueError(f"cam_layer {cam_layer!r} names no module of this U-Net; e.g. one of {stages}, "
                             "'decoder', or None for the rule's choice")
        self.cam_target_layer = cam_layer

    def class_weights(self) -> Tensor | None:
        weights = self.get_buffer("loss_weights")
        return weights if weights.numel() else None

    def forward(self, images: Tensor) -> Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes, H, W)`` logits."""
        stages = self.encoder(images)
        if self.context is not None:
            stages[-1] = self.context(stages[-1])
        return self.head(self.decoder(stages))
