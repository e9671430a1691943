"""views/collection.py and the views through the callback: `views=` checked (names, options, the deprecated
switches), every view read back from TensorBoard, all off, and a 2-process run equal to one process."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_cam import CAMCallback
from lightning_cam.callbacks.views import VIEW_REGISTRY, default_views
from tests.callbacks.test_cam import make_data, make_model, make_trainer

REPO = Path(__file__).resolve().parents[3]


def test_views_are_checked_by_name_and_option() -> None:
    assert CAMCallback().views == {name: {} for name in default_views()}
    assert set(VIEW_REGISTRY.names()) == {"worst", "drift", "agreement", "per_class", "strategies", "summary"}
    with pytest.raises(ValueError, match=r"unknown view 'gallery'.*valid views are \['agreement'"):
        CAMCallback(views=("gallery",))
    with pytest.raises(ValueError, match="view 'worst' is listed twice"):
        CAMCallback(views=("worst", "worst"))
    with pytest.raises(ValueError, match=r"view 'drift' has no option\(s\) \['k'\]; its options are \['every_n'\]"):
        CAMCallback(views={"drift": {"k": 3}})
    with pytest.raises(ValueError, match=r"view 'worst': every_n must be an int >= 1 \(1: every CAM run\), got 0"):
        CAMCallback(views={"worst": {"every_n": 0}})
    with pytest.raises(ValueError, match=r"`k` \(samples in the worst-case gallery\) must be an int >= 1, got 0"):
        CAMCallback(views={"worst": {"k": 0}})
    with pytest.raises(ValueError, match="options of view 'worst' must be a mapping"):
        CAMCallback(views={"worst": 4})  # type: ignore[dict-item]
    assert CAMCallback(views=()).views == {}
    assert CAMCallback(views=None).views == {name: {} for name in default_views()}


def _events(log_dir: str) -> EventAccumulator:
    acc = EventAccumulator(log_dir, size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_views_read_back_from_tensorboard(tmp_path: Any) -> None:
    dm = make_data()
    model = make_model(dm)
    metrics = ("complexity", "pointing_game", "energy_pointing_game")
    cb = CAMCallback(methods=("gradcam", "eigencam"), metrics=metrics, num_images=4,
                     views={**{v: {} for v in default_views()}, "worst": {"k": 3}, "per_class": {},
                            "summary": {"figure": True}}, on_error="raise",
                     tile_size=32)
    trainer = make_trainer(tmp_path, [cb], max_epochs=2)
    trainer.fit(model, dm)
    log_dir = trainer.logger.log_dir  # type: ignore[union-attr]
    acc = _events(log_dir)
    tags = acc.Tags()
    for method in ("gradcam", "eigencam"):
        worst = acc.Images(f"cam/{method}/worst")
        steps = [s.step for s in acc.Scalars(f"cam/{method}/complexity")]  # images at the scalars' steps
        assert [w.step for w in worst] == steps and len(steps) == 2 and all(w.width > 3 * 32 for w in worst)
        assert len(acc.Scalars(f"cam/{method}/drift")) == 1  # needs a previous epoch: the 2nd one only
        for metric in metrics:
            per_class = [t for t in tags["scalars"] if t.startswith(f"cam/{method}/per_class/{metric}/")]
            assert {t.rsplit("/", 1)[1] for t in per_class} <= set(dm.class_names) and per_class
    (agree,) = [t for t in tags["scalars"] if t.startswith("cam/agreement/")]
    assert agree == "cam/agreement/gradcam__eigencam" and len(acc.Scalars(agree)) == 2
    assert -1.0 <= acc.Scalars(agree)[0].value <= 1.0
    assert "custom_scalars__config__" in tags["tensors"]
    assert [s.step for s in acc.Images("cam/summary")] == [acc.Scalars("cam/gradcam/complexity")[-1].step]
    assert os.path.exists(os.path.join(log_dir, "cam_summary.png"))
    assert set(cb.state_dict()["views"]["summary"]["curves"]) >= {"cam/gradcam/drift", agree, "cam/gradcam/complexity"}


def test_a_view_with_every_n_works_at_every_nth_cam_run_and_counts_on_after_a_resume(tmp_path: Any) -> None:
    """``every_n`` on any view: the worst gallery (images and scalars-free) and the strategies (images and
    scalars) at CAM runs 0 and 2 of 3; the other views at every run; the count is in the checkpoint."""
    dm = make_data()
    cb = CAMCallback(num_images=2, tile_size=32, on_error="raise",
                     views={"worst": {"k": 3, "every_n": 2}, "strategies": {"every_n": 2, "min_maps": 2},
                            "drift": {}})
    trainer = make_trainer(tmp_path, [cb], max_epochs=3)
    trainer.fit(make_model(dm), dm)
    acc = _events(trainer.logger.log_dir)  # type: ignore[union-attr]
    steps = [s.step for s in acc.Scalars("cam/gradcam/complexity")]
    assert len(steps) == 3
    assert [w.step for w in acc.Images("cam/gradcam/worst")] == [steps[0], steps[2]]
    assert [w.step for w in acc.Images("cam/gradcam/strategies")] == [steps[0], steps[2]]
    assert [s.step for s in acc.Scalars("cam/gradcam/drift")] == steps[1:]  # every run (a previous one needed)
    state = cb.state_dict()
    assert state["view_runs"] == 3
    again = CAMCallback(num_images=2, tile_size=32, views={"worst": {"k": 3, "every_n": 2},
                                                           "strategies": {"every_n": 2, "min_maps": 2}, "drift": {}})
    again.load_state_dict(state)
    assert again._views.runs == 3  # the next run is the 4th: no worst gallery, no strategies


def test_views_off(tmp_path: Any) -> None:
    dm = make_data()
    cb = CAMCallback(methods=("gradcam", "eigencam"), metrics=("complexity",), num_images=2, views=(),
                     on_error="raise")
    trainer = make_trainer(tmp_path, [cb], max_epochs=2)
    trainer.fit(make_model(dm), dm)
    tags = _events(trainer.logger.log_dir).Tags()  # type: ignore[union-attr]
    assert not [t for t in tags["images"] + tags["scalars"] if "worst" in t or "drift" in t or "agreement" in t]
    assert "cam/summary" not in tags["images"] and "custom_scalars__config__" not in tags["tensors"]


VIEWS_DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.loggers import TensorBoardLogger
    from torch.utils.data import DataLoader, Subset
    from lightning_cam import CAMCallback
    from lightning_cam.data import ShapesDataModule
    from lightning_cam.models import GAPClassifier

    class Interleaved(ShapesDataModule):
        # one process over the validation samples in the order 0, 2, 4, ..., 1, 3, ...: its probe images are
        # those rank 0 of a 2-process run sees first (DistributedSampler: rank r gets r, r + 2, ...)
        def val_dataloader(self):
            loader = super().val_dataloader()
            n = len(loader.dataset)
            order = list(range(0, n, 2)) + list(range(1, n, 2))
            return DataLoader(Subset(loader.dataset, order), batch_size=loader.batch_size,
                              collate_fn=loader.collate_fn)

    class EpochWeights(pl.Callback):
        # the same known weights at every validation epoch in both runs (whatever the training step did)
        def __init__(self, states):
            self.states = states

        def on_validation_epoch_start(self, trainer, pl_module):
            pl_module.load_state_dict(self.states[trainer.current_epoch])

    if __name__ == "__main__":
        torch.set_num_threads(1)
        out, devices = sys.argv[1], int(sys.argv[2])
        dm = (Interleaved if devices == 1 else ShapesDataModule)(num_train=16, num_val=32, image_size=32,
                                                                  batch_size=8, seed=0)
        states = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            states.append(GAPClassifier(num_classes=5, channels=(8, 16), class_names=dm.class_names,
                                        mean=dm.hparams.mean, std=dm.hparams.std).state_dict())
        model = GAPClassifier(num_classes=5, channels=(8, 16), class_names=dm.class_names, mean=dm.hparams.mean,
                              std=dm.hparams.std)
        cam = CAMCallback(methods=("gradcam", "eigencam"), metrics=("complexity", "average_drop", "pointing_game",
                          "energy_pointing_game"), max_samples=None, num_images=4,
                          views={"worst": {"k": 5}, "drift": {}, "agreement": {}, "summary": {"figure": True},
                                 "per_class": {}},
                          on_error="raise", tile_size=32)
        trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                             max_epochs=2, limit_train_batches=1, logger=TensorBoardLogger(out, name=f"p{devices}"),
                             callbacks=[EpochWeights(states), cam], enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
        trainer.fit(model, dm)
        if trainer.is_global_zero:
            json.dump({"log_dir": trainer.logger.log_dir}, open(f"{out}/p{devices}.json", "w"))
    """
)


def _run(script: Path, out: Path, devices: int, timeout: float = 420) -> None:
    """A subprocess in its own session, killed as a group on timeout (Lightning traps SIGTERM)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(devices)], cwd=out, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the {devices}-process run did not finish in {timeout} s")
    assert proc.returncode == 0, stderr[-4000:]


def _png(event: Any) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB")).astype(np.int16)


@pytest.mark.slow
def test_views_of_two_processes_equal_one_process_over_the_same_samples(tmp_path: Path) -> None:
    script = tmp_path / "views_ddp.py"
    script.write_text(VIEWS_DDP_SCRIPT)
    for devices in (2, 1):
        _run(script, tmp_path, devices)
    ddp, single = (_events(json.loads((tmp_path / f"p{d}.json").read_text())["log_dir"]) for d in (2, 1))
    scalars = [t for t in single.Tags()["scalars"] if t.startswith("cam/")]
    views = [t for t in scalars if "drift" in t or "agreement" in t or "/per_class/" in t]
    assert len([t for t in views if "drift" in t]) == 2 and "cam/agreement/gradcam__eigencam" in views
    assert len([t for t in views if "/per_class/" in t]) >= 2 * 4 * 3  # per class: methods x metrics x classes
    assert set(scalars) == {t for t in ddp.Tags()["scalars"] if t.startswith("cam/")}
    for tag in scalars:
        one, two = [s.value for s in single.Scalars(tag)], [s.value for s in ddp.Scalars(tag)]
        assert two == pytest.approx(one, rel=1e-4, abs=1e-5), tag
    for method in ("gradcam", "eigencam"):
        one, two = single.Images(f"cam/{method}/worst"), ddp.Images(f"cam/{method}/worst")
        assert [i.step for i in one] == [i.step for i in two] == [0, 1]
        for a, b in zip(one, two):
            pa, pb = _png(a), _png(b)
            assert pa.shape == pb.shape and np.abs(pa - pb).mean() < 1.0, method  # the same 5 samples
    for acc in (single, ddp):
        assert "custom_scalars__config__" in acc.Tags()["tensors"]
        assert [i.step for i in acc.Images("cam/summary")] == [1]
