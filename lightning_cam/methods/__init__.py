"""CAM methods: one base class owns hooks, targets, upsampling and normalisation; each method supplies its map.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(4, 2))
    >>> cam = get_method("gradcam")(net, target_layer="1")
    >>> cam(torch.randn(2, 3, 8, 8)).shape
    torch.Size([2, 8, 8])
"""

from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.choose import LayerChoice, choose_target_layer
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.group import MethodGroup, explain_many
from lightning_cam.methods.layers import (
    infer_layout,
    resolve_layer,
)
from lightning_cam.methods.registry import (
    CAM,
    METHODS,
    EigenCAM,
    FakeCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    SmoothGradCAMPlusPlus,
    XGradCAM,
    available_methods,
    get_method,
)
from lightning_cam.methods.result import CAMResult

__all__ = [
    "CAM",
    "BaseCAM",
    "CAMResult",
    "EigenCAM",
    "ExtraInputs",
    "FakeCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "METHODS",
    "MethodGroup",
    "ScoreCAM",
    "SmoothGradCAMPlusPlus",
    "XGradCAM",
    "available_methods",
    "LayerChoice",
    "choose_target_layer",
    "explain_many",
    "get_method",
    "infer_layout",
    "resolve_layer",
]
