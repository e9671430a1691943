"""metrics/registry.py: every metric is one spec line; the names, the default selection, the localization set,
the classes and what evaluate_batch computes are all read from it, and a new metric needs nothing else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lightning_cam.evaluate as evaluate_module
import lightning_cam.metrics as metrics_package
import lightning_cam.metrics.registry as registry
from lightning_cam import evaluate_batch
from lightning_cam.methods import GradCAM
from lightning_cam.metrics import METRICS, PerSampleMean
from lightning_cam.metrics.registry import (
    DEFAULT_METRICS,
    LOCALIZATION_METRICS,
    METRIC_NAMES,
    METRIC_SPECS,
    MetricSpec,
    check_metric_names,
    metric_needs,
)


def test_the_lists_agree_with_each_other_and_the_classes() -> None:
    assert tuple(METRICS) == METRIC_NAMES and len(set(METRIC_NAMES)) == len(METRIC_NAMES) == 10
    assert DEFAULT_METRICS == ("average_drop", "increase", "coherency", "complexity", "adcc")
    assert set(DEFAULT_METRICS) <= set(METRIC_NAMES) and LOCALIZATION_METRICS <= set(METRIC_NAMES)
    assert LOCALIZATION_METRICS == {"pointing_game", "energy_pointing_game", "iou"}
    assert isinstance(LOCALIZATION_METRICS, frozenset)


def test_the_lists_have_one_home() -> None:
    assert metrics_package.METRIC_NAMES is METRIC_NAMES and metrics_package.DEFAULT_METRICS is DEFAULT_METRICS
    assert all(METRICS[name] is spec.metric for name, spec in METRIC_SPECS.items())
    assert not hasattr(evaluate_module, "METRIC_NAMES") and not hasattr(evaluate_module, "ADCC_METRICS")
    assert evaluate_module.evaluate_batch.__defaults__ is not None
    assert DEFAULT_METRICS in evaluate_module.evaluate_batch.__defaults__


def test_check_metric_names_keeps_the_order_given() -> None:
    assert check_metric_names("iou") == ("iou",)
    assert check_metric_names(["adcc", "average_drop"]) == ("adcc", "average_drop")


@pytest.mark.parametrize(
    ("metrics", "match"),
    [
        (("adcc", "acc"), r"unknown metric.*'acc'.*valid names are \['average_drop'"),
        ((), "no metric requested; choose from"),
        (("adcc", "iou", "adcc"), r"`metrics` lists a metric twice: \['adcc', 'iou', 'adcc'\]; list each"),
    ],
)
def test_bad_selections_are_clear_errors(metrics: tuple[str, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_metric_names(metrics)


def test_requires_come_first_and_needs_combine() -> None:
    specs, needs = metric_needs(["adcc", "iou"])
    assert [s.name for s in specs] == ["average_drop", "coherency", "complexity", "adcc", "iou"]
    assert needs == {"masked", "remap", "truth"}
    assert metric_needs(["complexity"])[1] == frozenset()


def test_a_spec_with_an_unknown_need_is_refused() -> None:
    with pytest.raises(ValueError, match=r"needs \['gpu'\]"):
        MetricSpec("x", PerSampleMean, lambda m: m.maps.mean((1, 2)), frozenset({"gpu"}))


def test_a_new_metric_is_one_spec_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented extension: a formula and one spec; evaluate_batch computes it with the passes it needs."""

    def peak_drop(m: registry.MetricInputs) -> torch.Tensor:  # the "functional": O_c - Y_c
        return m.need("masked_probs") - m.probs

    spec = MetricSpec("peak_drop", PerSampleMean, peak_drop, frozenset({"masked"}))
    monkeypatch.setitem(METRIC_SPECS, "peak_drop", spec)
    with torch.random.fork_rng():  # fixed weights whatever ran before (an unlucky draw gives blank maps: NaN)
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(4, 3))
    cam = GradCAM(net, "1")
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    got = evaluate_batch(cam, x, metrics=("peak_drop", "average_drop"))
    assert torch.isfinite(got["peak_drop"]).all()
    result = cam.explain(x)
    logits = net(x * result.maps[:, None])
    expected = logits.softmax(1).gather(1, result.targets[:, None])[:, 0] - result.logits.softmax(1).gather(
        1, result.targets[:, None])[:, 0]
    torch.testing.assert_close(got["peak_drop"], expected, atol=1e-5, rtol=1e-4)
    metric = spec.metric()
    metric.update(got["peak_drop"])
    torch.testing.assert_close(metric.compute(), expected.mean(), atol=1e-5, rtol=1e-4)
