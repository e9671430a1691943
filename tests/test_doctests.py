"""Every docstring example in the package runs and gives the output it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import lightning_cam


def _modules_with_examples() -> list[str]:
    finder = doctest.DocTestFinder()
    names = []
    for info in pkgutil.walk_packages(lightning_cam.__path__, prefix="lightning_cam."):
        module = importlib.import_module(info.name)
        examples = [ex for test in finder.find(module) for ex in test.examples]
        if any(not ex.options.get(doctest.SKIP) for ex in examples):
            names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_the_public_modules_have_examples() -> None:
    expected = {
        "lightning_cam.callbacks.accumulate", "lightning_cam.callbacks.cam", "lightning_cam.callbacks.faults",
        "lightning_cam.callbacks.images", "lightning_cam.callbacks.options", "lightning_cam.callbacks.probe",
        "lightning_cam.callbacks.progress", "lightning_cam.callbacks.sinks", "lightning_cam.evaluate",
        "lightning_cam.functional.cam", "lightning_cam.functional.localization", "lightning_cam.functional.adcc",
        "lightning_cam.functional.perturbation", "lightning_cam.metrics", "lightning_cam.metrics.adcc",
        "lightning_cam.metrics.base", "lightning_cam.metrics.localization", "lightning_cam.metrics.perturbation",
        "lightning_cam.metrics.registry", "lightning_cam.methods", "lightning_cam.methods.base", "lightning_cam.mixin",
        "lightning_cam.render", "lightning_cam.utilities.checks", "lightning_cam.utilities.modes",
        "lightning_cam.callbacks.views.agreement", "lightning_cam.callbacks.views.drift",
        "lightning_cam.callbacks.views.gallery", "lightning_cam.callbacks.views.per_class",
        "lightning_cam.callbacks.views.summary", "lightning_cam.callbacks.views.collection",
        "lightning_cam.callbacks.views.base", "lightning_cam.callbacks.state", "lightning_cam.metrics.grouped",
        "lightning_cam.metrics.agreement", "lightning_cam.metrics.per_class", "lightning_cam.methods.blank",
        "lightning_cam.methods.capture", "lightning_cam.methods.extra", "lightning_cam.methods.targets",
    }
    assert expected <= set(MODULES), sorted(expected - set(MODULES))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
