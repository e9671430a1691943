"""evaluate_batch: the fewest passes, agreement with torchcam/grad-cam on the same maps, every method,
edge cases and option validation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.arcc import Coherency as GCCoherency
from torch import nn
from torchcam.metrics import ClassificationMetric, DeletionInsertionMetric

from lightning_cam.evaluate import evaluate_batch
from lightning_cam.functional.perturbation import make_baseline
from lightning_cam.methods import GradCAM, get_method
from lightning_cam.metrics.registry import default_metrics, metric_names
from lightning_cam.targets.task import target_probability
from tests.helpers import cnn_methods

H = W = 16


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).eval()


def _images(b: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, 3, H, W, generator=torch.Generator().manual_seed(seed))


class _Counter:
    """Counts forwards of a model and the batch size of each."""

    def __init__(self, model: nn.Module) -> None:
        self.sizes: list[int] = []
        self.handle = model.register_forward_hook(lambda m, i, o: self.sizes.append(i[0].shape[0]))


def _gradcam(net: nn.Module):
    return get_method("gradcam")(net, target_layer="3")


# --- passes --------------------------------------------------------------------------------------------


def test_adcc_uses_exactly_two_forwards_and_two_cam_calls() -> None:
    net, x = _net(), _images()
    cam = _gradcam(net)
    calls: list[int] = []
    explain = cam.explain
    cam.explain = lambda imgs, targets=None: (calls.append(imgs.shape[0]), explain(imgs, targets))[1]  # type: ignore[method-assign]
    counter = _Counter(net)
    values = evaluate_batch(cam, x, metrics=default_metrics())
    assert counter.sizes == [4, 4] and calls == [4, 4]
    assert list(values) == list(default_metrics())


def test_result_reuse_and_skipped_second_pass() -> None:
    net, x = _net(), _images()
    cam = _gradcam(net)
    result = cam.explain(x)
    counter = _Counter(net)
    evaluate_batch(cam, x, metrics=("complexity",), result=result)
    assert counter.sizes == []  # complexity needs no pass at all
    evaluate_batch(cam, x, metrics=("average_drop", "increase"), result=result)
    assert counter.sizes == [4]  # one plain forward on x ⊙ map, no CAM call
    counter.sizes.clear()
    evaluate_batch(cam, x, masks=torch.ones(4, H, W, dtype=torch.bool),
                   metrics=("pointing_game", "energy_pointing_game", "iou"), result=result)
    assert counter.sizes == []


def test_insertion_deletion_forwards_respect_batch_cap() -> None:
    net, x = _net(), _images(3)
    cam = _gradcam(net)
    result = cam.explain(x)
    counter = _Counter(net)
    evaluate_batch(cam, x, metrics=("insertion", "deletion"), result=result, steps=4, batch_size=5)
    # counts 0,64,128,192,256: per sample 1 shared baseline + 3 deletion + 3 insertion = 7 -> 21 images
    assert counter.sizes == [5, 5, 5, 5, 1]
    counter.sizes.clear()
    evaluate_batch(cam, x, metrics=("insertion",), result=result, steps=4, batch_size=64)
    assert counter.sizes == [12]  # 1 + 3 per sample when only insertion is asked


# --- values against hand computation and peer libraries ---------------------------------------------


def test_values_match_the_definitions_step_by_step() -> None:
    net, x = _net(), _images()
    cam = _gradcam(net)
    values = evaluate_batch(cam, x, metrics=default_metrics())
    first = cam.explain(x)
    second = cam.explain(x * first.maps.unsqueeze(1), first.targets)
    y = torch.softmax(first.logits, 1).gather(1, first.targets[:, None])[:, 0]
    o = torch.softmax(second.logits, 1).gather(1, first.targets[:, None])[:, 0]
    drop = 100 * torch.clamp(y - o, min=0) / y
    a, b = first.maps.flatten(1), second.maps.flatten(1)
    rho = torch.tensor(np.array([np.corrcoef(a[i].numpy(), b[i].numpy())[0, 1] for i in range(4)]), dtype=torch.float32)
    coh = (rho + 1) / 2
    cplx = first.maps.flatten(1).mean(1)
    torch.testing.assert_close(values["average_drop"], drop)
    torch.testing.assert_close(values["increase"], 100 * (o > y).float())
    torch.testing.assert_close(values["coherency"], coh, atol=1e-6, rtol=0)
    torch.testing.assert_close(values["complexity"], cplx)
    torch.testing.assert_close(values["adcc"], 3 / (1 / coh + 1 / (1 - cplx) + 1 / (1 - drop / 100)), atol=1e-6, rtol=0)


class _FixedMaps:
    """A torchcam CAM-extractor stand-in that hands torchcam *our* maps, so both score the same maps."""

    def __init__(self, model: nn.Module, maps: torch.Tensor) -> None:
        self.model, self.maps = model, maps

    def __call__(self, class_idx=None, scores=None, normalized=True, **_):
        return [self.maps]

    def fuse_cams(self, cams: list[torch.Tensor]) -> torch.Tensor:
        return cams[0]

    @contextmanager
    def _hooks_off(self) -> Iterator[None]:
        yield


def test_average_drop_and_increase_equal_torchcam_on_the_same_maps() -> None:
    net, x = _net(2), _images(8, seed=3)
    cam = _gradcam(net)
    result = cam.explain(x, torch.arange(8) % 4)  # every class, so confidence drops for some, grows for others
    ours = evaluate_batch(cam, x, metrics=("average_drop", "increase"), result=result)
    ref = ClassificationMetric(_FixedMaps(net, result.maps), partial(torch.softmax, dim=-1))
    ref.update(x, class_idx=result.targets.tolist())
    summary = ref.summary()
    # Documented difference: torchcam divides by Y_c + 1e-7 and reports fractions.
    y = target_probability(result.logits, result.targets)
    torch.testing.assert_close((ours["average_drop"] / 100 * y / (y + 1e-7)).mean(), torch.tensor(summary["avg_drop"]))
    assert ours["increase"].mean().item() == pytest.approx(100 * summary["conf_increase"], abs=0)
    assert 0 < summary["avg_drop"] and 0 < ours["increase"].mean() < 100  # a case that can fail either way


@pytest.mark.parametrize("baseline", ["zeros", "mean", "blur"])
def test_insertion_deletion_equal_torchcam_on_the_same_maps(baseline: str) -> None:
    net, x = _net(5), _images(3, seed=6)
    cam = _gradcam(net)
    result = cam.explain(x)
    ours = evaluate_batch(cam, x, metrics=("insertion", "deletion"), result=result, steps=5, baseline=baseline,
                          batch_size=8)
    ref = DeletionInsertionMetric(_FixedMaps(net, result.maps), partial(torch.softmax, dim=-1), steps=5,
                                  baseline=None if baseline == "zeros" else partial(make_baseline, baseline=baseline),
                                  batch_size=8)
    ref.update(x, class_idx=result.targets.tolist())
    summary = ref.summary()
    torch.testing.assert_close(ours["insertion"].mean(), torch.tensor(summary["insertion_auc"], dtype=torch.float32))
    torch.testing.assert_close(ours["deletion"].mean(), torch.tensor(summary["deletion_auc"], dtype=torch.float32))
    assert ours["insertion"].std() > 0  # samples differ, so the comparison is not trivially constant


def test_coherency_equals_grad_cam_coherency_with_our_method() -> None:
    net, x = _net(7), _images(4, seed=8)
    cam = _gradcam(net)
    result = cam.explain(x)
    ours = evaluate_batch(cam, x, metrics=("coherency",), result=result)

    def base_method(input_tensor: torch.Tensor, targets: list) -> np.ndarray:  # grad-cam's calling convention
        return cam(input_tensor, torch.tensor(targets)).numpy()

    ref = GCCoherency()(x, result.maps.numpy(), result.targets.tolist(), net, base_method)
    torch.testing.assert_close(ours["coherency"], torch.from_numpy(np.clip(ref, 0, 1)).float(), atol=1e-6, rtol=0)
    assert ours["coherency"].min() < 0.99  # not the trivial all-ones case


# --- every method, edges --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", cnn_methods())
def test_every_method_gives_finite_values_in_range(name: str) -> None:
    net, x = _net(), _images(2)
    kwargs = {"batch_size": 16} if name == "scorecam" else {}
    cam = get_method(name)(net, target_layer="3", **kwargs)
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True
    with torch.no_grad():
        values = evaluate_batch(cam, x, masks=masks, metrics=metric_names(), steps=2, batch_size=8)
    assert list(values) == list(metric_names())
    for key, v in values.items():
        assert v.shape == (2,) and v.dtype == torch.float32 and torch.isfinite(v).all(), key
        upper = 100.0 if key in ("average_drop", "increase") else 1.0
        # ROAD: changes of probability; the randomisation checks: correlations and similarities
        lower = -1.0 if key.startswith("road") or key in ("randomization", "random_logit") else 0.0
        assert (v >= lower).all() and (v <= upper).all(), key
    if name == "fakecam":
        torch.testing.assert_close(values["complexity"], torch.full((2,), 1 - 1 / (H * W)))
        torch.testing.assert_close(values["coherency"], torch.ones(2))


def test_inference_mode_caller_and_device_dtype() -> None:
    net, x = _net(), _images(2)
    cam = _gradcam(net)
    with torch.inference_mode():
        values = evaluate_batch(cam, x, metrics=default_metrics())
    assert all(torch.isfinite(v).all() for v in values.values())
    assert not any(p.grad is not None for p in net.parameters())


def test_nan_map_marks_only_that_sample() -> None:
    net, x = _net(), _images(3)
    cam = _gradcam(net)
    result = cam.explain(x)
    result.maps[1, 3, 3] = float("nan")
    masks = torch.ones(3, H, W, dtype=torch.bool)
    masks[:, :, 0] = False  # some background: the AUC of a mask covering the whole image is undefined (NaN)
    values = evaluate_batch(cam, x, masks=masks, metrics=metric_names(), result=result, steps=2)
    for key, v in values.items():
        assert torch.isnan(v[1]) and torch.isfinite(v[[0, 2]]).all(), key


def test_zero_maps_are_finite() -> None:
    net, x = _net(), _images(2)
    cam = _gradcam(net)
    result = cam.explain(x)
    result.maps.zero_()
    values = evaluate_batch(cam, x, metrics=default_metrics(), result=result)
    assert all(torch.isfinite(v).all() for v in values.values())
    torch.testing.assert_close(values["complexity"], torch.zeros(2))


def test_boxes_stand_in_for_masks() -> None:
    net, x = _net(), _images(2)
    cam = _gradcam(net)
    result = cam.explain(x)
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[0, 2:9, 3:12] = True
    masks[1, 8:16, 0:5] = True
    boxes = torch.tensor([[3.0, 2.0, 12.0, 9.0], [0.0, 8.0, 5.0, 16.0]])
    names = ("pointing_game", "energy_pointing_game", "iou")
    a = evaluate_batch(cam, x, masks=masks, metrics=names, result=result, threshold=0.3)
    b = evaluate_batch(cam, x, boxes=boxes, metrics=names, result=result, threshold=0.3)
    for k in names:
        torch.testing.assert_close(a[k], b[k])


def test_explicit_targets_are_explained() -> None:
    net, x = _net(), _images(2)
    cam = _gradcam(net)
    result = cam.explain(x, torch.tensor([3, 3]))
    v1 = evaluate_batch(cam, x, targets=torch.tensor([3, 3]), metrics=("average_drop",))
    v2 = evaluate_batch(cam, x, targets=3, metrics=("average_drop",), result=result)
    torch.testing.assert_close(v1["average_drop"], v2["average_drop"])


# --- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"metrics": ("adcc", "acc")}, ValueError, r"unknown metric.*'acc'.*valid names.*average_drop"),
        ({"metrics": ()}, ValueError, "no metric"),
        ({"metrics": ("adcc", "iou", "adcc")}, ValueError, "lists a metric twice"),
        ({"metrics": ("insertion",), "steps": 0}, ValueError, "steps.*>= 1"),
        ({"steps": 2.5}, ValueError, "steps"),
        ({"threshold": 1.0}, ValueError, r"threshold.*\(0, 1\)"),
        ({"threshold": 0}, ValueError, r"threshold.*\(0, 1\)"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"baseline": "noise"}, ValueError, "unknown baseline.*zeros"),
        ({"tolerance": -1}, ValueError, "tolerance"),
        ({"stpes": 3}, TypeError, r"unknown option.*stpes.*valid options"),
        ({"metrics": ("iou",)}, ValueError, "need ground truth.*masks.*boxes"),
        ({"metrics": ("pointing_game",), "masks": torch.ones(2, 8, 8, dtype=torch.bool)}, ValueError, "masks"),
        ({"targets": torch.tensor([0.0, 1.0])}, ValueError, "targets"),
    ],
)
def test_bad_options_are_clear_errors(kwargs: dict, error: type, match: str) -> None:
    net, x = _net(), _images(2)
    with pytest.raises(error, match=match):
        evaluate_batch(_gradcam(net), x, **kwargs)


def test_mismatched_result_is_a_clear_error() -> None:
    net, x = _net(), _images(2)
    cam = _gradcam(net)
    result = cam.explain(x, torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="targets"):
        evaluate_batch(cam, x, targets=torch.tensor([1, 1]), result=result)
    with pytest.raises(ValueError, match="these very images"):
        evaluate_batch(cam, _images(3), result=result)


def test_empty_batch_gives_empty_values_without_a_pass() -> None:
    net = _net()
    counter = _Counter(net)
    values = evaluate_batch(_gradcam(net), torch.zeros(0, 3, H, W), metrics=metric_names()[:5])
    assert counter.sizes == [] and all(v.shape == (0,) for v in values.values())


def test_ground_truth_is_only_checked_for_localization_metrics() -> None:
    from lightning_cam.methods import GradCAM

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    x = torch.randn(2, 3, 8, 8)
    indices = torch.tensor([5, 6])  # a third tuple item that is not a mask
    values = evaluate_batch(GradCAM(net, "1"), x, masks=indices, metrics=("complexity",))
    assert values["complexity"].shape == (2,)
    with pytest.raises(ValueError, match="`masks` must be"):
        evaluate_batch(GradCAM(net, "1"), x, masks=indices, metrics=("pointing_game",))


def test_models_returning_a_model_output_or_a_dict_are_evaluated_without_a_wrapper() -> None:
    from dataclasses import dataclass

    @dataclass
    class Out:
        logits: torch.Tensor

    class Net(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind = kind
            self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
            self.fc = nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> object:
            logits = self.fc(self.features(x).mean(dim=(2, 3)))
            return {"tensor": logits, "dict": {"logits": logits}, "output": Out(logits)}[self.kind]

    x = torch.randn(3, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    values = {}
    for kind in ("tensor", "dict", "output"):
        torch.manual_seed(0)
        values[kind] = evaluate_batch(GradCAM(Net(kind).eval()), x, metrics=("average_drop", "coherency", "insertion"),
                                      steps=4)
    for kind in ("dict", "output"):
        for name, v in values[kind].items():
            torch.testing.assert_close(v, values["tensor"][name])


class _MeanHead(nn.Module):
    """Logits from the mean pixel ``m`` of the image: ``z = w * m + b`` (a model whose answers are known)."""

    def __init__(self, w: list[float], b: list[float]) -> None:
        super().__init__()
        self.w, self.b = torch.tensor(w), torch.tensor(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))[:, None] * self.w + self.b


class _GivenMaps:
    """An explainer handing out fixed maps for a model and an output kind."""

    def __init__(self, model: nn.Module, maps: torch.Tensor, task: str) -> None:
        self.model, self.maps, self.task = model, maps, task

    def explain(self, images: torch.Tensor, targets: torch.Tensor | None = None):
        from lightning_cam.methods import CAMResult

        logits = self.model(images).detach()
        return CAMResult(self.maps[: images.shape[0]], self.maps[: images.shape[0]], logits, targets)


def _half_map(b: int, size: int = 8) -> torch.Tensor:
    maps = torch.zeros(b, size, size)
    maps[:, :, : size // 2] = 1.0
    return maps


def test_multilabel_drop_uses_the_class_sigmoid() -> None:
    # class 0's logit stays at 10 on x and on x * map; class 1's rises from 0 to 10 as the map hides half the
    # image. Class 0's sigmoid does not move (a perfect map: drop 0); its softmax halves (a 50 % "drop").
    net = _MeanHead([0.0, -20.0, 0.0], [10.0, 20.0, -5.0])
    x, maps = torch.ones(2, 3, 8, 8), _half_map(2)
    t = torch.tensor([0, 0])
    values = evaluate_batch(_GivenMaps(net, maps, "multilabel"), x, t, metrics=("average_drop", "increase"))
    assert values["average_drop"].tolist() == [0.0, 0.0] and values["increase"].tolist() == [0.0, 0.0]
    soft = evaluate_batch(_GivenMaps(net, maps, "multiclass"), x, t, metrics=("average_drop",))
    y, o = torch.softmax(torch.tensor([10.0, 0.0, -5.0]), 0)[0], torch.softmax(torch.tensor([10.0, 10.0, -5.0]), 0)[0]
    torch.testing.assert_close(soft["average_drop"], torch.full((2,), float(100 * (y - o) / y)))
    assert float(soft["average_drop"][0]) > 49.0


def test_binary_one_logit_probabilities_by_hand() -> None:
    net = _MeanHead([4.0], [-1.0])  # z = 3 on ones, 1 on the half-masked image
    x, maps = torch.ones(2, 3, 8, 8), _half_map(2)
    values = evaluate_batch(_GivenMaps(net, maps, "binary"), x, torch.tensor([1, 0]),
                            metrics=("average_drop", "increase"))
    sig = torch.sigmoid
    y1, o1 = sig(torch.tensor(3.0)), sig(torch.tensor(1.0))
    assert float(values["average_drop"][0]) == pytest.approx(float(100 * (y1 - o1) / y1), rel=1e-5)
    assert values["increase"].tolist() == [0.0, 100.0]  # class 0: 1 - sigmoid(z) rises from sig(-3) to sig(-1)
    with pytest.raises(ValueError, match="task='binary'"):
        evaluate_batch(GradCAM(nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                             nn.Flatten(), nn.Linear(2, 1)), "1"), x)


def test_multilabel_pairs_are_scored_against_their_class_masks() -> None:
    from lightning_cam.functional.localization import pointing_game

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    cam = GradCAM(net, "1", task="multilabel")
    x = _images(3, seed=11)
    hot = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 1]])
    masks = torch.rand(3, 3, *x.shape[-2:]) > 0.5
    values = evaluate_batch(cam, x, hot, masks, metrics=("pointing_game", "complexity", "average_drop"))
    res = cam.explain(x, hot)
    assert values["pointing_game"].shape == (6,)
    torch.testing.assert_close(values["pointing_game"], pointing_game(res.maps, masks[res.samples, res.targets]))
    y = target_probability(res.logits, res.targets, "multilabel")
    o = target_probability(net(x[res.samples] * res.maps[:, None]).detach(), res.targets, "multilabel")
    torch.testing.assert_close(values["average_drop"], 100 * (y - o).clamp(min=0) / y)
    with pytest.raises(ValueError, match="task='multilabel'"):
        evaluate_batch(GradCAM(net, "1"), x, hot)
