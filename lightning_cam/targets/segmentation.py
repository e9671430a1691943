r"""``segmentation``: a semantic segmenter, ``(B, K, H, W)`` logits (a softmax over classes at every pixel).

A pair is (image, class $c$); its region $R$ is the set of pixels predicted as $c$ on the original image, its
score $y^c = \sum_R z_c$ (pytorch-grad-cam's ``SemanticSegmentationTarget``), its probability the mean
$\mathrm{softmax}_c$ over $R$, read again on every changed image with the same $R$
(`lightning_cam.functional.segmentation`); its ground truth the label mask of $c$.

| targets | pairs |
|---|---|
| ``None`` | each class predicted on ``min_share`` of the pixels or more, largest first, ``max_labels`` at most |
| ``(B, H, W)`` label masks | each class of the label on ``min_share`` of the pixels or more, in class order |
| ``(B, K)`` multi-hot rows | each positive class |
| ``(B,)`` class indices, an int | one pair per image |

``ignore_index`` (e.g. the background) is never a pair's class.

A **binary segmenter** with one output channel, ``(B, 1, H, W)`` (a sigmoid per pixel, ``BCEWithLogitsLoss``), is
read as two classes: 1 the foreground (the pixels with $z > 0$), 0 the rest; a pair's score is $\sum_R z$ for class
1 and $\sum_R -z$ for class 0 (the binary classifier's rule, pixel by pixel), its probability the mean $\sigma(\pm
z)$ over $R$. Set ``ignore_index=0`` to explain the foreground alone. The label masks are also the ground truth of
the localization metrics: a segmentation batch ``(images, masks)`` scores the pointing game, energy pointing
game and IoU without any extra annotation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lightning_cam.functional.localization import class_ground_truth
from lightning_cam.functional.pairs import select_pairs
from lightning_cam.functional.segmentation import class_region, class_shares, region_probability, region_score
from lightning_cam.targets.base import Pairs, TargetKind, register_target
from lightning_cam.targets.task import NO_CLASS
from lightning_cam.utilities.checks import as_multi_hot, check_targets

__all__ = ["SegmentationTarget"]


@register_target
class SegmentationTarget(TargetKind):
    """A softmax over classes at every pixel; one pair per (image, class).

    Examples:
        >>> from lightning_cam.targets.task import Task
        >>> kind = Task("segmentation", ignore_index=0).target
        >>> z = torch.zeros(2, 3, 2, 2)
        >>> z[0, 1, 0], z[0, 2, 1], z[1, 2] = 5.0, 5.0, 5.0  # image 0: class 1 on top, class 2 below; image 1: class 2
        >>> samples, classes, k = kind.pairs(None, lambda: z)
        >>> samples.tolist(), classes.tolist(), k
        ([0, 0, 1], [1, 2, 2], 3)
        >>> kind.score(z, torch.tensor([1, 2])).tolist()
        [10.0, 20.0]
    """

    name = "segmentation"
    several = True
    has_reference = True

    def check_output(self, logits: Tensor) -> Tensor:
        if logits.ndim != 4:
            raise ValueError(
                f"task='segmentation' explains (B, num_classes, H, W) per-pixel class scores (a softmax over classes, "
                f"or one channel with a sigmoid), got {tuple(logits.shape)}. A torchvision segmentation model "
                "returns {'out': ...}, read automatically; for another layout set `output=` (on CAMMixin: "
                "`cam_output`)."
            )
        return logits

    @staticmethod
    def _classes(logits: Tensor) -> Tensor:
        """``(B, K, H, W)`` scores of every class: one channel ``z`` is the two classes ``(-z, z)``."""
        return torch.cat([-logits, logits], dim=1) if int(logits.shape[1]) == 1 else logits

    @staticmethod
    def _softmax_logits(logits: Tensor) -> Tensor:
        """What the softmax reads: one channel ``z`` as ``(-z/2, z/2)``, whose softmax is ``(σ(-z), σ(z))``."""
        return torch.cat([-logits, logits], dim=1) * 0.5 if int(logits.shape[1]) == 1 else logits

    def num_classes(self, logits: Tensor) -> int:
        return int(self._classes(logits).shape[1])

    def check_targets(self, targets: object, batch: int, device: torch.device) -> Tensor | None:
        if isinstance(targets, Tensor) and targets.ndim == 3:  # label masks: class indices per pixel
            if int(targets.shape[0]) != batch or targets.is_floating_point() or targets.dtype == torch.bool:
                raise ValueError(
                    f"segmentation label masks must be (B={batch}, H, W) integer class indices, got "
                    f"{tuple(targets.shape)} {targets.dtype}; for one class per image pass (B,) class indices."
                )
            return targets.to(device)
        return check_targets(targets, batch, device, multi_hot=True)

    def pairs(self, targets: Tensor | None, logits: Callable[[], Tensor]) -> Pairs | None:
        if targets is not None and targets.ndim == 1:
            return None  # one class per image
        if targets is None:
            z = self._classes(logits().detach())
            shares = class_shares(z, self.task.ignore_index)
            samples, classes = select_pairs(shares >= self.task.min_share, shares, self.task.max_labels)
            return samples, classes, int(z.shape[1])
        if targets.ndim == 3:
            present = self._label_shares(targets) >= self.task.min_share
            samples, classes = select_pairs(present, None, self.task.max_labels)
            return samples, classes, None
        samples, classes = select_pairs(self._drop_ignored(as_multi_hot(targets)), None, self.task.max_labels)
        return samples, classes, int(targets.shape[1])

    def _label_shares(self, masks: Tensor) -> Tensor:
        """``(B, K')`` the share of each label class's pixels, ``K'`` the largest label + 1 (``ignore_index`` and
        negative labels: none)."""
        flat = masks.long().flatten(1)
        valid = flat >= 0
        if self.task.ignore_index is not None:
            valid &= flat != self.task.ignore_index
        k = int(flat.max()) + 1 if flat.numel() else 1  # one host read per labelled batch, to size the counts
        counts = torch.zeros(flat.shape[0], max(k, 1), device=flat.device, dtype=torch.float32)
        counts.scatter_add_(1, flat.clamp(min=0), valid.float())
        return counts / float(max(flat.shape[1], 1))

    def _drop_ignored(self, positive: Tensor) -> Tensor:
        if self.task.ignore_index is not None and 0 <= self.task.ignore_index < positive.shape[1]:
            positive = positive.clone()
            positive[:, self.task.ignore_index] = False
        return positive

    def labels(self, labels: Tensor) -> Tensor:
        """A binary segmenter's masks as label masks: ``(B, 1, H, W)`` becomes ``(B, H, W)``, and whole-valued float
        or bool masks become class indices (reading them back to decide: a host sync per batch of float labels)."""
        if labels.ndim == 4 and int(labels.shape[1]) == 1:
            labels = labels[:, 0]
        if labels.ndim == 3 and (labels.is_floating_point() or labels.dtype == torch.bool):
            if labels.dtype == torch.bool or bool((labels == labels.round()).all()):
                return labels.long()
        return labels

    def label_masks(self, labels: Tensor | None) -> Tensor | None:
        """``(B, H, W)`` label masks are the batch's ground truth too (the localization metrics read them)."""
        return labels if labels is not None and labels.ndim == 3 else None

    def predicted(self, logits: Tensor) -> Tensor:
        """The class with the largest predicted area (never ``ignore_index`` unless it is all the model predicts)."""
        shares = class_shares(self._classes(logits), self.task.ignore_index)
        return shares.argmax(dim=1)

    def reference(self, logits: Tensor, targets: Tensor) -> Tensor:
        return class_region(self._classes(logits), targets)

    undefined = ("the model predicts their class nowhere in the image, so the pair has no region: no score, no "
                 "probability, and a map of it would mean nothing (explain the predicted classes: target='pred')")

    def defined(self, logits: Tensor, targets: Tensor, reference: Tensor) -> Tensor:
        """A pair has a score where its region is not empty."""
        return reference.flatten(1).any(dim=1)

    def region(self, logits: Tensor, targets: Tensor) -> Tensor:
        """The pixels predicted as each pair's class: outlined on the grids."""
        return class_region(self._classes(logits), targets)

    def score(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        classes = self._classes(logits)
        region = class_region(classes, targets) if reference is None else reference
        return region_score(classes, targets, region)

    def probability(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        region = class_region(self._classes(logits), targets) if reference is None else reference
        return region_probability(self._softmax_logits(logits), targets, region)

    def predicted_for(self, logits: Tensor, targets: Tensor) -> Tensor:
        shares = class_shares(self._classes(logits)).gather(1, targets.to(logits.device).long().view(-1, 1)).squeeze(1)
        hit = shares >= self.task.min_share
        return torch.where(hit, targets.long(), torch.full_like(targets.long(), NO_CLASS))

    def ground_truth(self, masks: Tensor | None, boxes: Tensor | None, targets: Tensor, size: tuple[int, int]
                     ) -> Tensor | None:
        """The label mask of each pair's class, from ``(B, H, W)`` integer label masks (other ground truth as the
        classifiers read it)."""
        if masks is not None and masks.ndim == 3 and not masks.is_floating_point() and masks.dtype != torch.bool:
            if tuple(masks.shape[1:]) == size and masks.shape[0] == targets.shape[0]:
                return masks.to(targets.device).long() == targets.long().view(-1, 1, 1)
        return class_ground_truth(masks, boxes, targets, size)

    def head_weights(self, fc_weight: Tensor, targets: Tensor) -> Tensor:
        raise ValueError(
            "CAM reads the linear head after global average pooling of a classifier; a segmentation model has "
            "none. Use a gradient method (gradcam, hirescam, layercam, ...) or eigencam."
        )
