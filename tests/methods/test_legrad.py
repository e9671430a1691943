"""LeGrad against torchcam 0.5 on a torchvision VisionTransformer (random weights)."""

from __future__ import annotations

import pytest
import torch
import torchcam.methods as tcm
from torch import nn
from torchvision.models import VisionTransformer

from lightning_cam.methods import GradCAM, MethodGroup
from lightning_cam.methods.legrad import LeGrad

from .conftest import assert_maps_match, structured_images


def small_vit(seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    vit = VisionTransformer(image_size=48, patch_size=8, num_layers=4, num_heads=4, hidden_dim=32, mlp_dim=64,
                            num_classes=5).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.5)  # torchvision zeroes the head: every gradient would be 0
    return vit


def torchcam_legrad(model: nn.Module, blocks: list[str], x: torch.Tensor, targets: list[int]) -> torch.Tensor:
    peer = tcm.LeGrad(model, blocks)
    try:
        model(x)
        return peer(class_idx=targets, normalized=False)[0].detach()
    finally:
        peer.remove_hooks()


@pytest.mark.parametrize("blocks", [None, ["encoder.layers.encoder_layer_2", "encoder.layers.encoder_layer_3"]])
def test_legrad_matches_torchcam(blocks: list[str] | None) -> None:
    model = small_vit()
    every = [f"encoder.layers.encoder_layer_{i}" for i in range(4)]
    informative = 0
    for seed in (1, 2):
        x = structured_images(3, 48, seed=seed)
        res = LeGrad(model, target_layers=blocks).explain(x)
        peer = torchcam_legrad(model, blocks or every, x, res.targets.tolist())
        assert res.low_res.shape == peer.shape == (3, 6, 6)
        informative += assert_maps_match(res.low_res, peer, min_corr=0.9999)
    assert informative == 6


def test_legrad_leaves_the_model_as_it_was_and_runs_in_a_group() -> None:
    model = small_vit()
    x = structured_images(2, 48, seed=3)
    with torch.no_grad():
        before = model(x)
    alone = LeGrad(model).explain(x, torch.tensor([1, 4]))
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)  # hooks gone: the attention is the model's own again
    out = MethodGroup({"legrad": LeGrad(model), "gradcam": GradCAM(model, "encoder.layers.encoder_layer_3",
                                                                   reshape="vit")}).explain(x, torch.tensor([1, 4]))
    torch.testing.assert_close(out["legrad"].maps, alone.maps)


def test_legrad_refusals_name_the_fix() -> None:
    model = small_vit()
    with pytest.raises(ValueError, match="not a transformer block"):
        LeGrad(model, "encoder.ln")
    with pytest.raises(ValueError, match="no block whose self_attention"):
        LeGrad(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)))
    with pytest.raises(ValueError, match="explains multiclass"):
        LeGrad(model, task="segmentation")
    with pytest.raises(ValueError, match="grid_shape"):
        LeGrad(model, prefix_tokens=0)(structured_images(1, 48))


def test_legrad_contract_batch_frozen_autocast_and_kinds() -> None:
    """The generic contract tests run on convolutional networks (`tests.helpers.cnn_methods`); LeGrad's, on a ViT."""
    model = small_vit()
    x = structured_images(4, 48, seed=7)
    targets = torch.tensor([0, 3, 1, 4])
    batched = LeGrad(model).explain(x, targets)
    assert bool((batched.maps.flatten(1).amax(1) > 0).all())
    for i in range(4):
        single = LeGrad(model).explain(x[i : i + 1], targets[i : i + 1])
        torch.testing.assert_close(single.maps[0], batched.maps[i], rtol=1e-5, atol=1e-5)
    frozen = small_vit().requires_grad_(False)
    with torch.inference_mode():
        torch.testing.assert_close(LeGrad(frozen).explain(x.clone(), targets).maps, batched.maps)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = LeGrad(model).explain(x, targets)
    assert low.maps.dtype == torch.float32 and bool(torch.isfinite(low.maps).all())
    multi = LeGrad(small_vit(), task="multilabel").explain(x[:2], torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 1]]))
    assert multi.maps.shape == (3, 48, 48) and multi.samples.tolist() == [0, 0, 1]


def test_legrad_on_a_copy_reads_the_copy() -> None:
    """The randomization metric explains a weight-randomised copy: the copy's head scores the copy's blocks."""
    from lightning_cam.utilities.randomize import randomized_twin

    model = small_vit()
    cam = LeGrad(model)
    twin = randomized_twin(cam, "independent", 1)  # only the head re-initialised
    x = structured_images(2, 48, seed=3)
    assert twin.probes[0].block is twin.model.encoder.layers[0]
    assert not torch.allclose(twin(x, torch.tensor([1, 2])), cam(x, torch.tensor([1, 2])))
