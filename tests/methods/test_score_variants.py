"""SS-CAM and IS-CAM against torchcam 0.5 (their definitions), on a ResNet-18 and the small VGG."""

from __future__ import annotations

import pytest
import torch
import torchcam.methods as tcm

from lightning_cam.methods import MethodGroup, ScoreCAM
from lightning_cam.methods.score_variants import ISCAM, SSCAM

from .conftest import assert_maps_match, parity_batches, parity_model, structured_images

#: small settings (the cost is num_samples x B x C forwards): ResNet-18's layer3 at 48 px (3x3, 256 channels), the
#: VGG's 8x8
SETUPS = [("resnet", "layer3", 48), ("vgg", "features.9", 32)]


def torchcam_maps(cls: type, model: torch.nn.Module, layer: str, x: torch.Tensor, targets: list[int],
                  **kwargs: object) -> torch.Tensor:
    peer = cls(model, layer, input_shape=tuple(x.shape[1:]), **kwargs)
    try:
        with torch.no_grad():
            model(x)
        return peer(class_idx=targets, normalized=False)[0].detach()
    finally:
        peer.remove_hooks()


@pytest.mark.parametrize("kind,layer,size", SETUPS)
def test_iscam_matches_torchcam(kind: str, layer: str, size: int) -> None:
    model = parity_model(kind)
    x = structured_images(2, size, seed=3)
    res = ISCAM(model, layer, num_samples=3, batch_size=4096).explain(x)
    peer = torchcam_maps(tcm.ISCAM, model, layer, x, res.targets.tolist(), num_samples=3, batch_size=4096)
    assert assert_maps_match(res.low_res, torch.relu(peer), min_corr=0.999) == 2


@pytest.mark.parametrize("kind,layer,size", SETUPS)
def test_sscam_matches_torchcam_with_its_seed(kind: str, layer: str, size: int) -> None:
    model = parity_model(kind)
    for x in structured_images(2, size, seed=3).split(1):  # torchcam draws (B, C, H, W): ours for one image
        res = SSCAM(model, layer, num_samples=2, std=0.5, seed=7, batch_size=100).explain(x)
        torch.manual_seed(7)  # torchcam draws from the global generator
        peer = torchcam_maps(tcm.SSCAM, model, layer, x, res.targets.tolist(), num_samples=2, std=0.5, batch_size=64)
        assert assert_maps_match(res.low_res, torch.relu(peer), min_corr=0.999) == 1


def test_the_variants_are_chunked_seeded_and_leave_the_global_stream_alone() -> None:
    model = parity_model("vgg")
    x = parity_batches(32)[0]
    state = torch.get_rng_state()
    one = SSCAM(model, "features.9", num_samples=2, batch_size=4096)(x)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(SSCAM(model, "features.9", num_samples=2, batch_size=5)(x), one)
    torch.testing.assert_close(SSCAM(model, "features.9", num_samples=2)(x[1:2]), one[1:2])  # not its batch's
    exact = ISCAM(model, "features.9", num_samples=3, batch_size=4096)(x)
    torch.testing.assert_close(ISCAM(model, "features.9", num_samples=3, batch_size=7)(x), exact)
    out = MethodGroup({"iscam": ISCAM(model, "features.9", num_samples=3),
                       "scorecam": ScoreCAM(model, "features.9")}).explain(x)
    torch.testing.assert_close(out["iscam"].maps, exact)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        ISCAM(model, "features.9", num_samples=0)
    with pytest.raises(ValueError, match="std"):
        SSCAM(model, "features.9", std=-1.0)
