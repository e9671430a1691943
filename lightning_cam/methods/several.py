"""Several target layers for one method: one copy of the method per layer, and their results made one.

A method given several layers (``target_layer=["layer3", "layer4"]``, or the rule's choice for a model whose
branches meet only at the head) explains each with a copy of itself (`layer_copies`: the same options, one layer
each), and `several_layers` averages the maps at the input size, as pytorch-grad-cam averages its
``target_layers``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

from lightning_cam.functional.normalize import minmax_normalize
from lightning_cam.methods.result import CAMResult

if TYPE_CHECKING:
    from lightning_cam.methods.base import BaseCAM

__all__ = ["layer_copies", "several_layers"]


def layer_copies(cam: BaseCAM) -> list[BaseCAM]:
    """One copy of ``cam`` per layer of ``cam.layers``: the same options (a shallow copy), one target layer each,
    its layout and prefix tokens detected for that layer.

    Examples:
        >>> from torch import nn
        >>> from lightning_cam.methods import GradCAM
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.LazyLinear(2))
        >>> [c.target_layer_name for c in layer_copies(GradCAM(net, ["0", "2"]))]
        ['0', '2']
    """
    copies = []
    for name, module in cam.layers:
        part = copy.copy(cam)
        part.layers, part._parts, part._layouts = (), None, {}
        part.target_layer_name, part.target_layer, part.auto_layer = name, module, False
        part.prefix = None  # each layer's own prefix tokens, read from its token count
        copies.append(part)
    return copies


def several_layers(results: list[CAMResult], reduce: Literal["mean", "product"] = "mean") -> CAMResult:
    r"""One result from the results of the same call at several target layers, as pytorch-grad-cam combines its
    ``target_layers``: each layer's map ReLU'd, upsampled and min-max normalised (what every result's ``maps``
    is), then

    $$ M = \operatorname{norm}\Big(\frac{1}{L} \sum_{l=1}^{L} M_l\Big) $$

    per sample (``reduce="mean"``), or $M = \operatorname{norm}\big(\prod_l M_l\big)$ with ``reduce="product"``
    (Refine-CAM: a region survives only where every layer keeps it). ``low_res`` is $M$ pooled to the finest layer
    grid (the layers' grids differ); logits, targets and pairs are the first result's (every layer explains the same
    targets of the same forward); a map is blank when it is constant, with the layers' reasons.

    Examples:
        >>> a = CAMResult(torch.rand(2, 8, 8), torch.rand(2, 2, 2), torch.zeros(2, 3), torch.tensor([0, 1]))
        >>> b = CAMResult(torch.rand(2, 8, 8), torch.rand(2, 4, 4), torch.zeros(2, 3), torch.tensor([0, 1]))
        >>> out = several_layers([a, b])
        >>> tuple(out.maps.shape), tuple(out.low_res.shape), float(out.maps.amax())
        ((2, 8, 8), (2, 4, 4), 1.0)
    """
    first = results[0]
    stacked = torch.stack([r.maps.float() for r in results])
    maps = minmax_normalize(stacked.mean(dim=0) if reduce == "mean" else stacked.prod(dim=0))
    h = max(int(r.low_res.shape[-2]) for r in results)
    w = max(int(r.low_res.shape[-1]) for r in results)
    low_res = F.adaptive_avg_pool2d(maps[:, None], (h, w))[:, 0] if maps.shape[0] else maps.new_zeros(0, h, w)
    blank = maps.flatten(1).amax(dim=1) <= 0

    def reason() -> str:
        texts = [r.blank_reason for r in results]
        return "; ".join(dict.fromkeys(t for t in texts if t))

    return CAMResult(maps, low_res, first._lazy_logits(), first.targets, blank, reason, first.samples)
