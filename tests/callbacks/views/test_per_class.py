"""views/per_class.py: keys under their own branch, and classes outside the names a counted fault."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from lightning_cam.callbacks.faults import Faults
from lightning_cam.callbacks.views.base import ViewContext
from lightning_cam.callbacks.views.per_class import PerClassView, per_class_tag
from lightning_cam.methods import CAMResult
from lightning_cam.record import CAMBatch
from tests.helpers import record_of


def test_classes_outside_the_names_are_a_counted_fault_and_keys_are_no_prefix_of_others() -> None:
    faults = Faults("warn")
    view = PerClassView(ViewContext(("gradcam",), ("complexity",), 32, "jet", 0.5, faults))
    module = SimpleNamespace(cam_class_names=["circle", "square"], device=torch.device("cpu"))
    view.start(SimpleNamespace(datamodule=None), module, lambda x: x)
    maps = torch.rand(4, 8, 8)
    maps[3] = float("nan")  # a sample left out by the callback: not this view's fault
    result = CAMResult(maps, maps, torch.zeros(4, 5), torch.tensor([0, 1, 4, 3]))
    view.observe(record_of("gradcam", CAMBatch(torch.rand(4, 3, 8, 8)), result, {"complexity": torch.rand(4)}))
    assert faults.counts["error"] == 1
    assert "gradcam: 1 scored sample(s) whose class is outside the 2 class names" in str(faults.first)
    logged: dict[str, float] = {}
    view.epoch_end(SimpleNamespace(), lambda key, value: logged.update({key: float(value)}), 0, [], None, "cam")
    assert set(logged) == {"cam/gradcam/per_class/complexity/circle", "cam/gradcam/per_class/complexity/square"}
    keys = [*logged, "cam/gradcam/complexity", "cam/gradcam/drift", "cam/agreement/gradcam__eigencam"]
    assert not [a for a in keys for b in keys if a != b and b.startswith(a + "/")]  # no key a folder of another
    assert per_class_tag("gradcam", "iou", "a/b") == "cam/gradcam/per_class/iou/a_b"
