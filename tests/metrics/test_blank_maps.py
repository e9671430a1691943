"""A blank map is a counted fault, never a score: on a model trained on Shapes, an all-zero method and
Fake-CAM both score far below Grad-CAM on ADCC (the all-zero one because every sample is skipped)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lightning_cam.evaluate import evaluate_batch
from lightning_cam.methods import FakeCAM, GradCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.metrics import default_metrics, metric_spec
from lightning_cam.models import GAPClassifier
from tests.helpers import trained_shapes_model


class ZeroCAM(GradCAM):
    """A broken method: an all-zero map (what a ViT block output gives, or a dead layer)."""

    def raw_map(self, cap: Capture) -> Tensor:
        return torch.zeros(cap.activations.shape[0], *cap.activations.shape[2:])


def test_blank_samples_get_nan_in_every_metric() -> None:
    model = GAPClassifier(num_classes=3, channels=(4, 8)).eval()
    x = torch.randn(3, 3, 16, 16)
    res = ZeroCAM(model, model.cam_target_layer).explain(x)
    assert res.blank.tolist() == [True] * 3 and "constant map" in res.blank_reason
    values = evaluate_batch(ZeroCAM(model, model.cam_target_layer), x, metrics=default_metrics())
    assert all(bool(torch.isnan(v).all()) for v in values.values())


@pytest.mark.slow
def test_zero_map_and_fake_cam_score_far_below_gradcam_on_a_trained_model() -> None:
    model, xv, yv = trained_shapes_model(num_val=64)
    scores, skipped = {}, {}
    for method in (GradCAM, FakeCAM, ZeroCAM):
        cam = method(model, model.cam_target_layer)
        adcc = metric_spec("adcc").metric()
        adcc.update(evaluate_batch(cam, xv, yv, metrics=default_metrics())["adcc"])
        with pytest.warns(UserWarning) if method is ZeroCAM else _nothing():
            scores[method.__name__] = float(adcc.compute())
        skipped[method.__name__] = int(adcc.num_skipped)
    assert scores["GradCAM"] > 0.5, scores
    assert scores["FakeCAM"] < 0.05 and scores["ZeroCAM"] < 0.05, scores  # the blank map no longer scores ~0.75
    assert skipped == {"GradCAM": 0, "FakeCAM": 0, "ZeroCAM": 64}, skipped


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_1x1_grid_is_named_as_the_cause_not_untrained_weights() -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    res = GradCAM(model, "layer4").explain(x)  # layer4 is 1x1 at 32 px
    assert bool(res.blank.all()) and "has a 1x1 grid at this input size" in res.blank_reason
    assert "untrained" not in res.blank_reason
    auto = GradCAM(model).explain(x)  # the rule skips it: layer3 has a 2x2 grid
    assert auto.low_res.shape[-2:] == (2, 2)
