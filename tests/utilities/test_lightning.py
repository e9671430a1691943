"""Both Lightning packages: one CAMCallback for ``pytorch_lightning`` and ``lightning.pytorch``, accepted by both
Trainers (alone or in a list) and both LightningCLIs, hooks called once, state saved and resumed."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import pytest
import pytorch_lightning as pl
import torch

from lightning_cam import CAMCallback
from lightning_cam.data import ShapesDataModule
from lightning_cam.methods import GradCAM
from lightning_cam.methods.result import CAMResult
from lightning_cam.utilities import lightning as compat
from tests.helpers import tiny_classifier

PACKAGES = ("pytorch_lightning", "lightning.pytorch")


class Counting(GradCAM):
    name = "counting"
    calls = 0

    def explain(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> CAMResult:
        Counting.calls += 1
        return super().explain(images, targets)


def loaders() -> tuple[Any, Any, ShapesDataModule]:
    dm = ShapesDataModule(num_train=32, num_val=32, num_test=16, image_size=32, batch_size=16, seed=0)
    dm.setup("fit")
    return dm.train_dataloader(), dm.val_dataloader(), dm


def trainer_of(package: str, tmp_path: Path, callbacks: Any, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"accelerator": "cpu", "max_epochs": 1, "logger": False, "enable_progress_bar": False,
                               "enable_model_summary": False, "enable_checkpointing": False,
                               "default_root_dir": str(tmp_path), "num_sanity_val_steps": 0}
    options.update(kwargs)
    return importlib.import_module(package).Trainer(callbacks=callbacks, **options)


def test_one_class_is_a_callback_of_both_packages() -> None:
    cb = CAMCallback()
    assert isinstance(cb, pl.Callback) and isinstance(cb, L.Callback)
    assert issubclass(CAMCallback, pl.Callback) and issubclass(CAMCallback, L.Callback)
    assert compat.PACKAGE_NAMES == ("pytorch_lightning", "lightning.pytorch")
    # the hooks are CAMCallback's own; both bases are empty Callback classes after it in the MRO
    assert type(cb).__mro__.index(pl.Callback) > type(cb).__mro__.index(compat.CallbackBase)
    assert CAMCallback.on_validation_epoch_end is not pl.Callback.on_validation_epoch_end
    assert cb.state_key.startswith("CAMCallback{'methods': ('gradcam',), 'metrics': ")


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("as_list", [False, True])
def test_each_trainer_takes_it_alone_or_in_a_list_and_calls_each_hook_once(package: str, as_list: bool,
                                                                          tmp_path: Path) -> None:
    train, val, dm = loaders()
    cb = CAMCallback(methods=(Counting,), metrics=("complexity",), num_images=2, on_error="raise")
    trainer = trainer_of(package, tmp_path, [cb] if as_list else cb)
    Counting.calls = 0
    module = importlib.import_module(package)
    trainer.fit(tiny_classifier(module.LightningModule)(mean=dm.hparams.mean, std=dm.hparams.std), train, val)
    # 2 validation batches; the probe grid shows the first batch's maps of its 2 images (no call of its own):
    # every hook ran exactly once (a hook run twice would make 4)
    assert Counting.calls == 2 and cb._probe_pass.reuse.results is not None
    assert "cam/counting/complexity" in trainer.callback_metrics and cb.history.rows("counting") == [0]


@pytest.mark.parametrize("package", PACKAGES)
def test_checkpoint_state_saved_and_resumed(package: str, tmp_path: Path) -> None:
    train, val, dm = loaders()
    module = importlib.import_module(package)
    ckpt = module.callbacks.ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    cb1 = CAMCallback(num_images=2, on_error="raise")
    net = tiny_classifier(module.LightningModule)
    trainer_of(package, tmp_path, [cb1, ckpt], enable_checkpointing=True).fit(net(), train, val)
    state = torch.load(ckpt.last_model_path, weights_only=False)["callbacks"][cb1.state_key]
    assert state["validation_runs"] == 1 and state["history"]["whens"] == {0: (0, 1)}
    cb2 = CAMCallback(num_images=2, on_error="raise")
    trainer_of(package, tmp_path, [cb2], max_epochs=2).fit(net(), train, val, ckpt_path=ckpt.last_model_path)
    assert torch.equal(cb2.probe.images, cb1.probe.images)
    assert cb2.history.rows("gradcam") == [0, 1] and cb2.history.epochs("gradcam") == [0, 1]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_lightning_cli_accepts_the_class_path(package: str, tmp_path: Path) -> None:
    cli_module = importlib.import_module(f"{package}.cli")
    module = importlib.import_module(package)
    config = {
        "trainer": {
            "accelerator": "cpu", "max_epochs": 1, "logger": False, "enable_progress_bar": False,
            "enable_checkpointing": False, "default_root_dir": str(tmp_path), "num_sanity_val_steps": 0,
            "callbacks": [{"class_path": "lightning_cam.CAMCallback",
                           "init_args": {"methods": ["gradcam++"], "metrics": ["complexity"], "num_images": 2,
                                         "on_error": "raise"}}],
        },
    }
    cli = cli_module.LightningCLI(tiny_classifier(module.LightningModule), args=config, run=False,
                                  save_config_callback=None)
    (cb,) = [c for c in cli.trainer.callbacks if isinstance(c, CAMCallback)]
    assert cb.methods == ("gradcam_pp",)
    train, val, _ = loaders()
    cli.trainer.fit(cli.model, train, val)
    assert "cam/gradcam_pp/complexity" in cli.trainer.callback_metrics


def test_logger_and_callback_tuples_cover_both_packages() -> None:
    assert {pl.loggers.TensorBoardLogger, L.loggers.TensorBoardLogger} <= set(compat.TENSORBOARD_LOGGERS)
    assert set(compat.WANDB_LOGGERS) == {pl.loggers.WandbLogger, L.loggers.WandbLogger}
    assert set(compat.MLFLOW_LOGGERS) == {pl.loggers.MLFlowLogger, L.loggers.MLFlowLogger}
    assert set(compat.EARLY_STOPPING_CALLBACKS) == {pl.callbacks.EarlyStopping, L.callbacks.EarlyStopping}
