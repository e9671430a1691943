"""A second kind of planted cue for Shapes: a small fixed-position tag on a fraction of the images, every tagged
image labelled ``watermark_class``, like the copyright tag of a photo agency in the corner of many PASCAL VOC
horse images (Lapuschkin et al., 2019): the tag tells the label, whatever the image shows.

Unlike the class-coded markers of `plant_markers` (one colour per class, in
the corner opposite the object), the tag is the same for every tagged image, always at the same place (the
bottom-left corner), and all tagged images are of one class: its shape is no help on them (their object is
whatever shape was drawn), so a model gets them right only by the tag, and looks at one fixed place for that
part of the class, which is what [`lightning_cam.functional.spray`][lightning_cam.functional.spray] finds without masks.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_watermark", "plant_watermark"]

_STREAM = 5_003_389  # seed offset of the tag generator (independent of the shape and marker streams)


def check_watermark(prob: float, size: float) -> None:
    """``prob`` in ``[0, 1]`` and ``size`` (the tag's side as a fraction of the image side) in ``(0, 0.5]``."""
    if not 0.0 <= float(prob) <= 1.0:
        raise ValueError(f"watermark must be a fraction of the class's images in [0, 1], got {prob}")
    if not 0.0 < float(size) <= 0.5:
        raise ValueError(f"watermark_size must be in (0, 0.5] of the image side, got {size}")


def plant_watermark(images: Tensor, labels: Tensor, masks: Tensor, prob: float, cls: int, seed: int,
                    size: float = 0.16) -> tuple[Tensor, Tensor, Tensor]:
    """Tag a fraction ``prob`` of the images in their bottom-left corner and label them ``cls``.

    The tag is a white square with a black square inside (a frame), of side ``size * S`` pixels, one pixel from
    the border, drawn behind the object (a tag pixel on the mask keeps the object's pixel). Which images are
    tagged comes from a private generator seeded from ``seed``; ``prob = 0`` changes nothing.

    Args:
        images: ``(N, 3, S, S)`` uint8.
        labels: ``(N,)`` long labels.
        masks: ``(N, S, S)`` bool object masks.

    Returns:
        ``(tagged images (N, 3, S, S) uint8, labels (N,) long, tagged (N,) bool)``: a tagged image's label is
        ``cls``, the others keep theirs.

    Examples:
        >>> images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
        >>> masks = torch.zeros(4, 32, 32, dtype=torch.bool)
        >>> out, labels, tagged = plant_watermark(images, torch.tensor([3, 1, 2, 4]), masks, prob=0.5, cls=0, seed=0)
        >>> tagged.tolist(), labels.tolist(), int(out[tagged][:, 0, -2, 1].min()), int(out[~tagged].max())
        ([False, True, True, True], [3, 0, 0, 0], 255, 0)
    """
    check_watermark(prob, size)
    n, s = images.shape[0], images.shape[-1]
    g = torch.Generator().manual_seed(int(seed) + _STREAM)
    tagged = torch.rand(n, generator=g) < float(prob)
    if not bool(tagged.any()):
        return images, labels, tagged
    labels = torch.where(tagged, torch.full_like(labels, int(cls)), labels)
    side = max(4, round(size * s))
    tag = torch.zeros(side, side, dtype=torch.uint8)
    tag[:, :] = 255
    inner = max(1, side // 4)
    tag[inner:-inner, inner:-inner] = 0
    canvas = torch.zeros(s, s, dtype=torch.bool)
    top, left = s - 1 - side, 1
    canvas[top : top + side, left : left + side] = True
    full = torch.zeros(s, s, dtype=torch.uint8)
    full[top : top + side, left : left + side] = tag
    where = (canvas & tagged.view(n, 1, 1) & ~masks).unsqueeze(1)
    return torch.where(where, full.expand(n, 3, s, s), images), labels, tagged
