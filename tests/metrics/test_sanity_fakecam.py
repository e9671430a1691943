"""The sanity claim of Poppi et al. (CVPRW 2021) on a model trained on the built-in Shapes data:
Fake-CAM (all ones but one pixel) scores at least as well as Grad-CAM on Average Drop and Increase in
Confidence, yet clearly worse on ADCC, which also weighs coherency and complexity."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.evaluate import evaluate_batch
from lightning_cam.methods import FakeCAM, GradCAM
from lightning_cam.metrics import default_metrics, metric_spec
from tests.helpers import trained_shapes_model


@pytest.mark.slow
def test_fake_cam_fools_drop_and_increase_but_not_adcc() -> None:
    model, xv, yv = trained_shapes_model(num_val=128)
    with torch.no_grad():
        accuracy = (model(xv).argmax(1) == yv).float().mean().item()
    assert accuracy > 0.8, f"the premise needs a trained model, got val accuracy {accuracy:.2f}"

    scores = {}
    for method in (GradCAM, FakeCAM):
        cam = method(model, target_layer=model.cam_target_layer)
        metrics = {name: metric_spec(name).metric() for name in default_metrics()}
        for i in range(0, len(xv), 64):  # two batches, accumulated like the callback does
            values = evaluate_batch(cam, xv[i : i + 64], yv[i : i + 64], metrics=default_metrics())
            for name, metric in metrics.items():
                metric.update(values[name])
        scores[method.__name__] = {name: metric.compute().item() for name, metric in metrics.items()}
    grad, fake = scores["GradCAM"], scores["FakeCAM"]

    assert fake["average_drop"] <= grad["average_drop"], scores  # lower is better: Fake-CAM "wins"
    assert fake["increase"] >= grad["increase"], scores  # higher is better: Fake-CAM "wins"
    assert fake["complexity"] > 0.99 and fake["coherency"] > 0.99, scores
    assert fake["adcc"] < 0.05 and grad["adcc"] > 0.5, scores  # ADCC sees through it
