"""CAM methods: one base class owns hooks, targets, upsampling and normalisation; each method supplies its map.

Every method registers itself where it is defined (`@register_method`); the built-in ones are the modules of
this package, imported here in the order of the design table.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(4, 2))
    >>> cam = get_method("gradcam")(net, target_layer="1")
    >>> cam(torch.randn(2, 3, 8, 8)).shape
    torch.Size([2, 8, 8])
"""

# The import order below is the registration order (the design table's): one block per module.
from lightning_cam.methods.base import BaseCAM, Need
from lightning_cam.methods.cam import CAM

# isort: split
from lightning_cam.methods.gradient import (
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    SmoothGradCAMPlusPlus,
    XGradCAM,
)

# isort: split
from lightning_cam.methods.activation import EigenCAM, FakeCAM, ScoreCAM

# isort: split
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.choose import LayerChoice, choose_target_layer
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.group import MethodGroup
from lightning_cam.methods.layers import NotExplainable, infer_layout, resolve_layer
from lightning_cam.methods.registry import METHOD_REGISTRY, available_methods, get_method, register_method
from lightning_cam.methods.result import CAMResult

METHOD_REGISTRY.load()  # any other method module of this package, in name order

__all__ = [
    "CAM",
    "BaseCAM",
    "CAMResult",
    "Capture",
    "EigenCAM",
    "ExtraInputs",
    "FakeCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "LayerChoice",
    "MethodGroup",
    "Need",
    "NotExplainable",
    "ScoreCAM",
    "SmoothGradCAMPlusPlus",
    "XGradCAM",
    "available_methods",
    "choose_target_layer",
    "get_method",
    "infer_layout",
    "register_method",
    "resolve_layer",
]
