"""When the callback works: validation runs that happen (check_val_every_n_epoch, val_check_interval,
fast_dev_run), the opt-in test stage, and the setup warnings (never runs, stale monitors)."""

from __future__ import annotations

import csv
import os
import warnings
from typing import Any

import lightning.pytorch as L
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_cam import CAMCallback
from lightning_cam.callbacks.probe import History
from lightning_cam.callbacks.schedule import Schedule, check_stages, never_runs, stale_monitors
from lightning_cam.data import ShapesDataModule
from lightning_cam.models import GAPClassifier


def setup_run(tmp_path: Any, cb: CAMCallback, logger: Any = None, **kwargs: Any) -> tuple[pl.Trainer, Any]:
    dm = ShapesDataModule(num_train=64, num_val=32, num_test=16, image_size=32, batch_size=16, seed=0)
    torch.manual_seed(0)
    model = GAPClassifier(num_classes=5, channels=(8, 16), class_names=dm.class_names, mean=dm.hparams.mean,
                          std=dm.hparams.std)
    options: dict[str, Any] = {"accelerator": "cpu", "max_epochs": 2, "enable_progress_bar": False,
                               "enable_model_summary": False, "enable_checkpointing": False,
                               "default_root_dir": str(tmp_path), "num_sanity_val_steps": 0, "log_every_n_steps": 1}
    options.update(kwargs)
    logger = TensorBoardLogger(str(tmp_path), name="tb") if logger is None else logger
    trainer = pl.Trainer(callbacks=[cb], logger=logger, **options)
    return trainer, (model, dm)


def images(log_dir: str, tag: str) -> list[int]:
    acc = EventAccumulator(log_dir, size_guidance={"images": 0})
    acc.Reload()
    return [e.step for e in acc.Images(tag)] if tag in acc.Tags()["images"] else []


def cam_warnings(record: list[warnings.WarningMessage], text: str) -> list[str]:
    return [str(w.message) for w in record if text in str(w.message)]


# ----------------------------------------------------------------------------- units
def test_schedule_counts_the_validation_runs_that_happen() -> None:
    s = Schedule(every_n_epochs=2, skip_sanity_check=True, stages=("fit", "validate"))
    assert s.begin("fit", True, "validation") is False and s.runs == 0  # the sanity check is not a run
    assert [s.begin("fit", False, "validation") for _ in range(5)] == [True, False, True, False, True]
    assert s.begin("validate", False, "validation") and not s.begin("test", False, "test") and s.runs == 5
    assert Schedule(1, True, ("test",)).begin("test", False, "test")
    assert not Schedule(1, True, ("test",)).begin("fit", False, "validation")


def test_check_stages() -> None:
    assert check_stages(("fit", "test", "fit")) == ("fit", "test")
    with pytest.raises(ValueError, match="`stages` must name some of"):
        check_stages(())
    with pytest.raises(ValueError, match=r"\['predict'\] unknown"):
        CAMCallback(stages=("predict",))


def test_stale_monitors_of_both_packages() -> None:
    callbacks = [EarlyStopping(monitor="cam/gradcam/adcc"), L.callbacks.ModelCheckpoint(monitor="cam/x/iou"),
                 ModelCheckpoint(monitor="val_loss"), ModelCheckpoint()]
    assert stale_monitors(callbacks) == ["EarlyStopping(monitor='cam/gradcam/adcc')",
                                         "ModelCheckpoint(monitor='cam/x/iou')"]


def test_never_runs_reasons(tmp_path: Any) -> None:
    trainer = pl.Trainer(logger=False, max_epochs=1, check_val_every_n_epoch=2, default_root_dir=str(tmp_path))
    assert "check_val_every_n_epoch=2 > max_epochs=1" in str(never_runs(trainer, "fit", ("fit",)))
    assert "does nothing in trainer.test()" in str(never_runs(trainer, "test", ("fit", "validate")))
    trainer = pl.Trainer(logger=False, limit_val_batches=0, default_root_dir=str(tmp_path))
    assert "limit_val_batches=0" in str(never_runs(trainer, "fit", ("fit",)))
    assert never_runs(pl.Trainer(logger=False, default_root_dir=str(tmp_path)), "fit", ("fit",)) is None


def test_first_format_history_loads_as_rows_numbered_by_epoch() -> None:
    old = {"max_size": 64, "maps": {"gradcam": {0: torch.zeros(2, 8, 8, dtype=torch.uint8),
                                                2: torch.ones(2, 8, 8, dtype=torch.uint8)}},
           "preds": {"gradcam": {0: torch.zeros(2, dtype=torch.long), 2: torch.zeros(2, dtype=torch.long)}}}
    h = History()
    h.load_state_dict(old)
    assert h.rows("gradcam") == [0, 2] and h.epochs("gradcam") == [0, 2] and h.caption(2) == "epoch 2"
    assert h.next_row() == 3


# ----------------------------------------------------------------------------- trainer runs
def test_check_val_every_n_epoch_2_with_every_n_epochs_2(tmp_path: Any) -> None:
    cb = CAMCallback(every_n_epochs=2, num_images=2, on_error="raise")
    trainer, (model, dm) = setup_run(tmp_path, cb, max_epochs=4, check_val_every_n_epoch=2)
    trainer.fit(model, dm)
    # validation runs at epochs 1 and 3: runs 0 and 1, so CAM work at run 0 (epoch 1) only
    assert cb.epochs_logged == [1] and cb.history.epochs("gradcam") == [1]
    assert images(trainer.logger.log_dir, "cam/gradcam/grid") == [7]  # the step of epoch 1's scalars


def test_val_check_interval_gives_distinct_steps_and_history_rows(tmp_path: Any) -> None:
    cb = CAMCallback(num_images=2, on_error="raise")
    trainer, (model, dm) = setup_run(tmp_path, cb, max_epochs=1, val_check_interval=0.5)
    trainer.fit(model, dm)
    assert cb.history.rows("gradcam") == [0, 1] and cb.history.epochs("gradcam") == [0, 0]
    assert [cb.history.when(r).step for r in (0, 1)] == [1, 3]
    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Images("cam/gradcam/grid")] == [1, 3]
    assert [s.step for s in acc.Scalars("cam/gradcam/adcc")] == [1, 3]
    (evo,) = acc.Images("cam/gradcam/evolution")
    assert evo.step == 3 and evo.height == 3 * (96 + 2) + 2  # input row + 2 validation rows


def test_fast_dev_run_writes_no_file_in_the_working_directory(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cb = CAMCallback(num_images=2, on_error="raise")
    trainer, (model, dm) = setup_run(tmp_path / "root", cb, fast_dev_run=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(model, dm)
    assert "cam/gradcam/adcc" in trainer.callback_metrics and cb.history.rows("gradcam") == [0]
    assert not list(tmp_path.rglob("*.png"))
    assert len(cam_warnings(record, "fast_dev_run replaces the trainer's loggers")) == 1


def test_stale_monitor_warned_at_setup(tmp_path: Any) -> None:
    cb = CAMCallback(every_n_epochs=2, num_images=0)
    trainer, (model, dm) = setup_run(tmp_path, cb, max_epochs=1, logger=False)
    trainer.callbacks.append(EarlyStopping(monitor="cam/gradcam/adcc", mode="max"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(model, dm)
    (msg,) = cam_warnings(record, "stale value")
    assert "CAMCallback(every_n_epochs=2)" in msg and "EarlyStopping(monitor='cam/gradcam/adcc')" in msg
    # every validation: nothing to warn about
    cb = CAMCallback(every_n_epochs=1, num_images=0)
    trainer, (model, dm) = setup_run(tmp_path, cb, max_epochs=1, logger=False)
    trainer.callbacks.append(EarlyStopping(monitor="cam/gradcam/adcc", mode="max"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(model, dm)
    assert not cam_warnings(record, "stale value")


def test_never_running_configuration_said_once_at_setup(tmp_path: Any) -> None:
    cb = CAMCallback(num_images=0)
    trainer, (model, dm) = setup_run(tmp_path, cb, max_epochs=1, check_val_every_n_epoch=3, logger=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(model, dm)
    assert len(cam_warnings(record, "CAMCallback does nothing in fit")) == 1


def test_test_stage_is_opt_in_and_has_keys_of_its_own(tmp_path: Any) -> None:
    csv_logger = CSVLogger(str(tmp_path), name="csv")
    cb = CAMCallback(num_images=2, on_error="raise")
    trainer, (model, dm) = setup_run(tmp_path, cb, logger=csv_logger, max_epochs=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = trainer.test(model, dm, verbose=False)[0]
    assert not [k for k in out if "cam" in k]  # default: nothing in test, and it says so once
    assert len(cam_warnings(record, "does nothing in trainer.test()")) == 1

    tb = TensorBoardLogger(str(tmp_path), name="tb")
    cb = CAMCallback(num_images=2, on_error="raise", stages=("fit", "validate", "test"))
    trainer, (model, dm) = setup_run(tmp_path, cb, logger=[tb, csv_logger], max_epochs=1)
    trainer.fit(model, dm)
    out = trainer.test(model, dm, verbose=False)[0]
    for metric in ("adcc", "average_drop", "coherency"):
        assert f"cam_test/gradcam/{metric}" in out and f"cam/gradcam/{metric}" not in out
    assert images(tb.log_dir, "cam/gradcam/grid") == [3]  # fit: 4 training batches, logged at step 3
    assert images(tb.log_dir, "cam_test/gradcam/grid") == [4]  # test: after the 4 optimizer steps
    assert cb.history.rows("gradcam") == [0]  # test runs are not rows of the fit's evolution
    # a probe set per stage: the test grid shows the first test images with their labels, not validation's
    test_batch, val_batch = next(iter(dm.test_dataloader())), next(iter(dm.val_dataloader()))
    test_parts, val_parts = model.cam_inputs(test_batch), model.cam_inputs(val_batch)
    assert torch.equal(cb.test_probe.images, test_parts.images[:2].float())
    assert torch.equal(cb.probe.images, val_parts.images[:2].float())
    assert not torch.equal(cb.test_probe.images, cb.probe.images)
    assert torch.equal(cb.test_probe.labels, test_parts.labels[:2])
    state = cb.state_dict()
    restored = CAMCallback(num_images=2, stages=("fit", "validate", "test"))
    restored.load_state_dict(state)  # checkpointed separately
    assert torch.equal(restored.test_probe.images, cb.test_probe.images)
    assert torch.equal(restored.probe.images, cb.probe.images)
    with open(os.path.join(csv_logger.log_dir, "metrics.csv")) as f:
        assert "cam_test/gradcam/adcc" in next(csv.reader(f))
