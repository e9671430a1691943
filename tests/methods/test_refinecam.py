"""Refine-CAM against pytorch-grad-cam over several ResNet-18 and VGG layers, and through a callback's one layer."""

from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam import GradCAMPlusPlus as PgcGradCAMPlusPlus
from pytorch_grad_cam import RefineCAM as PgcRefineCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from lightning_cam.methods import GradCAMPlusPlus, MethodGroup
from lightning_cam.methods.refinecam import RefineCAM

from .conftest import assert_maps_match, parity_batches, parity_model

SETUPS = [("resnet", ("layer2", "layer3", "layer4"), 128), ("vgg", ("features.5", "features.9"), 64)]


#: (base, its options, the peer's base): Grad-CAM++ with the peer's eps (see GradCAMPlusPlus)
BASES = [("gradcam_pp", {"eps": 1e-6}, PgcGradCAMPlusPlus), ("gradcam", {}, PgcGradCAM)]


@pytest.mark.parametrize("base,base_kwargs,peer_base", BASES)
@pytest.mark.parametrize("kind,layers,size", SETUPS)
def test_refinecam_matches_pytorch_grad_cam(kind: str, layers: tuple[str, ...], size: int, base: str,
                                            base_kwargs: dict[str, float], peer_base: type) -> None:
    model = parity_model(kind)
    informative = 0
    for x in parity_batches(size):
        res = RefineCAM(model, target_layers=layers, base=base, base_kwargs=base_kwargs).explain(x)
        peer = PgcRefineCAM(model, [model.get_submodule(name) for name in layers], base_method=peer_base)
        maps = torch.from_numpy(peer(x, [ClassifierOutputTarget(int(t)) for t in res.targets]))
        informative += assert_maps_match(res.maps, maps)
    assert informative >= 3


def test_refinecam_keeps_only_what_every_layer_keeps() -> None:
    model = parity_model("resnet")
    x = parity_batches(128)[0]
    deep = GradCAMPlusPlus(model, "layer4")(x)
    refined = RefineCAM(model, target_layers=["layer3", "layer4"])(x)
    assert bool((refined[deep == 0] == 0).all())  # zero in one layer: zero in the product
    torch.testing.assert_close(RefineCAM(model, "layer4")(x), deep)  # one layer: the base's map


def test_refinecam_in_a_group_and_its_refusals() -> None:
    model = parity_model("vgg")
    x = parity_batches(64)[0]
    cam = RefineCAM(model, "features.9", target_layers=["features.5", "features.9"], base="scorecam",
                    base_kwargs={"batch_size": 16})
    alone = cam(x)
    out = MethodGroup({"refinecam": cam, "gradcam_pp": GradCAMPlusPlus(model, "features.9")}).explain(x)
    torch.testing.assert_close(out["refinecam"].maps, alone)
    for base in ("finercam", "shapleycam", "refinecam", "fakecam"):
        with pytest.raises(ValueError, match="one capture pass"):
            RefineCAM(model, "features.9", base=base)
