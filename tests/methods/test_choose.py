"""methods/choose.py, rule (d): a segmenter is explained before its head, at the layer the peers' tutorials use
(torchvision DeepLabV3: ``backbone.layer4``, pytorch-grad-cam's segmentation tutorial) or at the last decoder stage
(segmentation_models_pytorch); never at the logits or the head's convolutions. Random weights, nothing downloaded."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch
from torchvision.models.segmentation import (
    deeplabv3_mobilenet_v3_large,
    deeplabv3_resnet50,
    lraspp_mobilenet_v3_large,
)

from lightning_cam.methods import GradCAM
from lightning_cam.methods.choose import choose_target_layer
from lightning_cam.models import UNetSegmenter


class Wrapped(torch.nn.Module):
    """A user's module around the segmenter (a LightningModule holds it so): looked into, one child deep."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.loss = torch.nn.CrossEntropyLoss()  # never called in forward: not on the path to the logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out["out"] if isinstance(out, dict) else out


CASES = [
    ("deeplabv3_resnet50 (aux head)",
     lambda: deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=4, aux_loss=True), "backbone.layer4"),
    ("deeplabv3_mobilenet_v3", lambda: deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=4),
     "backbone.16"),
    ("lraspp_mobilenet_v3", lambda: lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=4),
     "backbone.4"),
    ("smp.Unet", lambda: smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=4), "decoder"),
    ("smp.FPN", lambda: smp.FPN(encoder_name="resnet18", encoder_weights=None, classes=4), "decoder"),
    ("UNetSegmenter", lambda: UNetSegmenter(num_classes=4, channels=(8, 16)), "decoder"),
]


@pytest.mark.parametrize("name,factory,expected", CASES, ids=[c[0] for c in CASES])
def test_a_segmenter_is_explained_before_its_head(name: str, factory, expected: str) -> None:
    torch.manual_seed(0)
    net = factory().eval()
    choice = choose_target_layer(net, torch.randn(2, 3, 64, 64))
    assert choice.name == expected, choice.reason
    head = "classifier" if "deeplab" in name or "lraspp" in name else "segmentation_head" if "smp" in name else "head"
    if "aux" not in name:  # (the reason shows the latest three failures: there, the auxiliary head's)
        assert f"in the head ({head})" in choice.reason  # the head's layers were passed over, and it says so


def test_a_wrapper_is_looked_into_and_the_maps_follow() -> None:
    torch.manual_seed(0)
    model = Wrapped(smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=3)).eval()
    x = torch.randn(2, 3, 64, 64)
    assert choose_target_layer(model, x).name == "net.decoder"
    result = GradCAM(model, task="segmentation").explain(x, torch.tensor([1, 2]))
    assert result.maps.shape == (2, 64, 64)


def test_a_classifier_is_unchanged() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 4))
    assert choose_target_layer(net, torch.randn(2, 3, 16, 16)).name == "1"  # no head rule for (B, K) logits
