"""The runnable examples in the docstrings of the metric modules really run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "lightning_cam.functional.metrics",
    "lightning_cam.functional.localization",
    "lightning_cam.functional.perturbation",
    "lightning_cam.metrics",
    "lightning_cam.metrics.base",
    "lightning_cam.metrics.adcc",
    "lightning_cam.metrics.localization",
    "lightning_cam.metrics.perturbation",
    "lightning_cam.evaluate",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
