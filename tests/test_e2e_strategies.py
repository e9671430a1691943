"""The strategies view on real training without masks (issue 19): the marker shortcut of
``configs/shapes_shortcut.yaml`` fires the alarm and the image shows it, the clean run stays quiet; read back
from TensorBoard's event files. The measured separation over seeds is in the README (``python
scripts/make_strategies_figures.py``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_cam import CAMCallback
from lightning_cam.data import ShapesDataModule
from lightning_cam.models import GAPClassifier


def _fit(tmp_path: Path, shortcut: float) -> tuple[EventAccumulator, list[str]]:
    pl.seed_everything(0)
    dm = ShapesDataModule(num_train=2000, num_val=256, seed=0, shortcut=shortcut, ground_truth=False)
    model = GAPClassifier(channels=(16, 32, 64, 64), lr=0.003, class_names=list(dm.class_names), mean=list(dm.mean),
                          std=list(dm.std))
    callback = CAMCallback(methods=("gradcam",), metrics=("average_drop", "adcc"), max_samples=256, num_images=4)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=TensorBoardLogger(str(tmp_path), name="tb"),
                         callbacks=[callback], enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, dm)
    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc, [str(w.message) for w in caught if "fixed place" in str(w.message)]


@pytest.mark.slow
def test_the_marker_shortcut_is_caught_without_masks_and_the_clean_run_is_not(tmp_path: Path) -> None:
    cued, alarms = _fit(tmp_path / "cued", 0.95)
    assert cued.Scalars("val_acc")[-1].value > 0.9  # the shortcut keeps the accuracy ...
    assert cued.Scalars("cam/gradcam/strategy/alarm")[-1].value >= 3  # ... and the maps give it away
    assert len(alarms) == 1 and "look at one fixed place" in alarms[0]
    fixed = [cued.Scalars(t)[-1].value for t in cued.Tags()["scalars"] if t.startswith("cam_strategies/gradcam/fixed/")]
    assert len(fixed) == 5 and max(fixed) > 0.5
    assert len(cued.Images("cam/gradcam/strategies")) == 1
    clean, quiet = _fit(tmp_path / "clean", 0.0)
    assert clean.Scalars("cam/gradcam/strategy/alarm")[-1].value == 0 and not quiet
    same = [clean.Scalars(t)[-1].value for t in clean.Tags()["scalars"] if t.startswith("cam_strategies/gradcam/same/")]
    assert len(same) == 5 and max(same) < 0.4
