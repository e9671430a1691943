r"""Quantus's localization family, per sample, batched: how a map's relevance sits on the ground-truth object.

As in `lightning_cam.functional.localization`: ``maps`` ``(B, H, W)`` (non-negative saliency), ``masks``
``(B, H, W)`` (bool, or float where ``> 0.5`` is the object), ``(B,)`` float32 values, a NaN map gives NaN. An empty
mask scores 0, as in the rest of the family (Quantus returns NaN there). Each formula is Quantus 0.6's
(``quantus.metrics.localisation``), tested against it; the relevance mass accuracy is the
`energy_pointing_game`'s formula and is not repeated here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_cam.functional.localization import _binary, _check, _nan_rows

__all__ = ["attribution_localisation", "localization_auc", "relevance_rank_accuracy", "top_k_intersection"]


def _ranked_truth(maps: Tensor, obj: Tensor) -> Tensor:
    """``(B, N)`` the object flags of each sample's pixels in the order of the map, highest first (ties: the
    order of a stable sort of the negated map, i.e. raster order)."""
    order = torch.sort(-maps.flatten(1).float().nan_to_num(nan=0.0), dim=1, stable=True).indices
    return obj.flatten(1).gather(1, order)


def relevance_rank_accuracy(maps: Tensor, masks: Tensor) -> Tensor:
    r"""Relevance Rank Accuracy (Arras et al., 2022): the share of the map's $K$ highest pixels that lie on the
    object, $K = |\mathrm{obj}|$.

    $$
    \mathrm{RRA} = \frac{|\mathrm{top}_K(\mathrm{map}) \cap \mathrm{obj}|}{K}
    $$

    Examples:
        >>> maps = torch.tensor([[[0.9, 0.1], [0.8, 0.0]]])
        >>> relevance_rank_accuracy(maps, torch.tensor([[[True, True], [False, False]]]))
        tensor([0.5000])
    """
    masks = _check(maps, masks)
    obj = _binary(masks)
    ranked = _ranked_truth(maps, obj).float()
    k = obj.flatten(1).sum(dim=1)  # (B,)
    hits = ranked.cumsum(dim=1).gather(1, (k - 1).clamp_min(0).view(-1, 1)).squeeze(1)
    value = torch.where(k > 0, hits / k.clamp_min(1).float(), torch.zeros_like(hits))
    return _nan_rows(maps, value)


def top_k_intersection(maps: Tensor, masks: Tensor, k: int = 1000, concept_influence: bool = False) -> Tensor:
    r"""Top-k Intersection (Theiner et al., 2021): the share of the map's ``k`` highest pixels on the object.

    $$
    \mathrm{TKI} = \frac{|\mathrm{top}_k(\mathrm{map}) \cap \mathrm{obj}|}{k}\ \Big(\times \frac{HW}{|\mathrm{obj}|}
    \text{ with } \texttt{concept\_influence}\Big)
    $$

    ``k`` is in pixels (Quantus's default 1000, 2 % of a 224-px image); at most ``H * W``.

    Examples:
        >>> maps = torch.tensor([[[0.9, 0.1], [0.8, 0.0]]])
        >>> top_k_intersection(maps, torch.tensor([[[True, True], [False, False]]]), k=1)
        tensor([1.])
    """
    masks = _check(maps, masks)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k_intersection: k (pixels) must be an int >= 1, got {k!r}.")
    obj = _binary(masks)
    n = obj[0].numel()
    value = _ranked_truth(maps, obj)[:, : min(k, n)].float().mean(dim=1)
    size = obj.flatten(1).sum(dim=1).float()
    if concept_influence:
        value = value * n / size.clamp_min(1.0)
    value = torch.where(size > 0, value, torch.zeros_like(value))
    return _nan_rows(maps, value)


def attribution_localisation(maps: Tensor, masks: Tensor, weighted: bool = False) -> Tensor:
    r"""Attribution Localisation (Kohlbrenner et al., 2020): the share of the positive relevance on the object.

    $$
    \mathrm{AL} = \frac{\sum_{ij \in \mathrm{obj}} \mathrm{map}^+_{ij}}{\sum_{ij} \mathrm{map}^+_{ij} + 10^{-9}}
    \ \Big(\times \frac{|\mathrm{obj}|}{HW} \text{ if weighted}\Big)
    $$

    Quantus's ``weighted`` divides by the size of ``x_batch[2:]`` (the batch from its third sample on), not of
    one image: here the object's share of the image, as the paper defines it.

    Examples:
        >>> maps = torch.tensor([[[1.0, 3.0], [0.0, 0.0]]])
        >>> attribution_localisation(maps, torch.tensor([[[False, True], [False, False]]]))
        tensor([0.7500])
    """
    masks = _check(maps, masks)
    obj = _binary(masks).flatten(1)
    m = maps.flatten(1).float().clamp_min(0)
    value = (m * obj).sum(dim=1) / (m.sum(dim=1) + 1e-9)
    size = obj.sum(dim=1).float()
    if weighted:
        value = value * size / obj.shape[1]
    value = torch.where(size > 0, value, torch.zeros_like(value))
    return _nan_rows(maps, value)


def localization_auc(maps: Tensor, masks: Tensor) -> Tensor:
    r"""AUC (Fawcett, 2006, as Quantus's ``AUC``): the area under the ROC curve of the map's values as a classifier
    of the object's pixels.

    $$
    \mathrm{AUC} = \frac{\sum_{i \in \mathrm{obj}} r_i - P(P+1)/2}{P\,N}
    $$

    with $r_i$ the (tie-averaged) rank of pixel $i$'s value among all, $P = |\mathrm{obj}|$, $N = HW - P$: the
    Mann-Whitney form of scikit-learn's ``roc_curve`` + ``auc`` (ties count one half). A mask covering the whole
    image has no negatives: NaN (skipped and counted by the metric), as in scikit-learn.

    Examples:
        >>> maps = torch.tensor([[[0.9, 0.1], [0.8, 0.0]]])
        >>> localization_auc(maps, torch.tensor([[[True, False], [True, False]]]))
        tensor([1.])
    """
    masks = _check(maps, masks)
    obj = _binary(masks).flatten(1)
    v = maps.flatten(1).double().nan_to_num(nan=0.0)
    b, n = v.shape
    sorted_v, order = torch.sort(v, dim=1, stable=True)
    pos = torch.arange(n, device=v.device).expand(b, n)
    new_group = torch.ones_like(sorted_v, dtype=torch.bool)
    new_group[:, 1:] = sorted_v[:, 1:] != sorted_v[:, :-1]
    end_group = torch.ones_like(new_group)
    end_group[:, :-1] = new_group[:, 1:]
    first = torch.where(new_group, pos, torch.zeros_like(pos)).cummax(dim=1).values
    last = torch.where(end_group, pos, torch.full_like(pos, n - 1)).flip(1).cummin(dim=1).values.flip(1)
    ranks = torch.empty_like(v).scatter_(1, order, (first + last).double() / 2 + 1)
    p = obj.sum(dim=1).double()
    q = n - p
    value = ((ranks * obj).sum(dim=1) - p * (p + 1) / 2) / (p * q).clamp_min(1.0)
    value = torch.where(p > 0, value, torch.zeros_like(value))
    value = torch.where(q > 0, value, torch.full_like(value, float("nan")))
    return _nan_rows(maps, value.float())
