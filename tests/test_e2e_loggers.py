"""End to end under both Lightning packages: the Shapes fit with TensorBoard, CSV, W&B (offline) and MLflow
(local file store) loggers at once, and what each logger really stored, read back from its files."""

from __future__ import annotations

import csv
import importlib
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_cam import CAMCallback
from lightning_cam.data import ShapesDataModule
from tests.helpers import tiny_classifier, wandb_history

PACKAGES = ("pytorch_lightning", "lightning.pytorch")
METHODS = ("gradcam", "gradcam_pp")  # the pair MLflow used to merge (it strips '+' from 'gradcam++')
METRICS = ("average_drop", "increase", "coherency", "complexity", "adcc", "pointing_game")
STEPS = [1, 3]  # 2 epochs of 2 training batches: the validations close at steps 1 and 3


def fit(package: str, tmp_path: Path, loggers: Any, with_callback: bool = True, **kwargs: Any) -> Any:
    pl = importlib.import_module(package)
    dm = ShapesDataModule(num_train=32, num_val=32, image_size=32, batch_size=16, seed=0)
    dm.setup("fit")
    torch.manual_seed(0)
    model = tiny_classifier(pl.LightningModule)(mean=dm.hparams.mean, std=dm.hparams.std)
    callbacks = [CAMCallback(methods=("gradcam", "gradcam++"), metrics=METRICS, num_images=4,
                             on_error="raise")] if with_callback else []
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, logger=loggers, callbacks=callbacks,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         default_root_dir=str(tmp_path), log_every_n_steps=1, num_sanity_val_steps=0, **kwargs)
    trainer.fit(model, dm.train_dataloader(), dm.val_dataloader())
    return trainer, model


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES)
def test_every_logger_gets_scalars_grids_and_evolution(package: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    import wandb
    from mlflow import MlflowClient

    loggers_module = importlib.import_module(f"{package}.loggers")
    tb = loggers_module.TensorBoardLogger(str(tmp_path), name="tb")
    csv_logger = loggers_module.CSVLogger(str(tmp_path), name="csv")
    wb = loggers_module.WandbLogger(save_dir=str(tmp_path), offline=True, project="cam")
    ml = loggers_module.MLFlowLogger(experiment_name="cam", tracking_uri=f"file:{tmp_path / 'mlruns'}")
    fit(package, tmp_path, [tb, csv_logger, wb, ml])
    run_dir = os.path.dirname(wb.experiment.dir)
    wandb.finish()
    keys = [f"cam/{m}/{k}" for m in METHODS for k in METRICS]

    # TensorBoard: scalars and images on the same steps
    acc = EventAccumulator(tb.log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    for key in keys:
        assert [s.step for s in acc.Scalars(key)] == STEPS and all(math.isfinite(s.value) for s in acc.Scalars(key))
    for m in METHODS:
        assert [e.step for e in acc.Images(f"cam/{m}/grid")] == STEPS
        assert [e.step for e in acc.Images(f"cam/{m}/evolution")] == [3]
        assert os.path.getsize(os.path.join(tb.log_dir, f"cam_evolution_{m}.png")) > 0

    # CSV: the scalars, and the images as PNG files in its own log_dir
    with open(os.path.join(csv_logger.log_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    for key in keys:
        assert [int(r["step"]) for r in rows if r.get(key)] == STEPS, key
    names = set(os.listdir(csv_logger.log_dir))
    for m in METHODS:
        assert {f"cam_{m}_grid_step1.png", f"cam_{m}_grid_step3.png", f"cam_evolution_{m}.png"} <= names

    # W&B: the offline run's history (scalars, captioned images at trainer/global_step) and its files
    history = wandb_history(run_dir)
    for key in keys:
        assert [r["trainer/global_step"] for r in history if key in r] == STEPS, key
    for m in METHODS:
        grids = [r for r in history if f"cam/{m}/grid/_type" in r]
        assert [r["trainer/global_step"] for r in grids] == STEPS
        assert [r[f"cam/{m}/grid/captions"] for r in grids] == [[f"{m}, epoch 0, step 1"], [f"{m}, epoch 1, step 3"]]
        assert len([r for r in history if f"cam/{m}/evolution/_type" in r]) == 1
        for r in grids:
            assert os.path.exists(os.path.join(run_dir, "files", r[f"cam/{m}/grid/filenames"][0]))
        assert os.path.exists(os.path.join(run_dir, "files", f"cam_evolution_{m}.png"))

    # MLflow: one series per method and metric (no key written by two methods), image artifacts of the run
    client = MlflowClient(f"file:{tmp_path / 'mlruns'}")
    for key in keys:
        assert [h.step for h in client.get_metric_history(ml.run_id, key)] == STEPS, key
    artifacts = [a.path for a in client.list_artifacts(ml.run_id)]
    images = [a.path for a in client.list_artifacts(ml.run_id, "images") if a.path.endswith(".png")]
    for m in METHODS:
        assert f"cam_evolution_{m}.png" in artifacts
        for step in STEPS:
            assert len([p for p in images if p.startswith(f"images/cam~{m}~grid+step+{step}+")]) == 1
        assert len([p for p in images if p.startswith(f"images/cam~{m}~evolution+step+3+")]) == 1

    # nothing outside the loggers' own places
    assert not list(tmp_path.glob("*.png"))
    assert not list((tmp_path / "mlruns").glob("*.png"))


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES)
def test_training_is_bit_identical_with_and_without_the_callback_under_both_packages(package: str,
                                                                                     tmp_path: Path) -> None:
    loggers = importlib.import_module(f"{package}.loggers")
    _, plain = fit(package, tmp_path, loggers.CSVLogger(str(tmp_path), name="plain"), with_callback=False)
    trainer, watched = fit(package, tmp_path, loggers.CSVLogger(str(tmp_path), name="cam"))
    assert "cam/gradcam_pp/adcc" in trainer.callback_metrics  # the callback really worked
    for key, value in plain.state_dict().items():
        assert torch.equal(value, watched.state_dict()[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_every_key_the_callback_can_log_survives_every_logger(store: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Every view (per class included) in fit and test: each scalar key reaches TensorBoard, CSV, W&B and MLflow
    (file or sqlite store), and no key is a prefix path of another (MLflow's file store keeps a key as a file)."""
    monkeypatch.chdir(tmp_path)
    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                        "MLFLOW_ALLOW_FILE_STORE": "true"}.items():
        monkeypatch.setenv(name, value)
    import pytorch_lightning as pl
    import wandb
    from mlflow import MlflowClient
    from pytorch_lightning.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

    uri = f"file:{tmp_path / 'mlruns'}" if store == "file" else f"sqlite:///{tmp_path / 'mlflow.db'}"
    tb = TensorBoardLogger(str(tmp_path), name="tb")
    csv_logger = CSVLogger(str(tmp_path), name="csv")
    wb = WandbLogger(save_dir=str(tmp_path), offline=True, project="cam")
    ml = MLFlowLogger(experiment_name="cam", tracking_uri=uri, artifact_location=str(tmp_path / "artifacts"))
    dm = ShapesDataModule(num_train=32, num_val=32, num_test=16, image_size=32, batch_size=16, seed=0)
    torch.manual_seed(0)
    model = tiny_classifier(pl.LightningModule)(mean=dm.hparams.mean, std=dm.hparams.std)
    model.cam_class_names = dm.class_names
    cb = CAMCallback(methods=("gradcam", "eigencam"), metrics=("complexity", "average_drop", "pointing_game"),
                     num_images=2, stages=("fit", "validate", "test"), on_error="raise",
                     views=("worst", "drift", "agreement", "per_class", "summary"))
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, logger=[tb, csv_logger, wb, ml], callbacks=[cb],
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         default_root_dir=str(tmp_path), log_every_n_steps=1, num_sanity_val_steps=0)
    trainer.fit(model, dm)
    trainer.test(model, dm, verbose=False)
    run_dir = os.path.dirname(wb.experiment.dir)
    wandb.finish()

    acc = EventAccumulator(tb.log_dir, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    keys = {k for k in acc.Tags()["scalars"] if k.startswith(("cam/", "cam_test/"))}
    kinds = {"drift", "agreement", "per_class"}
    assert all(any(f"/{kind}/" in k or k.endswith(f"/{kind}") for k in keys) for kind in kinds), sorted(keys)
    assert any(k.startswith("cam_test/gradcam/per_class/") for k in keys)
    assert not [(a, b) for a in keys for b in keys if b.startswith(a + "/")]  # no key a folder of another
    with open(os.path.join(csv_logger.log_dir, "metrics.csv")) as f:
        assert keys <= set(next(csv.reader(f)))
    logged = {k for row in wandb_history(run_dir) for k in row}
    assert keys <= logged, sorted(keys - logged)
    client = MlflowClient(uri)
    stored = set(client.get_run(ml.run_id).data.metrics)
    assert keys <= stored, sorted(keys - stored)
    for tag in ("cam/gradcam/grid", "cam/gradcam/worst", "cam_test/gradcam/grid", "cam/summary"):
        assert acc.Images(tag), tag


def _task_model(task: str, pl_module: Any) -> tuple[ShapesDataModule, Any]:
    """A tiny segmenter or embedder and its Shapes data, on either package (the models are pytorch_lightning's:
    wrapped in a module of the package asked for)."""
    from lightning_cam import CAMMixin
    from lightning_cam.models import EmbeddingNet, UNetSegmenter

    classes = 6 if task == "segmentation" else 5
    dm = ShapesDataModule(num_train=32, num_val=16, image_size=32, batch_size=8, seed=0, task=task,
                          num_classes=classes)
    dm.setup("fit")
    torch.manual_seed(0)
    inner = (UNetSegmenter(num_classes=6, channels=(8, 16)) if task == "segmentation"
             else EmbeddingNet(num_classes=5, channels=(8, 16), dim=8))

    class Wrapped(CAMMixin, pl_module):
        cam_task = inner.cam_task
        cam_class_names = dm.class_names

        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self.inner._loss_and_accuracy(self(batch["image"]), batch["label"])[0]

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.log("val_loss", self.inner._loss_and_accuracy(self(batch["image"]), batch["label"])[0])

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    return dm, Wrapped()


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("task", ["segmentation", "embedding"])
def test_every_logger_gets_a_segmenters_and_an_embedders_scalars_and_grids(package: str, task: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                        "MLFLOW_ALLOW_FILE_STORE": "true"}.items():
        monkeypatch.setenv(name, value)
    import wandb
    from mlflow import MlflowClient

    pl = importlib.import_module(package)
    loggers_module = importlib.import_module(f"{package}.loggers")
    tb = loggers_module.TensorBoardLogger(str(tmp_path), name="tb")
    csv_logger = loggers_module.CSVLogger(str(tmp_path), name="csv")
    wb = loggers_module.WandbLogger(save_dir=str(tmp_path), offline=True, project="cam")
    ml = loggers_module.MLFlowLogger(experiment_name="cam", tracking_uri=f"file:{tmp_path / 'mlruns'}")
    dm, model = _task_model(task, pl.LightningModule)
    callback = CAMCallback(methods=("gradcam", "eigencam"), metrics=("adcc", "pointing_game", "iou"), num_images=2)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, logger=[tb, csv_logger, wb, ml], callbacks=[callback],
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         log_every_n_steps=1, num_sanity_val_steps=0, limit_train_batches=2)
    trainer.fit(model, dm.train_dataloader(), dm.val_dataloader())
    run_dir = os.path.dirname(wb.experiment.dir)
    wandb.finish()
    scored = STEPS if task == "segmentation" else STEPS[1:]  # an embedder's first CAM run builds its bank
    keys = [f"cam/{m}/{k}" for m in ("gradcam", "eigencam") for k in ("adcc", "pointing_game", "iou")]
    if task == "embedding":
        keys.append("cam/bank/shift")

    acc = EventAccumulator(tb.log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    for key in keys:
        assert [s.step for s in acc.Scalars(key)] == scored and all(math.isfinite(s.value) for s in acc.Scalars(key))
    with open(os.path.join(csv_logger.log_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    history = wandb_history(run_dir)
    client = MlflowClient(f"file:{tmp_path / 'mlruns'}")
    images = [a.path for a in client.list_artifacts(ml.run_id, "images") if a.path.endswith(".png")]
    for key in keys:
        assert [int(r["step"]) for r in rows if r.get(key)] == scored, key
        assert [r["trainer/global_step"] for r in history if key in r] == scored, key
        assert [h.step for h in client.get_metric_history(ml.run_id, key)] == scored, key
    for m in ("gradcam", "eigencam"):  # the grids at every CAM run, in every logger
        assert [e.step for e in acc.Images(f"cam/{m}/grid")] == STEPS
        assert {f"cam_{m}_grid_step{s}.png" for s in STEPS} <= set(os.listdir(csv_logger.log_dir))
        assert [r["trainer/global_step"] for r in history if f"cam/{m}/grid/_type" in r] == STEPS
        for step in STEPS:
            assert len([p for p in images if p.startswith(f"images/cam~{m}~grid+step+{step}+")]) == 1
