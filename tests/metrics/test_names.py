"""metrics/names.py: every metric name, the default selection and the localization set are defined once and
agree with the metric classes, evaluate_batch and each other."""

from __future__ import annotations

import pytest

import lightning_cam.evaluate as evaluate_module
import lightning_cam.metrics as metrics_package
from lightning_cam.metrics import METRICS
from lightning_cam.metrics.names import DEFAULT_METRICS, LOCALIZATION_METRICS, METRIC_NAMES, check_metric_names


def test_the_lists_agree_with_each_other_and_the_classes() -> None:
    assert tuple(METRICS) == METRIC_NAMES and len(set(METRIC_NAMES)) == len(METRIC_NAMES) == 10
    assert DEFAULT_METRICS == ("average_drop", "increase", "coherency", "complexity", "adcc")
    assert set(DEFAULT_METRICS) <= set(METRIC_NAMES) and LOCALIZATION_METRICS <= set(METRIC_NAMES)
    assert LOCALIZATION_METRICS == {"pointing_game", "energy_pointing_game", "iou"}
    assert isinstance(LOCALIZATION_METRICS, frozenset)


def test_the_lists_have_one_home() -> None:
    assert metrics_package.METRIC_NAMES is METRIC_NAMES and metrics_package.DEFAULT_METRICS is DEFAULT_METRICS
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
