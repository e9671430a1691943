"""Painting Shapes images: the object masks, the textured backgrounds with distractors, the objects' paint and
the boxes of masks. Shared by the single-label dataset (`lightning_cam.data.shapes`) and the multi-label one
(`lightning_cam.data.shapes_multilabel`); every draw comes from the caller's private generator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SHAPES_CLASSES", "background", "finish", "generate", "masks_to_boxes", "object_paint", "place_shapes",
    "shape_masks",
]

#: The class names, in label order.
SHAPES_CLASSES: tuple[str, ...] = ("square", "circle", "triangle", "cross", "diamond")

_CHUNK = 64  # samples generated per step
_CROSS_ARM = 0.34  # half-width of a cross arm, as a fraction of the half-size


def shape_masks(u: Tensor, v: Tensor, kind: int) -> Tensor:
    """Boolean mask of shape ``kind`` in normalised coordinates.

    ``u = (x - cx) / r`` and ``v = (y - cy) / r`` are pixel offsets from the object's centre divided by
    its half-size ``r``, any shape ``(..., H, W)``. The shapes (all fit in the square ``|u|, |v| <= 1``):

    * ``0`` square: ``max(|u|, |v|) <= 1``
    * ``1`` circle: ``u² + v² <= 1``
    * ``2`` triangle (apex up): ``-1 <= v <= 1`` and ``|u| <= (v + 1) / 2``
    * ``3`` cross: ``min(|u|, |v|) <= 0.34`` and ``max(|u|, |v|) <= 1``
    * ``4`` diamond: ``|u| + |v| <= 1``

    Examples:
        >>> u = torch.tensor([[0.0, 0.9]]); v = torch.tensor([[0.0, 0.9]])
        >>> shape_masks(u, v, 0), shape_masks(u, v, 1)
        (tensor([[True, True]]), tensor([[ True, False]]))
    """
    au, av = u.abs(), v.abs()
    if kind == 0:
        return torch.maximum(au, av) <= 1.0
    if kind == 1:
        return u * u + v * v <= 1.0
    if kind == 2:
        return (v >= -1.0) & (v <= 1.0) & (au <= (v + 1.0) / 2.0)
    if kind == 3:
        return (torch.minimum(au, av) <= _CROSS_ARM) & (torch.maximum(au, av) <= 1.0)
    if kind == 4:
        return au + av <= 1.0
    raise ValueError(f"unknown shape kind {kind}; expected 0..{len(SHAPES_CLASSES) - 1}")


def _smooth_noise(n: int, channels: int, size: int, cells: int, g: torch.Generator) -> Tensor:
    """Low-frequency texture: ``(n, channels, cells, cells)`` uniform noise, bicubic-upsampled."""
    coarse = torch.rand(n, channels, cells, cells, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


def generate(
    num_samples: int,
    image_size: int,
    num_classes: int,
    seed: int,
    min_scale: float,
    max_scale: float,
    noise_std: float,
    max_distractors: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Generate ``(images uint8 (N,3,S,S), labels long (N,), masks bool (N,S,S), boxes float (N,4))``.

    Works in fixed-size chunks drawn in order from one private generator (cache-friendly; the
    chunk size is a constant, so the output depends only on the arguments).
    """
    g = torch.Generator().manual_seed(seed)
    parts = [
        _generate_chunk(min(_CHUNK, num_samples - start), image_size, num_classes, g,
                        min_scale, max_scale, noise_std, max_distractors)
        for start in range(0, num_samples, _CHUNK)
    ]
    images, labels, masks = (torch.cat(p) for p in zip(*parts))
    return images, labels, masks, masks_to_boxes(masks)


def _generate_chunk(
    n: int,
    s: int,
    num_classes: int,
    g: torch.Generator,
    min_scale: float,
    max_scale: float,
    noise_std: float,
    max_distractors: int,
) -> tuple[Tensor, Tensor, Tensor]:
    labels = torch.randint(0, num_classes, (n,), generator=g)
    images, base = background(n, s, g, max_distractors)

    # The object: half-size r, centre kept at least r from the border so the object is whole.
    r = (min_scale + (max_scale - min_scale) * torch.rand(n, generator=g)) * s / 2
    cx = r + torch.rand(n, generator=g) * (s - 2 * r)
    cy = r + torch.rand(n, generator=g) * (s - 2 * r)
    masks = place_shapes(labels, r, cx, cy, s, num_classes)
    images = torch.where(masks.unsqueeze(1), object_paint(base, s, g), images)
    return finish(images, noise_std, g), labels, masks


def background(n: int, s: int, g: torch.Generator, max_distractors: int) -> tuple[Tensor, Tensor]:
    """``(images (n, 3, s, s) float, base colours (n, 3, 1, 1))``: a tinted base colour, a low-frequency
    texture and up to ``max_distractors`` class-neutral soft Gaussian blobs of random colour."""
    base = 0.25 + 0.5 * torch.rand(n, 3, 1, 1, generator=g)
    texture = _smooth_noise(n, 3, s, 5, g) - 0.5
    images = base + 0.35 * texture
    ys, xs = _grid(s)
    if max_distractors > 0:
        num_blobs = torch.randint(0, max_distractors + 1, (n,), generator=g)
        for j in range(max_distractors):
            present = (num_blobs > j).view(n, 1, 1, 1).float()
            c = torch.rand(n, 2, generator=g) * s
            sigma = (0.05 + 0.07 * torch.rand(n, generator=g)) * s
            colour = torch.rand(n, 3, 1, 1, generator=g)
            d2 = (xs - c[:, 0].view(n, 1, 1)) ** 2 + (ys - c[:, 1].view(n, 1, 1)) ** 2
            alpha = torch.exp(-d2 / (2 * sigma.view(n, 1, 1) ** 2)).unsqueeze(1) * 0.8 * present
            images = images * (1 - alpha) + colour * alpha
    return images, base


def _grid(s: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``(ys (1, s, 1), xs (1, 1, s))``."""
    ys = torch.arange(s, dtype=torch.float32).view(1, s, 1) + 0.5
    xs = torch.arange(s, dtype=torch.float32).view(1, 1, s) + 0.5
    return ys, xs


def place_shapes(kinds: Tensor, r: Tensor, cx: Tensor, cy: Tensor, s: int, num_classes: int) -> Tensor:
    """``(n, s, s)`` bool masks: shape ``kinds[i]`` of half-size ``r[i]`` centred at ``(cx[i], cy[i])``."""
    n = kinds.shape[0]
    ys, xs = _grid(s)
    u = (xs - cx.view(n, 1, 1)) / r.view(n, 1, 1)
    v = (ys - cy.view(n, 1, 1)) / r.view(n, 1, 1)
    masks = torch.zeros(n, s, s, dtype=torch.bool)
    for k in range(num_classes):
        idx = (kinds == k).nonzero().squeeze(1)
        if idx.numel():
            masks[idx] = shape_masks(u[idx], v[idx], k % len(SHAPES_CLASSES))
    return masks


def object_paint(base: Tensor, s: int, g: torch.Generator) -> Tensor:
    """``(n, 3, s, s)`` object colour: the background base shifted by a clear contrast, same sign on every
    channel, plus a little per-channel hue jitter; a faint texture keeps the object from being flat."""
    n = base.shape[0]
    sign = torch.where(base.mean(1, keepdim=True) > 0.5, -1.0, 1.0)
    contrast = 0.3 + 0.2 * torch.rand(n, 1, 1, 1, generator=g)
    hue = 0.15 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    colour = (base + sign * contrast + hue).clamp(0.0, 1.0)
    return colour + 0.1 * (_smooth_noise(n, 1, s, 4, g) - 0.5)


def finish(images: Tensor, noise_std: float, g: torch.Generator) -> Tensor:
    """Per-pixel Gaussian noise, then ``uint8`` in ``[0, 255]``."""
    images = images + noise_std * torch.randn(images.shape, generator=g)
    return (images.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def masks_to_boxes(masks: Tensor) -> Tensor:
    """Tight half-open boxes ``(x0, y0, x1, y1)`` of boolean masks ``(N, H, W)`` -> ``(N, 4)`` float.

    Pixel ``(row i, column j)`` lies in the box iff ``x0 <= j < x1`` and ``y0 <= i < y1``; the box
    of an empty mask is all zeros.

    Examples:
        >>> m = torch.zeros(1, 4, 5, dtype=torch.bool); m[0, 1:3, 2:4] = True
        >>> masks_to_boxes(m)
        tensor([[2., 1., 4., 3.]])
    """
    n, h, w = masks.shape
    cols, rows = masks.any(1), masks.any(2)  # (N, W), (N, H)
    x0 = cols.float().argmax(1)
    x1 = w - cols.flip(1).float().argmax(1)
    y0 = rows.float().argmax(1)
    y1 = h - rows.flip(1).float().argmax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return boxes * masks.flatten(1).any(1, keepdim=True)
