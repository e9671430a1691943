"""Every registered method honours the call contract on a ResNet-18 and a small VGG."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.methods import get_method
from tests.helpers import MethodOptions, cnn_methods

from .conftest import structured_images

KW = MethodOptions({"scorecam": {"batch_size": 128, "top_k": 16}, "smoothgradcam_pp": {"num_samples": 2},
                    "sscam": {"num_samples": 1, "batch_size": 512}, "iscam": {"num_samples": 1, "batch_size": 512},
                    "ablationcam": {"batch_size": 512}})


@pytest.mark.parametrize("name", cnn_methods())
@pytest.mark.parametrize("model_name,layer", [("resnet", "layer4"), ("vgg", "features.9")])
def test_contract(name: str, model_name: str, layer: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(model_name)
    x = structured_images(3, 32, seed=1)
    res = get_method(name)(model, layer, **KW.of(name)).explain(x)
    assert res.maps.shape == (3, 32, 32) and res.maps.dtype == torch.float32
    assert res.maps.device == x.device
    assert torch.isfinite(res.maps).all()
    assert res.maps.min() >= 0 and res.maps.max() <= 1
    assert res.low_res.ndim == 3 and res.low_res.dtype == torch.float32 and (res.low_res >= 0).all()
    assert res.logits.shape == (3, model.fc.out_features) and not res.logits.requires_grad
    assert res.logits.dtype == torch.float32
    with torch.no_grad():
        expected = model(x).argmax(1)
    assert torch.equal(res.targets, expected)
