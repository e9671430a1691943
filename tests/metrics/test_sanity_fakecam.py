"""The sanity claim of Poppi et al. (CVPRW 2021) on a model trained on the built-in Shapes data:
Fake-CAM (all ones but one pixel) scores at least as well as Grad-CAM on Average Drop and Increase in
Confidence, yet clearly worse on ADCC, which also weighs coherency and complexity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_cam.data import ShapesDataset
from lightning_cam.evaluate import evaluate_batch
from lightning_cam.methods import FakeCAM, GradCAM
from lightning_cam.metrics import METRICS
from lightning_cam.metrics.names import DEFAULT_METRICS
from lightning_cam.models import GAPClassifier


@pytest.mark.slow
def test_fake_cam_fools_drop_and_increase_but_not_adcc() -> None:
    torch.manual_seed(0)
    train = ShapesDataset(num_samples=1000, image_size=24, seed=0)
    val = ShapesDataset(num_samples=128, image_size=24, seed=1)
    x, y = train.normalize(train.images), train.labels
    xv, yv = val.normalize(val.images), val.labels
    model = GAPClassifier(num_classes=5, channels=(16, 32, 32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(xv).argmax(1) == yv).float().mean().item()
    assert accuracy > 0.8, f"the premise needs a trained model, got val accuracy {accuracy:.2f}"

    scores = {}
    for method in (GradCAM, FakeCAM):
        cam = method(model, target_layer=model.cam_target_layer)
        metrics = {name: METRICS[name]() for name in DEFAULT_METRICS}
        for i in range(0, len(xv), 64):  # two batches, accumulated like the callback does
            values = evaluate_batch(cam, xv[i : i + 64], yv[i : i + 64], metrics=DEFAULT_METRICS)
            for name, metric in metrics.items():
                metric.update(values[name])
        scores[method.__name__] = {name: metric.compute().item() for name, metric in metrics.items()}
    grad, fake = scores["GradCAM"], scores["FakeCAM"]

    assert fake["average_drop"] <= grad["average_drop"], scores  # lower is better: Fake-CAM "wins"
    assert fake["increase"] >= grad["increase"], scores  # higher is better: Fake-CAM "wins"
    assert fake["complexity"] > 0.99 and fake["coherency"] > 0.99, scores
    assert fake["adcc"] < 0.05 and grad["adcc"] > 0.5, scores  # ADCC sees through it
