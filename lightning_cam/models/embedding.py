r"""``EmbeddingNet``: a small conv net that learns an embedding of its images (metric learning), for the CAM
callback's ``task="embedding"``.

The network returns a ``(B, D)`` embedding $e$; it learns it with class *proxies* $p_c$ (one learnt vector per
class) and the normalised-softmax loss (NormFace, Wang et al. 2017; the proxy family of metric learning):

$$
\mathcal{L} = -\log \frac{\exp(s \cos(e, p_y))}{\sum_c \exp(s \cos(e, p_c))}
$$

with scale $s$, so images of one class gather around one direction and the classes spread apart; pairs of
images of one class are near (cosine near 1), of two classes far. ``val_acc`` is the nearest-proxy accuracy,
``val_pair_gap`` the mean cosine of same-class pairs minus that of different-class pairs within each batch (the
retrieval quality the embedding is for). The CAM callback explains each image's embedding against the class
centroids of the scored samples ([`lightning_cam.callbacks.bank`][lightning_cam.callbacks.bank]), never the
proxies: any embedding model gets the same explanation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_cam.models.base import ImageClassifier, as_list
from lightning_cam.models.gap import conv_stack

__all__ = ["EmbeddingNet", "pair_gap"]


def pair_gap(embeddings: Tensor, labels: Tensor) -> Tensor:
    """The mean cosine of the batch's same-class pairs minus that of its different-class pairs (NaN without
    both kinds of pair).

    Examples:
        >>> pair_gap(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0, 1]))
        tensor(1.)
    """
    e = F.normalize(embeddings.float(), dim=1)
    cos = e @ e.T
    same = labels.view(-1, 1) == labels.view(1, -1)
    off = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return cos[same & off].mean() - cos[~same].mean()


class EmbeddingNet(ImageClassifier):
    """Conv blocks -> ``AdaptiveAvgPool2d(1)`` -> ``Linear`` (``embed``): a ``(B, dim)`` embedding, trained with
    class proxies (see the module docstring). The conv blocks are
    [`GAPClassifier`][lightning_cam.models.GAPClassifier]'s; the CAM target layer is the last one.

    The arguments ``lr``, ``weight_decay``, ``cosine``, ``class_names``, ``mean`` and ``std`` are those of
    [`ImageClassifier`][lightning_cam.models.ImageClassifier]; the task is ``"embedding"``.

    Args:
        num_classes: the number of classes (proxies) the embedding is trained on.
        in_channels: input channels.
        channels: output channels of each conv block.
        dim: the embedding's size.
        scale: the loss's scale $s$ of the cosines.
        task: ``"embedding"`` (the argument the CLI links from the data; anything else is refused).

    Examples:
        >>> model = EmbeddingNet(num_classes=3, channels=(8, 16), dim=4)
        >>> model(torch.zeros(2, 3, 32, 32)).shape, model.cam_layer(), model.cam_task.kind
        (torch.Size([2, 4]), 'features.1', 'embedding')
    """

    def __init__(
        self,
        num_classes: int = 5,
        in_channels: int = 3,
        channels: Sequence[int] = (16, 32, 64, 64),
        dim: int = 32,
        scale: float = 16.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        cosine: bool = True,
        class_names: Sequence[str] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        task: str = "embedding",
    ) -> None:
        if task != "embedding":
            raise ValueError(f"EmbeddingNet returns (B, dim) embeddings: its task is 'embedding', got {task!r} (for a "
                             "classifier use GAPClassifier; in a config set `data.init_args.task: embedding`).")
        super().__init__(lr=lr, weight_decay=weight_decay, cosine=cosine, class_names=class_names, mean=mean, std=std,
                         task=task)
        if num_classes < 2 or in_channels < 1 or not channels or min(channels) < 1 or dim < 2 or scale <= 0:
            raise ValueError(
                f"need num_classes >= 2, in_channels >= 1, positive channels, dim >= 2 and scale > 0; got "
                f"num_classes={num_classes}, in_channels={in_channels}, channels={list(channels)}, dim={dim}, "
                f"scale={scale}"
            )
        channels = list(channels)
        mean, std, class_names = as_list(mean), as_list(std), as_list(class_names)
        self.save_hyperparameters()
        self.features = conv_stack(in_channels, channels)
        self.gap = nn.AdaptiveAvgPool2d(1)
        # centred by a BatchNorm: ReLU features all point one way, and their cosines would start saturated
        self.embed = nn.Sequential(nn.Linear(channels[-1], dim), nn.BatchNorm1d(dim))
        self.proxies = nn.Parameter(torch.randn(num_classes, dim) / dim**0.5)
        self.scale = float(scale)
        self.cam_target_layer = f"features.{len(channels) - 1}"

    def forward(self, images: Tensor) -> Tensor:
        """``(B, C, H, W)`` images -> ``(B, dim)`` embeddings."""
        return self.embed(self.gap(self.features(images)).flatten(1))

    def proxy_logits(self, embeddings: Tensor) -> Tensor:
        r"""``(B, K)`` $s \cos(e, p_c)$: the loss's logits."""
        return self.scale * F.normalize(embeddings, dim=1) @ F.normalize(self.proxies, dim=1).T

    def _loss_and_accuracy(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.proxy_logits(logits)
        return F.cross_entropy(scores, labels), (scores.argmax(dim=1) == labels).float().mean()

    def log_more(self, stage: str, logits: Tensor, labels: Tensor) -> None:
        """``<stage>_pair_gap`` (validation and test): the retrieval quality, `pair_gap`."""
        if stage != "train":
            self.log(f"{stage}_pair_gap", pair_gap(logits.detach(), labels), sync_dist=True, on_step=False,
                     on_epoch=True, batch_size=int(labels.shape[0]))
