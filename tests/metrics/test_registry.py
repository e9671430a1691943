"""metrics/registry.py: every metric registers itself with its class; the names, the default selection, the
localization set, the classes and what evaluate_batch computes are all read from the registry when asked, and a
metric registered later (a user's file) works everywhere."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lightning_cam.evaluate as evaluate_module
from lightning_cam import evaluate_batch
from lightning_cam.methods import GradCAM
from lightning_cam.metrics import ADCC, PerSampleMean
from lightning_cam.metrics.registry import (
    METRIC_REGISTRY,
    MetricInputs,
    MetricSpec,
    check_metric_names,
    default_metrics,
    localization_metrics,
    metric_names,
    metric_needs,
    metric_spec,
    register_metric,
)


def test_the_lists_agree_with_each_other_and_the_classes() -> None:
    assert metric_names() == (  # the design table's, then the modules loaded after it, in name order
        "average_drop", "increase", "coherency", "complexity", "adcc", "insertion", "deletion", "pointing_game",
        "energy_pointing_game", "iou", "randomization", "random_logit", "relevance_mass_accuracy",
        "relevance_rank_accuracy", "top_k_intersection", "attribution_localisation", "auc", "road_morf", "road_lerf",
        "road", "arcc",
    )
    assert default_metrics() == ("average_drop", "increase", "coherency", "complexity", "adcc")
    assert set(default_metrics()) <= set(metric_names()) and localization_metrics() <= set(metric_names())
    assert localization_metrics() == {"pointing_game", "energy_pointing_game", "iou", "relevance_mass_accuracy",
                                      "relevance_rank_accuracy", "top_k_intersection", "attribution_localisation",
                                      "auc"}
    assert metric_spec("adcc").metric is ADCC


def test_the_lists_are_computed_when_asked() -> None:
    assert not hasattr(evaluate_module, "METRIC_NAMES") and not hasattr(evaluate_module, "ADCC_METRICS")
    assert evaluate_module.evaluate_batch.__kwdefaults__ is None or "metrics" not in (
        evaluate_module.evaluate_batch.__kwdefaults__ or {})
    assert check_metric_names(None) == default_metrics()  # None: the defaults, read now

    @register_metric("late_default", compute=lambda m: m.maps.mean((1, 2)), default=True)
    class LateDefault(PerSampleMean):
        higher_is_better = False

    try:
        assert default_metrics()[-1] == "late_default" and "late_default" in metric_names()
    finally:
        METRIC_REGISTRY.remove("late_default")
    assert "late_default" not in default_metrics()


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


def test_a_new_metric_is_one_decorated_class() -> None:
    """The documented extension: a formula and one decorated class; evaluate_batch computes it with the passes it
    needs."""

    def peak_drop(m: MetricInputs) -> torch.Tensor:  # the "functional": O_c - Y_c
        return m.need("masked_probs") - m.probs

    @register_metric("peak_drop", compute=peak_drop, needs={"masked"})
    class PeakDrop(PerSampleMean):
        higher_is_better = True

    try:
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
        metric = metric_spec("peak_drop").metric()
        assert isinstance(metric, PeakDrop)
        metric.update(got["peak_drop"])
        torch.testing.assert_close(metric.compute(), expected.mean(), atol=1e-5, rtol=1e-4)
    finally:
        METRIC_REGISTRY.remove("peak_drop")


def test_a_name_taken_or_malformed_is_refused() -> None:
    with pytest.raises(ValueError, match="two metrics are named 'adcc'"):
        register_metric("adcc", compute=lambda m: m.maps.mean((1, 2)))(type("Other", (PerSampleMean,), {}))
    with pytest.raises(ValueError, match="lower-case letters"):
        MetricSpec("Peak Drop", PerSampleMean, lambda m: m.maps.mean((1, 2)))
