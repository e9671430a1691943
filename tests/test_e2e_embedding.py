"""What the user of an embedding model sees (issue 28): the first CAM run builds the class centroids (a warning,
no metrics), the next one's scalars equal ``evaluate_batch`` against those centroids, the bank is the centroids of
the scored samples, a user's own torchvision embedder in a ``LightningModule`` with ``cam_task = "embedding"``
gets grids and metrics with no other code on both Lightning packages, 2 processes equal 1, and the embedding
config learns (read back from TensorBoard's event files)."""

from __future__ import annotations

import importlib
import math
import textwrap
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.models import resnet18

from lightning_cam import CAMCallback, CAMMixin, evaluate_batch
from lightning_cam.data import ShapesDataModule
from lightning_cam.functional.embedding import class_centroids
from lightning_cam.methods import GradCAM
from lightning_cam.models import EmbeddingNet
from lightning_cam.targets.task import Task
from tests.helpers import assert_ddp_equals_one_process, events

REPO = Path(__file__).resolve().parents[1]
METRICS = ("average_drop", "increase", "coherency", "complexity", "adcc", "pointing_game", "iou")


def _setup(seed: int = 0) -> tuple[ShapesDataModule, EmbeddingNet]:
    dm = ShapesDataModule(num_train=32, num_val=24, num_test=8, image_size=32, batch_size=8, task="embedding")
    torch.manual_seed(seed)
    model = EmbeddingNet(num_classes=5, channels=(8, 16), dim=8, class_names=dm.class_names, mean=dm.hparams.mean,
                         std=dm.hparams.std)
    return dm, model


@pytest.mark.parametrize("target", ["label", "pred"])
def test_the_first_run_builds_the_bank_and_the_next_one_scores_against_it(tmp_path: Path, target: str) -> None:
    dm, model = _setup()
    callback = CAMCallback(methods=("gradcam",), metrics=METRICS, max_samples=None, target=target, num_images=3,
                           views=("per_class", "worst"))
    trainer = pl.Trainer(accelerator="cpu", logger=TensorBoardLogger(str(tmp_path), name="tb"), callbacks=[callback],
                         enable_progress_bar=False, enable_model_summary=False)
    with pytest.warns(UserWarning, match="first CAM run built the class centroids"):
        trainer.validate(model, dm, verbose=False)
    first = events(trainer.logger.log_dir)
    assert not [t for t in first.Tags()["scalars"] if t.startswith("cam/gradcam/")]  # nothing to explain against
    assert "cam/gradcam/grid" in first.Tags()["images"]  # the probe explained against the centroids just built

    images, labels = zip(*[(p.images, p.labels) for p in map(model.cam_inputs, dm.val_dataloader())])
    x, y = torch.cat(images), torch.cat(labels)
    with torch.no_grad():
        bank = class_centroids(model.eval()(x), y, 5)  # the scored samples' class centroids, the model unchanged
    torch.testing.assert_close(callback._bank.centroids, bank)

    trainer.validate(model, dm, verbose=False)
    acc = events(trainer.logger.log_dir)
    task = Task("embedding")
    task.target.set_bank(bank)
    values = evaluate_batch(GradCAM(model, task=task), x, y if target == "label" else None, metrics=METRICS,
                            masks=torch.cat([model.cam_inputs(b).masks for b in dm.val_dataloader()]))
    for metric in METRICS:
        v = values[metric]
        got = acc.Scalars(f"cam/gradcam/{metric}")[-1]
        assert got.value == pytest.approx(float(v[torch.isfinite(v)].mean()), rel=1e-4, abs=1e-5), metric
    (shift,) = acc.Scalars("cam/bank/shift")
    assert shift.value == pytest.approx(0.0, abs=1e-5)  # the same model and samples: the bank did not move
    assert any("/per_class/" in t for t in acc.Tags()["scalars"])


def test_without_labels_the_warning_says_what_to_do(tmp_path: Path) -> None:
    dm, _ = _setup()
    dm.setup("validate")
    unlabelled = torch.utils.data.DataLoader([{"image": b["image"]} for b in dm.val_dataloader()], batch_size=None)
    callback = CAMCallback(methods=("gradcam",), metrics=("complexity",), num_images=0)
    trainer = pl.Trainer(accelerator="cpu", logger=False, callbacks=[callback], enable_progress_bar=False,
                         enable_model_summary=False)
    with pytest.warns(UserWarning, match="no labels"):
        trainer.validate(user_embedder("pytorch_lightning"), unlabelled, verbose=False)
    assert callback._bank.centroids is None


def user_embedder(package: str) -> pl.LightningModule:
    """A user's metric-learning module around a torchvision ResNet-18 (its fc a projection to 16 dimensions),
    trained with a triplet loss, on either Lightning package."""
    lightning = importlib.import_module(package)

    class UserEmbedder(CAMMixin, lightning.LightningModule):
        cam_task = "embedding"

        def __init__(self) -> None:
            super().__init__()
            self.net = resnet18(weights=None, num_classes=16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            e = F.normalize(self(batch["image"]), dim=1)
            return F.triplet_margin_loss(e, e.roll(1, 0), e.roll(2, 0))

        def validation_step(self, batch: dict, batch_idx: int) -> None:
            self.log("val_norm", self(batch["image"]).norm(dim=1).mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return UserEmbedder()


@pytest.mark.parametrize("package", ["pytorch_lightning", "lightning.pytorch"])
def test_a_users_torchvision_embedder_gets_grids_and_metrics_with_no_other_code(tmp_path: Path, package: str) -> None:
    lightning = importlib.import_module(package)
    loggers = importlib.import_module(f"{package}.loggers")
    dm = ShapesDataModule(num_train=16, num_val=16, image_size=64, batch_size=8, task="embedding")
    callback = CAMCallback(methods=("gradcam", "eigencam"), metrics=("adcc", "pointing_game", "iou"), num_images=2)
    logger = loggers.TensorBoardLogger(str(tmp_path), name="u")
    trainer = lightning.Trainer(accelerator="cpu", max_epochs=2, logger=logger, callbacks=[callback],
                                enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                                num_sanity_val_steps=0, limit_train_batches=1)
    dm.setup("fit")
    with pytest.warns(UserWarning, match="first CAM run built"):
        trainer.fit(user_embedder(package), dm.train_dataloader(), dm.val_dataloader())
    acc = events(trainer.logger.log_dir)
    for method in ("gradcam", "eigencam"):
        for metric in ("adcc", "pointing_game", "iou"):
            (point,) = acc.Scalars(f"cam/{method}/{metric}")  # the second run's: the first built the bank
            assert math.isfinite(point.value), (method, metric)
        assert len(acc.Images(f"cam/{method}/grid")) == 2
    assert len(acc.Scalars("cam/bank/shift")) == 1


DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pytorch_lightning as pl
    import torch
    from lightning_cam import CAMCallback
    from lightning_cam.data import ShapesDataModule
    from lightning_cam.models import EmbeddingNet

    if __name__ == "__main__":
        torch.set_num_threads(1)
        out, devices = sys.argv[1], int(sys.argv[2])
        dm = ShapesDataModule(num_train=16, num_val=16, image_size=32, batch_size=4, task="embedding")
        torch.manual_seed(0)
        model = EmbeddingNet(num_classes=5, channels=(8, 16), dim=8, class_names=dm.class_names)
        cam = CAMCallback(methods=("gradcam", "eigencam"), metrics={metrics!r}, target="pred", num_images=2,
                          views=("per_class", "agreement", "worst"))
        strategy = "ddp" if devices > 1 else "auto"
        trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False, callbacks=[cam],
                             enable_progress_bar=False, enable_model_summary=False)
        trainer.validate(model, dm, verbose=False)  # builds the bank from both ranks' samples
        res = trainer.validate(model, dm, verbose=False)[0]
        if trainer.is_global_zero:
            json.dump(res, open(out + f"/res{{devices}}.json", "w"))
    """
)


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_on_embeddings(tmp_path: Path) -> None:
    cam_keys = assert_ddp_equals_one_process(DDP_SCRIPT.format(metrics=METRICS), tmp_path)
    assert "cam/bank/shift" in cam_keys and any("/per_class/" in k for k in cam_keys)
    assert any(k.startswith("cam/gradcam/") for k in cam_keys)


@pytest.mark.slow
def test_embedding_config_learns_and_is_explained(tmp_path: Path) -> None:
    from lightning_cam.cli import main

    cli = main(args=["fit", "--config", str(REPO / "configs" / "shapes_embedding.yaml"), "--trainer.max_epochs=3",
                     "--data.num_train=2000", "--data.num_val=256", f"--trainer.logger.init_args.save_dir={tmp_path}",
                     f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false"])
    acc = events(cli.trainer.logger.log_dir)
    gap = [s.value for s in acc.Scalars("val_pair_gap")]
    pointing = [s.value for s in acc.Scalars("cam/eigencam/pointing_game")]
    assert gap[-1] > gap[0] + 0.05, gap
    assert len(pointing) == 2 and pointing[-1] > 0.5, pointing  # chance: the shape's share of the image
    assert len(acc.Scalars("cam/bank/shift")) == 2
    assert {"cam/gradcam/grid", "cam/gradcam/worst", "cam/gradcam/evolution"} <= set(acc.Tags()["images"])


def test_the_bank_is_in_the_checkpoint_and_a_resumed_run_explains_from_its_first_run(tmp_path: Path) -> None:
    dm, model = _setup()
    first = CAMCallback(methods=("gradcam",), metrics=("adcc",), num_images=0)
    trainer = pl.Trainer(accelerator="cpu", logger=False, callbacks=[first], enable_progress_bar=False,
                         enable_model_summary=False)
    with pytest.warns(UserWarning, match="first CAM run built"):
        trainer.validate(model, dm, verbose=False)
    state = first.state_dict()
    assert state["bank"]["centroids"].shape == (5, 8)
    resumed = CAMCallback(methods=("gradcam",), metrics=("adcc",), num_images=0)
    resumed.load_state_dict(state)
    trainer = pl.Trainer(accelerator="cpu", logger=False, callbacks=[resumed], enable_progress_bar=False,
                         enable_model_summary=False)
    res = trainer.validate(model, dm, verbose=False)[0]
    assert math.isfinite(res["cam/gradcam/adcc"])  # explained against the saved bank at once
