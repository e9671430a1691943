"""Model zoo: the default-layer rule (methods/choose.py), not a table, on 60+ torchvision, timm and HuggingFace
classifiers built with random weights at small inputs (nothing downloaded).

For each model: the chosen layer's output has a spatial grid of at least 2x2 and is a cut of the autograd
graph (checked here again, independently, by replacing its output: the logits of another input then equal the
batch's); the maps have the input's size and are not blank; and the low-resolution Grad-CAM maps agree with
pytorch-grad-cam's GradCAM at the same layer, given the layer's layout as its ``reshape_transform``
(per-sample Pearson >= 0.99).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import timm
import torch
import torchvision
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from lightning_cam.methods import GradCAM, choose_target_layer
from lightning_cam.methods.layers import reshape_activation
from lightning_cam.utilities.outputs import select_logits

from .conftest import assert_maps_match, structured_images

tv = torchvision.models
SLOW = "slow"


def _timm(name: str, **kwargs: Any) -> Callable[[], nn.Module]:
    return lambda: timm.create_model(name, pretrained=False, num_classes=5, **kwargs)


def _hf(kind: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import transformers as hf

        if kind == "vit":
            config = hf.ViTConfig(image_size=64, patch_size=16, hidden_size=64, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=128, num_labels=5)
            return hf.ViTForImageClassification(config)
        if kind == "convnext":
            config = hf.ConvNextConfig(num_channels=3, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1],
                                       num_labels=5)
            return hf.ConvNextForImageClassification(config)
        if kind == "swinv2":  # at 96 px its last stage is 9 tokens: 3x3, or 2x2 after five prefix tokens
            config = hf.Swinv2Config(image_size=96, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1],
                                     num_heads=[1, 1, 2, 2], window_size=3, num_labels=5)
            return hf.Swinv2ForImageClassification(config)
        if kind == "focalnet":
            config = hf.FocalNetConfig(image_size=96, embed_dim=16, depths=[1, 1, 1, 1], num_labels=5)
            return hf.FocalNetForImageClassification(config)
        if kind == "pvtv2":
            config = hf.PvtV2Config(image_size=96, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                    num_attention_heads=[1, 1, 2, 4], num_labels=5)
            return hf.PvtV2ForImageClassification(config)
        config = hf.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                 layer_type="basic", num_labels=5)
        return hf.ResNetForImageClassification(config)

    return build


# name -> (factory, image size, marks)
ZOO: dict[str, tuple[Callable[[], nn.Module], int, tuple[str, ...]]] = {
    # timm CNNs, among them every family whose old default sat after global pooling or on one branch
    "timm_resnet18": (_timm("resnet18"), 64, ()),
    "timm_resnet50d": (_timm("resnet50d"), 64, ()),
    "timm_resnetv2_50": (_timm("resnetv2_50"), 96, ()),
    "timm_mobilenetv2_050": (_timm("mobilenetv2_050"), 64, ()),
    "timm_mobilenetv3_small_050": (_timm("mobilenetv3_small_050"), 96, ()),
    "timm_mobilenetv3_large_100": (_timm("mobilenetv3_large_100"), 96, ()),
    "timm_ghostnet_050": (_timm("ghostnet_050"), 96, ()),
    "timm_lcnet_050": (_timm("lcnet_050"), 96, ()),
    "timm_hgnetv2_b0": (_timm("hgnetv2_b0"), 96, ()),
    "timm_dla34": (_timm("dla34"), 96, ()),
    "timm_vgg11": (_timm("vgg11"), 96, (SLOW,)),
    "timm_fbnetv3_b": (_timm("fbnetv3_b"), 96, ()),
    "timm_hardcorenas_a": (_timm("hardcorenas_a"), 96, ()),
    "timm_repghostnet_050": (_timm("repghostnet_050"), 96, ()),
    "timm_dpn68": (_timm("dpn68"), 128, ()),
    "timm_efficientnet_b0": (_timm("efficientnet_b0"), 64, ()),
    "timm_regnety_002": (_timm("regnety_002"), 96, ()),
    "timm_regnetx_002": (_timm("regnetx_002"), 96, ()),
    "timm_densenet121": (_timm("densenet121"), 64, ()),
    "timm_inception_v3": (_timm("inception_v3"), 96, ()),
    "timm_inception_v4": (_timm("inception_v4"), 96, (SLOW,)),
    "timm_mobileone_s0": (_timm("mobileone_s0"), 96, ()),
    "timm_fastvit_t8": (_timm("fastvit_t8"), 96, ()),
    "timm_convnext_atto": (_timm("convnext_atto"), 64, ()),
    "timm_convnextv2_atto": (_timm("convnextv2_atto"), 64, ()),
    "timm_edgenext_xx_small": (_timm("edgenext_xx_small"), 64, ()),
    "timm_rexnet_100": (_timm("rexnet_100"), 96, ()),
    "timm_ese_vovnet19b_dw": (_timm("ese_vovnet19b_dw"), 96, ()),
    "timm_cspresnet50": (_timm("cspresnet50"), 96, ()),
    "timm_res2net50_14w_8s": (_timm("res2net50_14w_8s"), 96, ()),
    "timm_selecsls42b": (_timm("selecsls42b"), 96, ()),
    "timm_mixnet_s": (_timm("mixnet_s"), 96, ()),
    "timm_tinynet_e": (_timm("tinynet_e"), 96, ()),
    "timm_poolformer_s12": (_timm("poolformer_s12"), 64, ()),
    # timm transformers, MLPs and hybrids (the patch embedding, a block's branch and class-token-only layers
    # are what the rule must avoid)
    "timm_vit_tiny": (_timm("vit_tiny_patch16_224", img_size=64), 64, ()),
    "timm_deit_tiny_distilled": (_timm("deit_tiny_distilled_patch16_224", img_size=64), 64, ()),
    "timm_swin_tiny": (_timm("swin_tiny_patch4_window7_224", img_size=128, window_size=4), 128, ()),
    "timm_cait_xxs24": (_timm("cait_xxs24_224", img_size=64), 64, ()),
    "timm_convit_tiny": (_timm("convit_tiny", img_size=64), 64, ()),
    "timm_levit_128s": (_timm("levit_128s"), 224, ()),
    "timm_mixer_s16": (_timm("mixer_s16_224", img_size=64), 64, ()),
    "timm_resmlp_12": (_timm("resmlp_12_224", img_size=64), 64, ()),
    "timm_xcit_nano_12": (_timm("xcit_nano_12_p16_224", img_size=64), 64, ()),
    "timm_mvitv2_tiny": (_timm("mvitv2_tiny"), 224, (SLOW,)),
    "timm_pvt_v2_b0": (_timm("pvt_v2_b0"), 96, ()),
    "timm_coatnet_nano_rw": (_timm("coatnet_nano_rw_224"), 224, (SLOW,)),
    "timm_nextvit_small": (_timm("nextvit_small"), 224, (SLOW,)),
    "timm_nest_tiny": (_timm("nest_tiny", img_size=64), 64, ()),
    # small inputs, where a last stage of 9 tokens fits a 3x3 grid or a 2x2 one after five prefix tokens and the
    # model does not say which (the rule once fell back to a patch embedding, or to the stem)
    "timm_twins_pcpvt_at_96px": (_timm("twins_pcpvt_small"), 96, (SLOW,)),
    "timm_gmlp_at_48px": (_timm("gmlp_ti16_224", img_size=48), 48, ()),
    # torchvision
    "tv_resnet18": (lambda: tv.resnet18(weights=None, num_classes=5), 64, ()),
    "tv_resnet18_at_32px": (lambda: tv.resnet18(weights=None, num_classes=5), 32, ()),
    "tv_mobilenet_v2": (lambda: tv.mobilenet_v2(weights=None, num_classes=5), 64, ()),
    "tv_mobilenet_v3_small": (lambda: tv.mobilenet_v3_small(weights=None, num_classes=5), 64, ()),
    "tv_efficientnet_b0": (lambda: tv.efficientnet_b0(weights=None, num_classes=5), 64, ()),
    "tv_densenet121": (lambda: tv.densenet121(weights=None, num_classes=5), 64, ()),
    "tv_googlenet": (lambda: tv.googlenet(weights=None, num_classes=5, aux_logits=False, init_weights=True), 128, ()),
    "tv_inception_v3": (
        lambda: tv.inception_v3(weights=None, num_classes=5, aux_logits=False, init_weights=True), 128, (SLOW,),
    ),
    "tv_regnet_y_400mf": (lambda: tv.regnet_y_400mf(weights=None, num_classes=5), 96, ()),
    "tv_shufflenet_v2": (lambda: tv.shufflenet_v2_x0_5(weights=None, num_classes=5), 96, ()),
    "tv_mnasnet0_5": (lambda: tv.mnasnet0_5(weights=None, num_classes=5), 96, ()),
    "tv_convnext_tiny": (lambda: tv.convnext_tiny(weights=None, num_classes=5), 64, (SLOW,)),
    "tv_swin_t": (lambda: tv.swin_t(weights=None, num_classes=5), 128, (SLOW,)),
    "tv_vit_b_16": (lambda: tv.vit_b_16(weights=None, num_classes=5, image_size=64), 64, (SLOW,)),
    "tv_maxvit_t": (lambda: tv.maxvit_t(weights=None, num_classes=5), 224, (SLOW,)),
    # HuggingFace transformers, from small configs: their forward returns an ImageClassifierOutput
    "hf_vit": (_hf("vit"), 64, ()),
    "hf_convnext": (_hf("convnext"), 64, ()),
    "hf_resnet": (_hf("resnet"), 64, ()),
    "hf_swinv2_at_96px": (_hf("swinv2"), 96, ()),
    "hf_focalnet_at_96px": (_hf("focalnet"), 96, ()),
    "hf_pvtv2_at_96px": (_hf("pvtv2"), 96, ()),
}


#: where pytorch-grad-cam's definition differs at the chosen layer (documented; the parity check is skipped there)
PEER_DIFFERS: dict[str, str] = {
    "tv_densenet121": "torchvision's DenseNet applies F.relu(inplace=True) to `features`' output, so "
                      "pytorch-grad-cam's stored activation (the same tensor) is the ReLU'd one; ours is the layer's "
                      "own output (our hook hands the model a copy)",
}


def _params() -> list[Any]:
    return [pytest.param(name, marks=[pytest.mark.slow] if SLOW in ZOO[name][2] else [], id=name) for name in ZOO]


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = ZOO[name][0]().eval()
    for module in model.modules():  # zero-initialised heads (timm, torchvision ViT) give all-zero gradients
        if isinstance(module, nn.Linear) and module.out_features == 5 and not bool(module.weight.ne(0).any()):
            nn.init.normal_(module.weight, std=0.1)
    return model


class _Logits(nn.Module):
    """What a pytorch-grad-cam user writes for a model whose forward returns a ModelOutput."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return select_logits(self.model(x))


def test_the_zoo_is_large_enough() -> None:
    assert len(ZOO) >= 60


@pytest.mark.parametrize("name", _params())
def test_the_rule_chooses_a_cut_with_a_grid_and_maps_agree_with_pytorch_grad_cam(name: str) -> None:
    model = _build(name)
    size = ZOO[name][1]
    x = structured_images(2, size, seed=1)
    choice = choose_target_layer(model, x)
    assert choice.grid[0] >= 2 and choice.grid[1] >= 2, choice.reason
    assert not choice.skipped, choice.skipped  # no later spatial output passed over for want of its layout
    assert "patch_embed" not in choice.name and "conv_proj" not in choice.name, choice.reason
    module = model.get_submodule(choice.name)

    # the cut, checked independently: with the layer's output fixed, another input gives the same logits
    with torch.no_grad():
        logits = select_logits(model(x))
        fixed: dict[str, torch.Tensor] = {}
        handle = module.register_forward_hook(lambda m, a, out: fixed.setdefault("out", out))
        model(x)
        handle.remove()
        handle = module.register_forward_hook(lambda m, a, out: fixed["out"])
        other = select_logits(model(structured_images(2, size, seed=7)))
        handle.remove()
    torch.testing.assert_close(other, logits, rtol=1e-4, atol=1e-4 * float(logits.abs().max() + 1e-6))

    res = GradCAM(model).explain(x)
    assert res.maps.shape == (2, size, size)

    def reshape(t: torch.Tensor) -> torch.Tensor:
        return reshape_activation(t, choice.layout, choice.name, model=model, image_size=(size, size),
                                  prefix=choice.prefix)

    if name in PEER_DIFFERS:
        assert not bool(res.blank.any()), res.blank_reason
        return
    h, w = res.low_res.shape[-2:]
    peer_model = _Logits(model)
    with PgcGradCAM(model=peer_model, target_layers=[module], reshape_transform=reshape) as peer:
        peer.get_target_width_height = lambda _input: (w, h)  # compare before upsampling
        peer_maps = peer(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in res.targets])
    ours = res.low_res / res.low_res.flatten(1).amax(1).clamp_min(1e-30).view(-1, 1, 1)
    informative = assert_maps_match(ours, torch.from_numpy(peer_maps), min_corr=0.99)
    # not blank, unless the peer's map at this valid layer is constant too (random weights can give that)
    assert informative == 2 - int(res.blank.sum()), res.blank_reason


def test_per_patch_inner_tokens_are_refused_with_a_clear_message() -> None:
    """TNT: its blocks return (inner, outer) tuples and its inner tokens have B * N rows: never candidates; its
    outer tokens reach the head only through the class token. No layer passes: the error says why and what to
    name."""
    torch.manual_seed(0)
    model = timm.create_model("tnt_s_patch16_224", pretrained=False, num_classes=5, img_size=64).eval()
    with pytest.raises(ValueError, match=r"no layer of TNT satisfies the default-layer rule.*a gradient at its "
                                         r"prefix tokens only.*tuples.*per-patch inner tokens.*cam_target_layer"):
        choose_target_layer(model, structured_images(2, 64, seed=1))
