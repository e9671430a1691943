"""The randomisation checks through evaluate_batch, against Quantus 0.6's MPRT and RandomLogit with the same CAM
method as their explain function; the twin is made once per state of the weights and never touches the training's
random stream."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lightning_cam import evaluate_batch
from lightning_cam.functional.pairs import other_classes
from lightning_cam.functional.randomization import spearman, ssim_1d
from lightning_cam.methods import EigenCAM, GradCAM
from lightning_cam.utilities.randomize import randomizable_layers, randomized_copy, randomized_twin, release_twins
from tests.methods.conftest import make_vgg, structured_images

quantus = pytest.importorskip("quantus")

LAYER = "features.9"


def explain_with(method: type) -> Any:
    """A Quantus explain function: our method on whatever model Quantus hands it (its randomised copies)."""
    calls: list[np.ndarray] = []

    def explain(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> np.ndarray:
        calls.append(np.asarray(targets).copy())
        maps = method(model, LAYER)(torch.as_tensor(inputs), torch.as_tensor(targets).long())
        return maps[:, None].numpy()

    explain.calls = calls  # type: ignore[attr-defined]
    return explain


def quantus_mprt(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, method: type,
                 **kwargs: Any) -> Any:
    metric = quantus.MPRT(seed=42, disable_warnings=True, display_progressbar=False, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metric(model=model, x_batch=x.numpy(), y_batch=targets.numpy(), a_batch=maps[:, None].numpy(),
                      explain_func=explain_with(method), device="cpu", batch_size=x.shape[0])


@pytest.mark.parametrize("method", [GradCAM, EigenCAM])
def test_cascading_randomization_equals_quantus_mprt(method: type) -> None:
    model = make_vgg()
    x = structured_images(4, 32, seed=2)
    cam = method(model, LAYER)
    res = cam.explain(x)
    ours = evaluate_batch(cam, x, res.targets, metrics=["randomization"], result=res)["randomization"]
    peer = quantus_mprt(model, x, res.targets, res.maps, method, layer_order="top_down",
                        return_last_correlation=True)
    np.testing.assert_allclose(ours.numpy(), np.asarray(peer), atol=1e-5)


def test_independent_randomization_equals_quantus_per_layer() -> None:
    model = make_vgg()
    x = structured_images(3, 32, seed=4)
    cam = GradCAM(model, LAYER)
    res = cam.explain(x)
    peer = quantus_mprt(model, x, res.targets, res.maps, GradCAM, layer_order="independent")
    names = [name for name, _ in randomizable_layers(model)]  # Quantus's independent order: bottom up
    for k in (1, 2, 3):
        ours = evaluate_batch(cam, x, res.targets, metrics=["randomization"], result=res,
                              randomization="independent", randomization_layers=k)["randomization"]
        np.testing.assert_allclose(ours.numpy(), np.asarray(peer[names[-k]]), atol=1e-5, err_msg=names[-k])


def test_random_logit_equals_quantus_on_the_same_other_classes() -> None:
    model = make_vgg()
    x = structured_images(5, 32, seed=6)
    cam = GradCAM(model, LAYER)
    res = cam.explain(x)
    explain = explain_with(GradCAM)
    metric = quantus.RandomLogit(num_classes=5, seed=42, disable_warnings=True, display_progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = metric(model=model, x_batch=x.numpy(), y_batch=res.targets.numpy(), a_batch=res.maps[:, None].numpy(),
                      explain_func=explain, device="cpu", batch_size=5)
    off = torch.as_tensor(explain.calls[-1]).long()  # the classes Quantus drew
    assert bool((off != res.targets).all())
    np.testing.assert_allclose(ssim_1d(res.maps, cam(x, off)).numpy(), np.asarray(peer), atol=1e-5)
    # through evaluate_batch: the same similarity, with the other class of each target's fixed table
    ours = evaluate_batch(cam, x, res.targets, metrics=["random_logit"], result=res)["random_logit"]
    expected = ssim_1d(res.maps, cam(x, other_classes(res.targets, 5, seed=42)))
    torch.testing.assert_close(ours, expected)


def test_the_twin_is_made_once_per_weights_and_leaves_training_alone() -> None:
    model = make_vgg()
    cam = GradCAM(model, LAYER)
    x = structured_images(2, 32, seed=1)
    state = torch.get_rng_state()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    twin = randomized_twin(cam)
    assert randomized_twin(cam) is twin  # the next batch of the same validation
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert twin.target_layer is twin.model.get_submodule(LAYER) and twin.model is not model
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        model.fc.weight.add_(0.01)  # an optimizer step
    assert randomized_twin(cam) is not twin
    release_twins()
    values = evaluate_batch(cam, x, metrics=["randomization", "random_logit"])
    assert set(values) == {"randomization", "random_logit"} and bool(torch.isfinite(values["randomization"]).all())
    torch.testing.assert_close(values["randomization"],
                               spearman(cam(x), randomized_twin(cam).explain(x, cam.explain(x).targets).maps))


def test_options_are_checked_and_sharded_models_refused() -> None:
    model = make_vgg()
    cam = GradCAM(model, LAYER)
    x = structured_images(2, 32)
    with pytest.raises(ValueError, match="`randomization` must be"):
        evaluate_batch(cam, x, metrics=["randomization"], randomization="top_down")
    with pytest.raises(ValueError, match="randomization_layers"):
        evaluate_batch(cam, x, metrics=["randomization"], randomization_layers=0)
    with pytest.raises(ValueError, match="has 6 layers"):
        randomized_copy(model, "independent", 7)
    fake = make_vgg()
    fake.fc.weight.ds_id = 1  # what DeepSpeed ZeRO-3 marks its parameters with
    with pytest.raises(ValueError, match="sharded"):
        randomized_copy(fake)


def test_through_the_callback_once_per_validation(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import math

    import pytorch_lightning as pl
    from pytorch_lightning.loggers import TensorBoardLogger

    import lightning_cam.utilities.randomize as randomize
    from lightning_cam import CAMCallback
    from lightning_cam.data import ShapesDataModule
    from lightning_cam.models import GAPClassifier
    from tests.helpers import events

    made: list[int] = []
    real = randomize.randomized_copy
    monkeypatch.setattr(randomize, "randomized_copy", lambda *a, **k: made.append(1) or real(*a, **k))
    dm = ShapesDataModule(num_train=32, num_val=32, image_size=32, batch_size=8, seed=0)
    torch.manual_seed(0)
    model = GAPClassifier(num_classes=5, channels=(8, 16), class_names=dm.class_names, mean=dm.hparams.mean,
                          std=dm.hparams.std)
    cb = CAMCallback(methods=("gradcam", "eigencam"), metrics=("randomization", "random_logit"), num_images=2,
                     on_error="raise", progress=False)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, logger=TensorBoardLogger(tmp_path), callbacks=[cb],
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         num_sanity_val_steps=0)
    trainer.fit(model, dm)
    assert len(made) == 2 * 2  # one copy per method per validation run (4 batches each), not one per batch
    assert len(randomize._TWINS) == 0  # freed when each run ended
    acc = events(trainer.logger.log_dir)  # type: ignore[union-attr]
    for method in ("gradcam", "eigencam"):
        for metric in ("randomization", "random_logit"):
            values = [e.value for e in acc.Scalars(f"cam/{method}/{metric}")]
            assert len(values) == 2 and all(math.isfinite(v) for v in values), (method, metric)
    # Eigen-CAM does not depend on the class: the same map for any other class
    assert acc.Scalars("cam/eigencam/random_logit")[-1].value == pytest.approx(1.0, abs=1e-5)


def test_a_segmentation_pair_keeps_its_region_on_the_twin() -> None:
    """The randomised copy predicts the class nowhere: each pair is scored against its region of the original output
    (as the masked-image pass is), so every pair gets a value."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 3, 1)).eval()
    x = structured_images(4, 16, seed=3)
    cam = GradCAM(net, "3", task="segmentation")
    values = evaluate_batch(cam, x, metrics=["randomization", "random_logit"])
    assert values["randomization"].numel() > 4 and bool(torch.isfinite(values["randomization"]).all())
    assert bool(torch.isfinite(values["random_logit"]).all())


def test_a_constant_map_of_the_copy_scores_0_not_nan() -> None:
    """A randomised copy often explains nothing (a constant map): no order in common with the map, 0 (Quantus: NaN,
    which the callback would count as a fault)."""
    from lightning_cam.metrics.registry import MetricInputs, metric_spec

    maps = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    twin = maps.clone()
    twin[1] = 0.0
    inputs = MetricInputs(maps, torch.ones(3), randomized=lambda: twin)
    values = metric_spec("randomization").compute(inputs)
    assert values.tolist() == pytest.approx([1.0, 0.0, 1.0])


def test_only_the_metrics_that_copy_the_model_are_left_out_of_a_sharded_run() -> None:
    from lightning_cam.metrics.registry import METRIC_REGISTRY, metric_spec

    left = sorted(name for name in METRIC_REGISTRY.names() if not metric_spec(name).shardable)
    assert left == ["randomization"]
