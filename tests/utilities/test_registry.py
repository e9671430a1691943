"""utilities/registry.py: one table per kind of extension, read when asked; a new built-in entry is one new file
in its package (found by the registry, nothing else edited), for each of the four registries."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from lightning_cam.callbacks.views import VIEW_REGISTRY, default_views
from lightning_cam.methods import available_methods, get_method
from lightning_cam.methods.registry import METHOD_REGISTRY
from lightning_cam.metrics import default_metrics, metric_names, metric_spec
from lightning_cam.metrics.registry import METRIC_REGISTRY
from lightning_cam.targets import TARGET_REGISTRY, Task, available_targets
from lightning_cam.utilities.registry import Registry


def test_names_aliases_and_clear_errors() -> None:
    colours: Registry[str] = Registry("colour")
    colours.add("red", "#f00", aliases=("Rouge",))
    colours.add("red", "#f00")  # the same entry again: a no-op
    assert colours.get("ROUGE") == "#f00" and colours.canonical("r-e-d") == "red" and "rouge" in colours
    with pytest.raises(ValueError, match="two colours are named 'rouge'"):
        colours.add("crimson", "#d00", aliases=("rouge",))
    with pytest.raises(ValueError, match=r"unknown colour 'blue'; valid names: red\."):
        colours.get("blue")
    assert colours.remove("rouge") == "#f00" and colours.names() == [] and "red" not in colours
    exact: Registry[int] = Registry("metric", loose=False)
    exact.add("iou", 1)
    assert "IoU" not in exact and "iou" in exact


# one new module per registry, as a contributor would add it: the file alone, nothing else edited
NEW_FILES = {
    "method": ("lightning_cam.methods", "from lightning_cam.methods.gradient import GradCAM\n"
               "from lightning_cam.methods.registry import register_method\n\n\n"
               "@register_method\nclass ProbeCAM(GradCAM):\n    name = 'zz_probe'\n"),
    "metric": ("lightning_cam.metrics", "from lightning_cam.metrics.base import PerSampleMean\n"
               "from lightning_cam.metrics.registry import register_metric\n\n\n"
               "@register_metric('zz_probe', compute=lambda m: m.maps.mean((1, 2)), default=True)\n"
               "class ProbeMetric(PerSampleMean):\n    higher_is_better = False\n"),
    "view": ("lightning_cam.callbacks.views", "from lightning_cam.callbacks.views.base import View, register_view\n\n\n"
             "@register_view\nclass ProbeView(View):\n    name = 'zz_probe'\n    default = True\n"),
    "target": ("lightning_cam.targets", "import torch\n\nfrom lightning_cam.targets.base import TargetKind, "
               "register_target\n\n\n@register_target\nclass ProbeKind(TargetKind):\n    name = 'zz_probe'\n\n"
               "    def probability(self, logits, targets):\n"
               "        return torch.sigmoid(self.score(logits, targets).float())\n"),
}
REGISTRIES = {"method": METHOD_REGISTRY, "metric": METRIC_REGISTRY, "view": VIEW_REGISTRY, "target": TARGET_REGISTRY}


@pytest.mark.parametrize("kind", sorted(NEW_FILES))
def test_a_new_built_in_entry_is_one_file_that_registers_itself(kind: str) -> None:
    package, source = NEW_FILES[kind]
    registry = REGISTRIES[kind]
    path = Path(importlib.import_module(package).__file__ or "").parent / "zz_probe_entry.py"
    path.write_text(source)
    try:
        registry._loaded = False  # what a fresh process does when the package is first imported
        importlib.invalidate_caches()
        assert "zz_probe" in registry
        if kind == "method":
            assert available_methods()[-1] == "zz_probe" and get_method("ZZ-Probe").__name__ == "ProbeCAM"
        elif kind == "metric":
            assert metric_names()[-1] == "zz_probe" and default_metrics()[-1] == "zz_probe"
            assert metric_spec("zz_probe").metric.__name__ == "ProbeMetric"
        elif kind == "view":
            assert default_views()[-1] == "zz_probe"
        else:
            assert available_targets()[-1] == "zz_probe" and Task("zz_probe").target.name == "zz_probe"
    finally:
        path.unlink()
        registry.remove("zz_probe")
        sys.modules.pop(f"{package}.zz_probe_entry", None)
    assert "zz_probe" not in registry
