"""Several target layers for one method: maps averaged at the input size as pytorch-grad-cam averages its
``target_layers``, and the default-layer rule offering the branch outputs of a model with no single cut."""

from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam import GradCAMPlusPlus as PgcGradCAMPlusPlus
from pytorch_grad_cam import LayerCAM as PgcLayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from lightning_cam.evaluate import evaluate_batch
from lightning_cam.methods import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, MethodGroup, choose_target_layer

from .conftest import assert_maps_match, make_resnet, structured_images

PEERS = {"gradcam": (GradCAM, PgcGradCAM), "gradcam_pp": (GradCAMPlusPlus, PgcGradCAMPlusPlus),
         "layercam": (LayerCAM, PgcLayerCAM)}


def _peer(peer_cls: type, model: nn.Module, layers: list[nn.Module], x: torch.Tensor, targets: torch.Tensor,
          reshape: object = None) -> torch.Tensor:
    with peer_cls(model=model, target_layers=layers, reshape_transform=reshape) as peer:
        return torch.from_numpy(peer(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets]))


@pytest.mark.parametrize("name", list(PEERS))
def test_two_layers_agree_with_pytorch_grad_cam(name: str) -> None:
    model = make_resnet(num_classes=5)
    x = structured_images(4, 64, seed=2)
    ours_cls, peer_cls = PEERS[name]
    res = ours_cls(model, ["layer3", "layer4"]).explain(x)
    assert res.maps.shape == (4, 64, 64) and res.low_res.shape == (4, 4, 4)  # the finer grid of the two
    peer = _peer(peer_cls, model, [model.layer3, model.layer4], x, res.targets)
    assert assert_maps_match(res.maps, peer, min_corr=0.99) == 4


def test_several_layers_in_a_group_and_the_evaluator_equal_the_method_alone() -> None:
    model = make_resnet(num_classes=5)
    x = structured_images(3, 64, seed=3)
    several = GradCAM(model, ["layer3", model.layer4])
    alone = several.explain(x)
    grouped = MethodGroup({"several": several, "eigen": EigenCAM(model, "layer4")}).explain(x)
    torch.testing.assert_close(grouped["several"].maps, alone.maps)
    values = evaluate_batch(several, x, metrics=("average_drop", "coherency", "complexity", "adcc"))
    assert all(bool(torch.isfinite(v).all()) for v in values.values())
    assert several.target_layer_name == "layer3+layer4" and len(several.target_layers) == 2


def test_a_list_naming_no_layer_or_one_twice_is_refused() -> None:
    model = make_resnet(num_classes=5)
    with pytest.raises(ValueError, match=r"names no layer"):
        GradCAM(model, [])
    with pytest.raises(ValueError, match=r"names a layer twice"):
        GradCAM(model, ["layer4", "layer4"])
    assert GradCAM(model, ["layer4"]).target_layer_name == "layer4"  # a list of one is that layer


class TwoBranches(nn.Module):
    """Two convolutional branches on the input that meet only at the head: no single layer is a cut."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU())
        self.right = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.ReLU())
        self.fc = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([self.left(x).mean(dim=(2, 3)), self.right(x).mean(dim=(2, 3))], dim=1))


def test_the_rule_offers_the_branch_outputs_when_no_single_layer_is_a_cut() -> None:
    torch.manual_seed(0)
    model = TwoBranches().eval()
    x = structured_images(2, 16, seed=1)
    choice = choose_target_layer(model, x)
    assert set(choice.names) == {"left", "right"}, choice.reason
    res = GradCAM(model).explain(x)
    peer = _peer(PgcGradCAM, model, [model.get_submodule(n) for n in choice.names], x, res.targets)
    assert_maps_match(res.maps, peer, min_corr=0.99)


@pytest.mark.slow
def test_crossvit_gets_the_outputs_of_its_two_branches() -> None:
    """CrossViT's two branches meet only at the head: the rule offers both branches' outputs of the last
    multi-scale block (their patch tokens reach the head through the cross-attention), and the averaged maps
    agree with pytorch-grad-cam's at the same two layers."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("crossvit_tiny_240", pretrained=False, num_classes=5).eval()
    for module in model.modules():  # zero-initialised heads give all-zero gradients
        if isinstance(module, nn.Linear) and module.out_features == 5:
            nn.init.normal_(module.weight, std=0.1)
    x = structured_images(2, 240, seed=1)
    cam = GradCAM(model)
    res = cam.explain(x)
    assert cam.target_layer_name == "blocks.2.blocks.1+blocks.2.blocks.0", cam.target_layer_reason
    assert not bool(res.blank.any())

    def drop_class_token(t: torch.Tensor) -> torch.Tensor:
        side = int((t.shape[1] - 1) ** 0.5)
        return t[:, 1:].reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)

    peer = _peer(PgcGradCAM, model, [model.blocks[2].blocks[1], model.blocks[2].blocks[0]], x, res.targets,
                 reshape=drop_class_token)
    assert assert_maps_match(res.maps, peer, min_corr=0.99) == 2
