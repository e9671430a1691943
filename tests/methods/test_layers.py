"""Layer lookup, layouts and the errors around them (methods/layers.py), checkpointing and dict outputs."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.checkpoint import checkpoint

from lightning_cam.methods import GradCAM, choose_target_layer
from lightning_cam.methods.layers import (
    infer_layout,
    reshape_activation,
    resolve_layer,
)


class SwinLike(nn.Module):
    """Channels-last blocks (B, h, w, C) as in Swin: nhwc detected, same map as reshape='nhwc'."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)
        self.mlp = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.mlp(self.norm(self.stem(x).permute(0, 2, 3, 1)))  # (B, h, w, C)
        return self.head(t.mean(dim=(1, 2)))


def test_channels_last_is_detected_and_equals_explicit_permute() -> None:
    torch.manual_seed(0)
    net = SwinLike().eval()
    x = torch.randn(2, 3, 32, 32)
    auto = GradCAM(net, "mlp").explain(x)
    named = GradCAM(net, "mlp", reshape="nhwc").explain(x)
    by_hand = GradCAM(net, "mlp", reshape=lambda t: t.permute(0, 3, 1, 2)).explain(x)
    assert auto.low_res.shape == (2, 8, 8)
    torch.testing.assert_close(auto.low_res, named.low_res)
    torch.testing.assert_close(auto.low_res, by_hand.low_res)


def test_ambiguous_layout_is_an_error_naming_layer_shape_and_options() -> None:
    net = nn.Sequential(nn.Identity(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    with pytest.raises(ValueError, match=r"layer '0'.*\(2, 4, 4, 4\).*reshape='nchw'.*'nhwc'.*'tokens'.*callable"):
        infer_layout(net, "0", (2, 4, 4, 4))


def test_token_grid_uses_model_prefix_and_aspect_ratio() -> None:
    tokens = torch.arange(2 * (2 + 12) * 3, dtype=torch.float32).view(2, 14, 3)
    out = reshape_activation(tokens, "tokens", "blk", image_size=(48, 64))  # 2 prefix tokens + a 3x4 grid
    assert out.shape == (2, 3, 3, 4)
    torch.testing.assert_close(out[:, :, 0, 0], tokens[:, 2])
    vit = torchvision.models.vit_b_16(weights=None, image_size=32, num_classes=2)
    prefixed = torch.zeros(2, 1 + 4, 8)  # the model says: 1 class token -> 2x2 grid
    assert reshape_activation(prefixed, "tokens", "x", model=vit, image_size=(32, 32)).shape == (2, 8, 2, 2)


def test_vit_block_output_is_blank_with_reason_and_norm1_is_not() -> None:
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=3
    ).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.1)
    x = torch.randn(2, 3, 32, 32)
    out = GradCAM(vit, "encoder.layers.encoder_layer_1").explain(x)
    assert bool(out.blank.all()) and "non-zero at its prefix (class) tokens only" in out.blank_reason, out.blank_reason
    assert (out.maps == 0).all()
    choice = choose_target_layer(vit, x)  # the last block's output fails (c); its input is the latest cut
    assert choice.name == "encoder.layers.encoder_layer_0" and choice.layout == "tokens", choice.reason
    good = GradCAM(vit).explain(x)
    assert not bool(good.blank.any()) and good.blank_reason == ""


def test_ambiguous_name_lists_every_candidate_or_the_closest_eight() -> None:
    net = nn.Sequential(OrderedDict((f"b{i}", nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU())) for i in range(12)))
    with pytest.raises(ValueError, match=r"ambiguous.*12 in all; the 8 closest shown"):
        resolve_layer(net, "0")
    few = nn.Sequential(OrderedDict((k, nn.Sequential(nn.ReLU())) for k in "abc"))
    with pytest.raises(ValueError, match=r"matches \['a.0', 'b.0', 'c.0'\]"):
        resolve_layer(few, "0")


class Checkpointed(nn.Module):
    def __init__(self, reentrant: bool) -> None:
        super().__init__()
        self.reentrant = reentrant
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = checkpoint(self.block, x, use_reentrant=self.reentrant)
        return self.fc(a.mean(dim=(2, 3)))


def test_reentrant_checkpoint_is_named_and_non_reentrant_works() -> None:
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match=r"use_reentrant=True.*use_reentrant=False"):
        GradCAM(Checkpointed(True).eval(), "block")(x)
    assert GradCAM(Checkpointed(False).eval(), "block")(x).shape == (2, 8, 8)


def test_model_outputs_are_read_by_one_rule() -> None:
    """A tensor, `.logits` (HuggingFace ModelOutput), a mapping's "logits"; anything else through `output=`."""
    from dataclasses import dataclass

    @dataclass
    class Output:  # what a HuggingFace ImageClassifierOutput offers
        logits: torch.Tensor
        hidden_states: tuple[torch.Tensor, ...] | None = None

    class Net(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.conv, self.kind = nn.Conv2d(3, 2, 3), kind

        def forward(self, x: torch.Tensor) -> object:
            logits = self.conv(x).mean(dim=(2, 3))
            return {"tensor": logits, "dict": {"logits": logits, "aux": logits}, "model_output": Output(logits),
                    "tuple": (logits, logits * 0), "other_key": {"scores": logits}}[self.kind]

    def net(kind: str) -> Net:
        torch.manual_seed(0)  # the same weights for every kind
        return Net(kind).eval()

    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    reference = GradCAM(net("tensor"), "conv").explain(x)
    read = [GradCAM(net(kind), "conv").explain(x) for kind in ("dict", "model_output")]
    read += [GradCAM(net(kind), "conv", output=output).explain(x)
             for kind, output in (("tuple", 0), ("other_key", "scores"), ("dict", lambda out: out["logits"]))]
    for result in read:
        torch.testing.assert_close(result.maps, reference.maps)
        torch.testing.assert_close(result.logits, reference.logits)
    for kind in ("tuple", "other_key"):
        with pytest.raises(TypeError, match=r"Net.forward returned a .*; CAM methods need .* `output=`"):
            GradCAM(net(kind), "conv")(x)
    with pytest.raises(ValueError, match="`output` must be None"):
        GradCAM(net("tuple"), "conv", output=1.5)  # type: ignore[arg-type]


def test_a_zero_initialised_head_is_named_as_the_cause_not_a_class_token() -> None:
    """timm's hiera has no class token and a zero-initialised head: every logit is equal, so no layer has a
    gradient. The reason says so (no advice about class tokens or a norm1 default that does not exist)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("hiera_tiny_224", pretrained=False, num_classes=3, img_size=64).eval()
    nn.init.zeros_(model.head.fc.weight)
    nn.init.zeros_(model.head.fc.bias)
    out = GradCAM(model, "blocks.0").explain(torch.randn(2, 3, 64, 64))
    assert bool(out.blank.all())
    assert "same logit" in out.blank_reason and "zero-initialised or untrained head" in out.blank_reason
    assert "class token" not in out.blank_reason and "norm1" not in out.blank_reason
