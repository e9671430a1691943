"""Model zoo: torchvision and timm CNNs and transformers with random weights and small inputs.

For each model: the default target layer is the family's (never a patch-embedding stem), the layout is
detected, the maps have the input's size and are not blank, and the low-resolution Grad-CAM map agrees
with pytorch-grad-cam's GradCAM given its documented ``reshape_transform`` for the family (per-sample
Pearson >= 0.99). No weights are downloaded.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import timm
import torch
import torchvision
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from lightning_cam.methods import GradCAM, default_target_layer
from lightning_cam.methods.layers import infer_layout, prefix_tokens

from .conftest import assert_maps_match, structured_images

tv = torchvision.models


def _tv_vit() -> nn.Module:
    model = tv.vit_b_16(weights=None, num_classes=5, image_size=64)
    nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision zero-initialises the head: all logits 0
    return model

# name -> (factory, image size, expected default layer, expected layout, slow)
ZOO: dict[str, tuple[Callable[[], nn.Module], int, str, str, bool]] = {
    "tv_resnet18": (lambda: tv.resnet18(weights=None, num_classes=5), 64, "layer4.1", "nchw", False),
    "tv_mobilenet_v3_small": (
        lambda: tv.mobilenet_v3_small(weights=None, num_classes=5), 64, "features.12", "nchw", False
    ),
    "tv_efficientnet_b0": (lambda: tv.efficientnet_b0(weights=None, num_classes=5), 64, "features.8", "nchw", False),
    "tv_convnext_tiny": (lambda: tv.convnext_tiny(weights=None, num_classes=5), 64, "features.7.2", "nchw", True),
    "tv_swin_t": (lambda: tv.swin_t(weights=None, num_classes=5), 128, "features.7.1.norm1", "nhwc", True),
    "tv_vit_b_16": (
        _tv_vit, 64, "encoder.layers.encoder_layer_11.ln_1", "tokens", True,
    ),
    "timm_resnet18": (lambda: timm.create_model("resnet18", num_classes=5), 64, "layer4.1", "nchw", False),
    "timm_efficientnet_b0": (lambda: timm.create_model("efficientnet_b0", num_classes=5), 64, "bn2", "nchw", False),
    "timm_convnext_atto": (
        lambda: timm.create_model("convnext_atto", num_classes=5), 64, "stages.3.blocks.1", "nchw", False
    ),
    "timm_vit_tiny": (
        lambda: timm.create_model("vit_tiny_patch16_224", num_classes=5, img_size=64), 64, "blocks.11.norm1", "tokens",
        False,
    ),
    "timm_deit_tiny_distilled": (
        lambda: timm.create_model("deit_tiny_distilled_patch16_224", num_classes=5, img_size=64), 64,
        "blocks.11.norm1", "tokens", False,
    ),
    "timm_swin_tiny": (
        lambda: timm.create_model("swin_tiny_patch4_window7_224", num_classes=5, img_size=128, window_size=4), 128,
        "layers.3.blocks.1.norm1", "nhwc", False,
    ),
}


def _params() -> list:
    return [pytest.param(name, marks=[pytest.mark.slow] if ZOO[name][4] else [], id=name) for name in ZOO]


def _pgc_reshape(layout: str, prefix: int, h: int, w: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """pytorch-grad-cam's documented reshape_transform for the family (vision_transformers.md)."""
    if layout == "tokens":  # ViT: drop the class (and distillation) tokens, grid, channels first
        return lambda t: t[:, prefix:, :].reshape(t.size(0), h, w, t.size(2)).transpose(2, 3).transpose(1, 2)
    if layout == "nhwc":  # Swin
        return lambda t: t.reshape(t.size(0), h, w, t.size(-1)).transpose(2, 3).transpose(1, 2)
    return None


@pytest.mark.parametrize("name", _params())
def test_zoo_default_layer_layout_and_parity(name: str) -> None:
    factory, size, layer, layout, _ = ZOO[name]
    torch.manual_seed(0)
    model = factory().eval()
    chosen, why = default_target_layer(model)
    assert chosen == layer, (chosen, why)
    assert "patch_embed" not in chosen and "conv_proj" not in chosen

    x = structured_images(2, size, seed=1)
    cam = GradCAM(model, chosen)
    res = cam.explain(x)
    assert res.maps.shape == (2, size, size)
    assert not bool(res.blank.any()), res.blank_reason
    assert float(res.maps.amax()) == 1.0

    captured: dict[str, tuple[int, ...]] = {}
    module = model.get_submodule(chosen)

    def record(_module: nn.Module, _args: object, output: torch.Tensor) -> None:
        captured["shape"] = tuple(output.shape)

    handle = module.register_forward_hook(record)
    with torch.no_grad():
        model(x)
    handle.remove()
    assert infer_layout(model, chosen, captured["shape"], (size, size)) == layout

    h, w = res.low_res.shape[-2:]
    reshape = _pgc_reshape(layout, prefix_tokens(model) or 0, h, w)
    with PgcGradCAM(model=model, target_layers=[module], reshape_transform=reshape) as peer:
        peer.get_target_width_height = lambda _input: (w, h)  # compare before upsampling
        peer_maps = peer(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in res.targets])
    # torchvision's small-std heads give maps ~1e-11: scale to max 1 (Pearson ignores it) for the constant test
    ours = res.low_res / res.low_res.flatten(1).amax(1).view(-1, 1, 1)
    assert assert_maps_match(ours, torch.from_numpy(peer_maps), min_corr=0.99) == 2
