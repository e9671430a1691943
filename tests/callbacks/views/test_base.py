"""views/base.py: the view contract. A view written here, in one class and one registry call, runs through a
real fit: its per-batch hook sees every scored sample, its scalar is logged through the callback, its state is
checkpointed under its name, and a view that raises is a counted fault, not the end of the fit."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import torch
from torch import Tensor

from lightning_cam import CAMCallback
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.callbacks.views import VIEW_REGISTRY, View, ViewContext, register_view
from lightning_cam.callbacks.views.base import ScalarLog
from lightning_cam.record import BatchRecord
from tests.callbacks.test_cam import make_data, make_model, make_trainer


class MeanMass(View):
    """The mean mass of the scored maps per method (``cam/<method>/mass``), as a new view would be written."""

    name = "mass"

    def __init__(self, ctx: ViewContext, scale: float = 1.0) -> None:
        super().__init__(ctx)
        self.scale, self.epochs = scale, 0
        self.sums: dict[str, Tensor] = {}

    def keys(self, class_names: Sequence[str] | None, with_probe: bool) -> list[str]:
        return [f"cam/{m}/mass" for m in self.ctx.methods]

    def start(self, trainer: Any, pl_module: Any, denormalize: Callable[[Tensor], Tensor]) -> None:
        self.sums = {m: torch.zeros(2, device=pl_module.device) for m in self.ctx.methods}

    def observe(self, record: BatchRecord) -> None:
        for method, scored in record.methods.items():
            mass = scored.result.maps.flatten(1).mean(1)
            ok = torch.isfinite(mass)
            self.sums[method] += torch.stack([torch.where(ok, mass, 0.0).sum(), ok.sum().float()])

    def epoch_end(self, trainer: Any, log: ScalarLog, step: int, sinks: Sequence[ImageSink],
                  class_names: Sequence[str] | None, prefix: str) -> None:
        for method, (total, count) in self.sums.items():
            log(f"cam/{method}/mass", self.scale * total / count)
        self.epochs += 1

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}


class Broken(View):
    name = "broken"

    def observe(self, *args: Any) -> None:
        raise RuntimeError("this view is broken")


@pytest.fixture
def registered() -> Iterator[None]:
    register_view(MeanMass)
    register_view(Broken)
    yield
    VIEW_REGISTRY.remove("mass")
    VIEW_REGISTRY.remove("broken")


def test_a_new_view_is_one_class_and_one_registry_call(tmp_path: Any, registered: None) -> None:
    dm = make_data()
    cb = CAMCallback(metrics=("complexity",), num_images=2, views={"mass": {"scale": 2.0}, "summary": {}})
    trainer = make_trainer(tmp_path, [cb], max_epochs=2)
    trainer.fit(make_model(dm), dm)
    mass = float(trainer.callback_metrics["cam/gradcam/mass"])
    assert 0.0 < mass <= 2.0
    state = cb.state_dict()["views"]
    assert state["mass"] == {"epochs": 2} and "cam/gradcam/mass" in state["summary"]["curves"]


def test_a_failing_view_is_a_counted_fault(tmp_path: Any, registered: None) -> None:
    dm = make_data()
    cb = CAMCallback(metrics=("complexity",), num_images=0, views=("broken",))
    trainer = make_trainer(tmp_path, [cb], max_epochs=1)
    with pytest.warns(UserWarning, match=r"fault\(s\) in CAM work at epoch 0.*view broken raised"):
        trainer.fit(make_model(dm), dm)
    assert "cam/gradcam/complexity" in trainer.callback_metrics
    with pytest.raises(RuntimeError, match="this view is broken"):
        make_trainer(tmp_path, [CAMCallback(metrics=("complexity",), num_images=0, views=("broken",),
                                            on_error="raise")], max_epochs=1).fit(make_model(dm), dm)
