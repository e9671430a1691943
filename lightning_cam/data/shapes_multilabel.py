"""Multi-label Shapes: two or three objects of distinct classes per image, a mask per class and class boxes.

The image is cut into four cells (a 2 x 2 grid); each object takes a cell of its own, drawn at random
without repetition, so objects never overlap and every mask is exactly what is visible of its shape. Each
object's side is ``2 * scale`` of its cell, ``scale`` in ``[min_scale, max_scale]`` (capped at 95 % of the
cell), the background and the object colours as in `lightning_cam.data.shapes`. Generation draws only
from a private generator: the same arguments give bit-identical tensors.

Examples:
    >>> images, labels, masks, boxes = generate_multilabel(4, 32, 5, seed=0)
    >>> images.shape, labels.shape, masks.shape, boxes.shape
    (torch.Size([4, 3, 32, 32]), torch.Size([4, 5]), torch.Size([4, 5, 32, 32]), torch.Size([4, 3, 5]))
    >>> bool((labels.sum(1) >= 2).all()), bool((masks.flatten(2).any(2) == labels).all())
    (True, True)
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_cam.data.shapes_paint import background, finish, masks_to_boxes, object_paint, place_shapes

__all__ = ["MAX_OBJECTS", "generate_multilabel"]

#: most objects in one image (each in its own cell of the 2 x 2 grid)
MAX_OBJECTS = 3
_CHUNK = 64


def generate_multilabel(
    num_samples: int,
    image_size: int,
    num_classes: int,
    seed: int,
    min_scale: float = 0.3,
    max_scale: float = 0.6,
    noise_std: float = 0.08,
    max_distractors: int = 2,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(images uint8 (N, 3, S, S), labels bool (N, K), masks bool (N, K, S, S), boxes float (N, 3, 5))``.

    ``labels[i, k]``: class ``k`` is in image ``i``; ``masks[i, k]``: its pixels; ``boxes[i, j]`` the tight
    half-open box ``(x0, y0, x1, y1, class)`` of object ``j``, class ``-1`` (and a zero box) when the image
    has fewer objects.
    """
    g = torch.Generator().manual_seed(seed)
    parts = [_chunk(min(_CHUNK, num_samples - start), image_size, num_classes, g, min_scale, max_scale, noise_std,
                    max_distractors) for start in range(0, num_samples, _CHUNK)]
    images, labels, masks, boxes = (torch.cat(p) for p in zip(*parts))
    return images, labels, masks, boxes


def _chunk(n: int, s: int, num_classes: int, g: torch.Generator, min_scale: float, max_scale: float,
           noise_std: float, max_distractors: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    top = min(MAX_OBJECTS, num_classes)
    count = torch.randint(2, top + 1, (n,), generator=g)
    classes = torch.rand(n, num_classes, generator=g).argsort(dim=1)[:, :top]  # distinct classes per image
    cells = torch.rand(n, 4, generator=g).argsort(dim=1)[:, :top]  # distinct cells per image
    images, base = background(n, s, g, max_distractors)
    half = s / 2
    rows = torch.arange(n)
    labels = torch.zeros(n, num_classes, dtype=torch.bool)
    masks = torch.zeros(n, num_classes, s, s, dtype=torch.bool)
    boxes = torch.zeros(n, MAX_OBJECTS, 5)
    boxes[:, :, 4] = -1.0
    for j in range(top):
        present = count > j
        kind = classes[:, j]
        scale = (min_scale + (max_scale - min_scale) * torch.rand(n, generator=g)).clamp(max=0.475)
        r = 2 * scale * half / 2
        x0, y0 = (cells[:, j] % 2).float() * half, (cells[:, j] // 2).float() * half
        cx = x0 + r + torch.rand(n, generator=g) * (half - 2 * r)
        cy = y0 + r + torch.rand(n, generator=g) * (half - 2 * r)
        mask = place_shapes(kind, r, cx, cy, s, num_classes) & present.view(n, 1, 1)
        images = torch.where(mask.unsqueeze(1), object_paint(base, s, g), images)
        masks[rows, kind] |= mask
        labels[rows, kind] |= present
        boxes[:, j, :4] = masks_to_boxes(mask)
        boxes[:, j, 4] = torch.where(present, kind.float(), torch.full_like(kind, -1).float())
    return finish(images, noise_std, g), labels, masks, boxes
