"""Pure per-sample localization scores of a map against a ground-truth object mask.

All functions take ``maps`` ``(B, H, W)`` (any non-negative saliency; the engine's maps are in ``[0, 1]``)
and ``masks`` ``(B, H, W)`` (bool, or float where ``> 0.5`` is the object) and return ``(B,)`` float32.
An empty mask (no object) scores 0 in every metric. A NaN in a map gives NaN for that sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cam.functional.finite import finite_rows
from lightning_cam.utilities.checks import check_boxes, check_maps, check_masks, check_threshold, check_tolerance

__all__ = ["boxes_to_masks", "class_ground_truth", "energy_pointing_game", "iou", "pointing_game"]


def _binary(masks: Tensor) -> Tensor:
    return masks if masks.dtype == torch.bool else masks > 0.5


def _check(maps: Tensor, masks: Tensor) -> Tensor:
    return check_masks(masks, tuple(check_maps(maps).shape))


def _nan_rows(maps: Tensor, values: Tensor) -> Tensor:
    bad = ~finite_rows(maps)
    return torch.where(bad, torch.full_like(values, float("nan")), values)


def boxes_to_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    r"""Rasterise ``(x0, y0, x1, y1)`` pixel boxes into ``(B, H, W)`` bool masks.

    Pixel ``(i, j)`` (row, column) is inside when its centre ``(j + 0.5, i + 0.5)`` lies in
    ``[x0, x1] × [y0, y1]``: a box covering whole pixels ``0..2`` is ``(0, 0, 3, 3)``.

    Examples:
        >>> boxes_to_masks(torch.tensor([[1.0, 0.0, 3.0, 1.0]]), 2, 4).int()
        tensor([[[0, 1, 1, 0],
                 [0, 0, 0, 0]]], dtype=torch.int32)
    """
    check_boxes(boxes)
    b = boxes.float()
    xs = torch.arange(width, device=boxes.device, dtype=torch.float32) + 0.5
    ys = torch.arange(height, device=boxes.device, dtype=torch.float32) + 0.5
    in_x = (xs[None, :] >= b[:, 0:1]) & (xs[None, :] <= b[:, 2:3])  # (B, W)
    in_y = (ys[None, :] >= b[:, 1:2]) & (ys[None, :] <= b[:, 3:4])  # (B, H)
    return in_y[:, :, None] & in_x[:, None, :]


def class_ground_truth(masks: Tensor | None, boxes: Tensor | None, targets: Tensor, size: tuple[int, int]
                       ) -> Tensor | None:
    """``(B, H, W)`` bool: the object of each sample's target class, from ``masks`` (preferred) or ``boxes``.

    | ground truth | the object of sample ``b`` |
    |---|---|
    | masks ``(B, H, W)`` | ``masks[b]`` (one object per image; ``(B, 1, H, W)`` too) |
    | masks ``(B, K, H, W)`` | ``masks[b, targets[b]]`` (a mask per class, e.g. multi-label) |
    | boxes ``(B, 4)`` | the box ``(x0, y0, x1, y1)``, rasterised (`boxes_to_masks`) |
    | boxes ``(B, N, 5)`` | the union of the rows ``(x0, y0, x1, y1, class)`` of class ``targets[b]`` (pad: ``-1``) |

    A class without an object in the image gets an empty mask (which scores 0, see the module docstring).
    ``None`` without ground truth.

    Examples:
        >>> per_class = torch.zeros(1, 3, 2, 2, dtype=torch.bool)
        >>> per_class[0, 2, 0, 0] = True
        >>> class_ground_truth(per_class, None, torch.tensor([2]), (2, 2)).int().tolist()
        [[[1, 0], [0, 0]]]
        >>> rows = torch.tensor([[[0.0, 0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, 2.0, 1.0], [0.0, 0.0, 2.0, 2.0, -1.0]]])
        >>> class_ground_truth(None, rows, torch.tensor([1]), (2, 2)).int().tolist()
        [[[1, 0], [0, 1]]]
    """
    b, (h, w) = int(targets.shape[0]), size
    if masks is not None:
        masks = masks.to(targets.device)
        if masks.ndim == 4 and masks.shape[1] > 1 and masks.shape[0] == b and tuple(masks.shape[2:]) == (h, w):
            masks = masks[torch.arange(b, device=masks.device), targets.long()]
        return _binary(check_masks(masks, (b, h, w)))
    if boxes is None:
        return None
    boxes = boxes.to(targets.device)
    if boxes.ndim == 3 and boxes.shape[0] == b and boxes.shape[2] == 5:
        n = int(boxes.shape[1])
        rows = boxes_to_masks(boxes[..., :4].reshape(b * n, 4), h, w).view(b, n, h, w)
        mine = boxes[..., 4].round().long() == targets.long().view(-1, 1)  # (B, N)
        return (rows & mine[:, :, None, None]).any(dim=1)
    return boxes_to_masks(check_boxes(boxes, b), h, w)


def pointing_game(maps: Tensor, masks: Tensor, tolerance: int = 0) -> Tensor:
    r"""Pointing Game (Zhang et al., ECCV 2016): 1 where the map's maximum falls on the object, else 0.

    $$
    \mathrm{hit} = \mathrm{obj}\big(\arg\max_{ij} \mathrm{map}_{ij}\big)
    $$

    The point is the first maximum in raster order. ``tolerance`` (pixels) grows the object by a square
    of that radius first (the paper uses 15 px at 224 px). A constant map (e.g. all zeros) has no maximum
    to point with and scores 0.

    Examples:
        >>> maps = torch.tensor([[[0.1, 0.9], [0.2, 0.3]], [[0.5, 0.5], [0.5, 0.5]]])
        >>> masks = torch.tensor([[[False, True], [False, False]], [[True, True], [True, True]]])
        >>> pointing_game(maps, masks)
        tensor([1., 0.])
    """
    masks = _check(maps, masks)
    tolerance = check_tolerance(tolerance)
    obj = _binary(masks)
    if tolerance > 0:
        k = 2 * tolerance + 1
        obj = F.max_pool2d(obj.float().unsqueeze(1), k, stride=1, padding=tolerance).squeeze(1) > 0.5
    flat = maps.flatten(1).float()
    idx = flat.nan_to_num(nan=0.0).argmax(dim=1, keepdim=True)
    hit = obj.flatten(1).gather(1, idx).squeeze(1).float()
    constant = flat.amax(dim=1) <= flat.amin(dim=1)
    hit = torch.where(constant, torch.zeros_like(hit), hit)
    return _nan_rows(maps, hit)


def energy_pointing_game(maps: Tensor, masks: Tensor) -> Tensor:
    r"""Energy-based Pointing Game (Wang et al., Score-CAM, CVPRW 2020): the share of the map's mass
    inside the object.

    $$
    \mathrm{EPG} = \frac{\sum_{ij \in \mathrm{obj}} \mathrm{map}_{ij}}{\sum_{ij} \mathrm{map}_{ij}}
    $$

    An all-zero map has no mass and scores 0.

    Examples:
        >>> maps = torch.tensor([[[1.0, 3.0], [0.0, 0.0]]])
        >>> energy_pointing_game(maps, torch.tensor([[[False, True], [False, False]]]))
        tensor([0.7500])
    """
    masks = _check(maps, masks)
    m = maps.flatten(1).float()
    obj = _binary(masks).flatten(1)
    total = m.sum(dim=1)
    inside = (m * obj).sum(dim=1)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    value = torch.where(total > 0, inside / safe, torch.zeros_like(total))
    return _nan_rows(maps, value)


def iou(maps: Tensor, masks: Tensor, threshold: float = 0.5) -> Tensor:
    r"""Intersection over union of the thresholded map ``map >= threshold`` with the object mask.

    $$
    \mathrm{IoU} = \frac{|M_t \cap \mathrm{obj}|}{|M_t \cup \mathrm{obj}|}, \quad M_t = \{\mathrm{map} \ge t\}
    $$

    ``threshold`` must lie in ``(0, 1)`` (maps are in ``[0, 1]``). An empty union scores 0.

    Examples:
        >>> maps = torch.tensor([[[0.9, 0.6], [0.1, 0.0]]])
        >>> iou(maps, torch.tensor([[[True, False], [True, False]]]))
        tensor([0.3333])
    """
    masks = _check(maps, masks)
    threshold = check_threshold(threshold)
    pred = (maps >= threshold).flatten(1)
    obj = _binary(masks).flatten(1)
    inter = (pred & obj).sum(dim=1).float()
    union = (pred | obj).sum(dim=1).float()
    value = torch.where(union > 0, inter / union.clamp(min=1.0), torch.zeros_like(union))
    return _nan_rows(maps, value)
