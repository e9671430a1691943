"""``GAPClassifier``: a small conv net with a global-average-pooling head, so every CAM method applies."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lightning_cam.models.base import ImageClassifier, as_list

__all__ = ["GAPClassifier", "conv_block", "conv_stack"]


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """A 3x3 conv (no bias), BatchNorm and ReLU: ``cout`` channels at the input's size."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))



def conv_stack(in_channels: int, channels: Sequence[int]) -> nn.Sequential:
    """``len(channels)`` `conv_block`s, those after the first starting with a 2x2 max-pool (so each block ends with
    its ReLU, the layer CAM reads): a ``(B, C, H, W)`` input gives ``(B, channels[-1], H / 2^(n-1), W / 2^(n-1))``.

    Examples:
        >>> import torch
        >>> conv_stack(3, (8, 16))(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 16, 16, 16])
    """
    cins = [in_channels, *channels[:-1]]
    return nn.Sequential(*(nn.Sequential(*([nn.MaxPool2d(2)] if i else []), *conv_block(cin, cout))
                           for i, (cin, cout) in enumerate(zip(cins, channels))))

class GAPClassifier(ImageClassifier):
    """Conv blocks -> ``AdaptiveAvgPool2d(1)`` -> flatten -> ``Linear`` (``fc``): the CAM architecture.

    ``features`` is an ``nn.Sequential`` of ``len(channels)`` blocks (3x3 conv, BatchNorm, ReLU), the
    blocks after the first starting with a 2x2 max-pool, so a ``(B, C, H, W)`` input gives a
    ``(B, channels[-1], H / 2^(n-1), W / 2^(n-1))`` activation at the target layer
    ``features.<n-1>`` (the last block's ReLU output; 8x8 for 64x64 inputs and 4 blocks). Then
    ``logits = fc(mean_ij A_ij)``, so CAM's ``map = Σ_k w_k^c A^k`` is exact.

    The arguments ``lr``, ``weight_decay``, ``cosine``, ``class_names``, ``mean``, ``std`` and ``task`` are those
    of [`ImageClassifier`][lightning_cam.models.gap.ImageClassifier].

    Args:
        num_classes: number of classes (one logit for ``task="binary"``, which needs ``num_classes=2``).
        in_channels: input channels (3 for RGB, 1 for MNIST).
        channels: output channels of each conv block.
        dropout: dropout before ``fc``.

    Examples:
        >>> import torch
        >>> model = GAPClassifier(num_classes=5, channels=(8, 16))
        >>> model(torch.zeros(2, 3, 32, 32)).shape, model.cam_layer()
        (torch.Size([2, 5]), 'features.1')
    """

    def __init__(
        self,
        num_classes: int = 5,
        in_channels: int = 3,
        channels: Sequence[int] = (16, 32, 64, 64),
        dropout: float = 0.0,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        cosine: bool = True,
        class_names: Sequence[str] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        task: str = "multiclass",
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, cosine=cosine, class_names=class_names, mean=mean, std=std,
                         task=task)
        if num_classes < 2 or in_channels < 1 or not channels or min(channels) < 1:
            raise ValueError(
                f"need num_classes >= 2, in_channels >= 1 and a non-empty list of positive channels; got "
                f"num_classes={num_classes}, in_channels={in_channels}, channels={list(channels)}"
            )
        # Plain lists in the recorded hparams (see `as_list`); save_hyperparameters reads these locals.
        channels = list(channels)
        mean, std, class_names = as_list(mean), as_list(std), as_list(class_names)
        self.save_hyperparameters()
        self.features = conv_stack(in_channels, channels)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels[-1], self.num_outputs(num_classes))
        self.cam_target_layer = f"features.{len(channels) - 1}"

    def forward(self, images: Tensor) -> Tensor:
        """``(B, C, H, W)`` images -> ``(B, num_classes)`` logits (``(B, 1)`` for ``task="binary"``)."""
        return self.fc(self.dropout(self.gap(self.features(images)).flatten(1)))
