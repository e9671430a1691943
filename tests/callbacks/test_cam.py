"""CAMCallback: argument checks, every way Lightning validates, loggers, checkpoints and faults.

Tiny runs (32x32 Shapes, two conv blocks, 32 validation images in 2 batches) so each fit takes seconds.
"""

from __future__ import annotations

import csv
import math
import os
import random
import re
import threading
import warnings
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from lightning_cam import CAMBatch, CAMCallback, CAMMixin
from lightning_cam.data import ShapesDataModule
from lightning_cam.methods import GradCAM
from lightning_cam.methods.result import CAMResult
from lightning_cam.models import GAPClassifier
from tests.helpers import FailingTB, events

ADCC = ("average_drop", "increase", "coherency", "complexity", "adcc")


# ----------------------------------------------------------------------------- helpers
def make_data(num_val: int = 32) -> ShapesDataModule:
    return ShapesDataModule(num_train=32, num_val=num_val, num_test=16, image_size=32, batch_size=16, seed=0)


def make_model(dm: ShapesDataModule, seed: int = 0, cls: type = GAPClassifier) -> GAPClassifier:
    torch.manual_seed(seed)
    return cls(num_classes=5, channels=(8, 16), class_names=dm.class_names, mean=dm.hparams.mean, std=dm.hparams.std)


def make_trainer(tmp_path: Any, callbacks: list[Callback], logger: Any = None, **kwargs: Any) -> pl.Trainer:
    if logger is None:
        logger = TensorBoardLogger(str(tmp_path), name="tb")
    options: dict[str, Any] = {
        "accelerator": "cpu", "devices": 1, "max_epochs": 2, "enable_progress_bar": False,
        "enable_model_summary": False, "enable_checkpointing": False, "default_root_dir": str(tmp_path),
        "log_every_n_steps": 1, "num_sanity_val_steps": 0,
    }
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, logger=logger, **options)


def cam(**kwargs: Any) -> CAMCallback:
    """A CAMCallback that raises on any fault: tests that expect none must not hide one."""
    kwargs.setdefault("on_error", "raise")
    return CAMCallback(**kwargs)


def cam_warnings(record: list[warnings.WarningMessage], text: str) -> list[str]:
    return [str(w.message) for w in record if text in str(w.message)]


class Broken(GradCAM):
    """Raises in every call."""

    name = "broken"

    def explain(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> CAMResult:
        raise RuntimeError("boom in explain")


class NaNFirst(GradCAM):
    """The first sample of every call gets a NaN map."""

    name = "nanfirst"

    def explain(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> CAMResult:
        r = super().explain(images, targets)
        maps = r.maps.clone()
        maps[0] = float("nan")
        return CAMResult(maps, r.low_res, r.logits, r.targets)


class Recording(GradCAM):
    """Records the batch size and targets of each call."""

    name = "recording"
    calls: list[tuple[int, torch.Tensor | None]] = []

    def explain(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> CAMResult:
        Recording.calls.append((images.shape[0], None if targets is None else targets.detach().cpu().clone()))
        return super().explain(images, targets)


class ModeFlipping(GradCAM):
    """Puts the model in train mode, then raises: the callback must restore the modes."""

    name = "modeflip"

    def explain(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> CAMResult:
        self.model.train()
        raise RuntimeError("flipped")


class ModeSpy(Callback):
    """Records whether any module is in train mode after the CAM callback's hooks (runs after it)."""

    def __init__(self) -> None:
        self.training_seen: list[bool] = []

    def on_validation_batch_end(  # type: ignore[no-untyped-def]
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        self.training_seen.append(any(m.training for m in pl_module.modules()))

    def on_validation_epoch_end(self, trainer, pl_module):  # type: ignore[no-untyped-def]
        self.training_seen.append(any(m.training for m in pl_module.modules()))


# ----------------------------------------------------------------------------- arguments
def test_argument_checks_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown CAM method 'nope'.*gradcam"):
        CAMCallback(methods=("nope",))
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['adc'\].*adcc"):
        CAMCallback(metrics=("adc",))
    with pytest.raises(ValueError, match="target"):
        CAMCallback(target="truth")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error"):
        CAMCallback(on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown colormap"):
        CAMCallback(colormap="nope")
    with pytest.raises(ValueError, match="every_n_epochs"):
        CAMCallback(every_n_epochs=0)
    with pytest.raises(ValueError, match="listed twice"):
        CAMCallback(methods=("gradcam", "Grad-CAM"))
    with pytest.raises(ValueError, match="method_kwargs"):
        CAMCallback(methods=("gradcam",), method_kwargs={"scorecam": {"batch_size": 4}})
    cb = CAMCallback(methods=("Grad-CAM++", "grad_cam"), method_kwargs={"gradcampp": {}})
    assert cb.methods == ("gradcam_pp", "gradcam")  # canonical, tag-safe names (issue 9)


def test_module_without_mixin_gets_a_clear_error(tmp_path: Any) -> None:
    class Plain(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(2, 2)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            return None

    trainer = make_trainer(tmp_path, [CAMCallback()], logger=False)
    with pytest.raises(TypeError, match="mix in lightning_cam.CAMMixin"):
        trainer.validate(Plain(), dataloaders=[torch.zeros(2, 2)])


# ----------------------------------------------------------------------------- ways of validating
def test_validate_in_inference_mode_logs_finite_metrics_and_leaves_no_trace(tmp_path: Any) -> None:
    dm = make_data()
    runs = {}
    for with_cb in (False, True):
        model = make_model(dm)
        cbs: list[Callback] = [cam(methods=("gradcam", "gradcam++"), num_images=4)] if with_cb else []
        trainer = make_trainer(tmp_path, cbs, inference_mode=True)
        torch.manual_seed(123), np.random.seed(123), random.seed(123)
        out = trainer.validate(model, dm, verbose=False)[0]
        runs[with_cb] = (out, torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(), model)
    out, rng, nprng, pyrng, model = runs[True]
    for method in ("gradcam", "gradcam_pp"):
        for metric in ADCC:
            assert math.isfinite(out[f"cam/{method}/{metric}"]), (method, metric)
    assert out["val_loss"] == runs[False][0]["val_loss"]
    assert torch.equal(rng, runs[False][1]) and np.array_equal(nprng, runs[False][2]) and pyrng == runs[False][3]
    assert all(p.grad is None for p in model.parameters())
    acc = events(trainer.loggers[0].log_dir)
    assert len(acc.Images("cam/gradcam/grid")) == 1 and len(acc.Images("cam/gradcam_pp/grid")) == 1


def test_bf16_mixed_precision(tmp_path: Any) -> None:
    dm = make_data()
    trainer = make_trainer(tmp_path, [cam(num_images=4)], precision="bf16-mixed", max_epochs=1)
    trainer.fit(make_model(dm), dm)
    for metric in ADCC:
        assert math.isfinite(float(trainer.callback_metrics[f"cam/gradcam/{metric}"]))


def test_model_modes_are_restored_even_when_a_method_fails(tmp_path: Any) -> None:
    dm = make_data()
    spy = ModeSpy()
    trainer = make_trainer(tmp_path, [CAMCallback(methods=(ModeFlipping, "gradcam"), num_images=2), spy],
                           max_epochs=1)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        trainer.fit(make_model(dm), dm)
    assert spy.training_seen and not any(spy.training_seen)
    assert "cam/gradcam/adcc" in trainer.callback_metrics


def test_every_n_epochs_and_sample_budget(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    dm = make_data()
    Recording.calls = []
    cb = cam(methods=(Recording,), metrics=("complexity",), every_n_epochs=2, max_samples=20, num_images=3,
             progress=True)
    trainer = make_trainer(tmp_path, [cb], max_epochs=3)
    with caplog.at_level("INFO"):
        trainer.fit(make_model(dm), dm)
    assert cb.epochs_logged == [0, 2]
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[lightning_cam] CAM work")]
    assert len(progress) == 2 and "epoch 0 (20 samples" in progress[0] and "epoch 2 (20 samples" in progress[1]
    # per logged epoch: 16 + 4 samples for the metrics (max_samples=20); the 3 probe images are the first 3 of
    # the first scored batch, so the grid shows those maps without explaining the probe again (ProbeReuse)
    assert [n for n, _ in Recording.calls] == [16, 4, 16, 4]
    acc = events(trainer.loggers[0].log_dir)
    # images at the step of the scalars logged with them (issue 9: no longer the epoch)
    assert [e.step for e in acc.Images("cam/recording/grid")] == [1, 5]
    # logged at the last global step of epochs 0 and 2 (2 training steps per epoch)
    assert [e.step for e in acc.Scalars("cam/recording/complexity")] == [1, 5]


def test_target_label_explains_the_true_class(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    dm = make_data()
    Recording.calls = []
    cb = cam(methods=(Recording,), metrics=("complexity",), target="label", num_images=3, progress=False)
    trainer = make_trainer(tmp_path, [cb])
    with caplog.at_level("INFO"):
        trainer.validate(make_model(dm), dm, verbose=False)
    assert not [r for r in caplog.records if "[lightning_cam]" in r.getMessage()]  # progress=False: silent
    labels = torch.cat([b["label"] for b in dm.val_dataloader()])
    targets = [t for _, t in Recording.calls]
    assert len(targets) == 2 and torch.equal(targets[0], labels[:16]) and torch.equal(targets[1], labels[16:32])
    # the probe set, the first images of the val dataloader: its grid shows the scored pass's maps of them
    reused = cb._probe_pass.reuse.results
    assert reused is not None and torch.equal(reused["recording"].targets, labels[:3])


# ----------------------------------------------------------------------------- loggers
def test_several_loggers_all_tensorboards_get_images_csv_gets_scalars(tmp_path: Any) -> None:
    dm = make_data()
    loggers = [TensorBoardLogger(str(tmp_path), name="a"), TensorBoardLogger(str(tmp_path), name="b"),
               CSVLogger(str(tmp_path), name="csv")]
    trainer = make_trainer(tmp_path, [cam(num_images=4)], logger=loggers)
    trainer.fit(make_model(dm), dm)
    for tb in loggers[:2]:
        acc = events(tb.log_dir)
        assert [e.step for e in acc.Images("cam/gradcam/grid")] == [1, 3]  # the scalars' steps
        assert [e.step for e in acc.Images("cam/gradcam/evolution")] == [3]
        assert [e.step for e in acc.Scalars("cam/gradcam/adcc")] == [1, 3]
    with open(os.path.join(loggers[2].log_dir, "metrics.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r.get("cam/gradcam/adcc")]
    assert len(rows) == 2 and all(math.isfinite(float(r["cam/gradcam/adcc"])) for r in rows)


def test_csv_logger_gets_scalars_and_png_files_in_its_log_dir_without_warning(tmp_path: Any) -> None:
    dm = make_data()
    csv_logger = CSVLogger(str(tmp_path), name="csv")
    trainer = make_trainer(tmp_path, [cam(num_images=4)], logger=csv_logger)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(make_model(dm), dm)
    assert not cam_warnings(record, "CAMCallback")  # issue 9: CSV gets the grids as PNG files, nothing to warn
    with open(os.path.join(csv_logger.log_dir, "metrics.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r.get("cam/gradcam/adcc")]
    assert len(rows) == 2
    assert os.path.exists(os.path.join(csv_logger.log_dir, "cam_evolution_gradcam.png"))
    assert sorted(p.name for p in tmp_path.rglob("cam_gradcam_grid_step*.png")) == [
        "cam_gradcam_grid_step1.png", "cam_gradcam_grid_step3.png"]
    assert all(p.parent == tmp_path / "csv" / "version_0" for p in tmp_path.rglob("*.png"))


def test_localization_metrics_skipped_without_masks(tmp_path: Any) -> None:
    class NoMasks(GAPClassifier):
        def cam_inputs(self, batch: Any) -> CAMBatch:
            return CAMBatch(batch["image"], batch["label"])

    dm = make_data()
    trainer = make_trainer(tmp_path, [cam(metrics=("adcc", "iou"), num_images=2)])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.validate(make_model(dm, cls=NoMasks), dm, verbose=False)
    assert len(cam_warnings(record, "need ground-truth masks")) == 1
    assert "cam/gradcam/adcc" in trainer.callback_metrics and "cam/gradcam/iou" not in trainer.callback_metrics
    # with masks, the same metric is logged
    trainer = make_trainer(tmp_path, [cam(metrics=("adcc", "iou"), num_images=2)])
    trainer.validate(make_model(dm), dm, verbose=False)
    assert math.isfinite(float(trainer.callback_metrics["cam/gradcam/iou"]))


# ----------------------------------------------------------------------------- checkpoints
def test_resume_restores_probe_and_continues_the_evolution(tmp_path: Any) -> None:
    dm = make_data()
    ckpt = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    cb1 = cam(num_images=4)
    make_trainer(tmp_path, [cb1, ckpt], enable_checkpointing=True).fit(make_model(dm), dm)
    state = torch.load(ckpt.last_model_path, weights_only=False)["callbacks"][cb1.state_key]
    assert state["epochs_logged"] == [0, 1] and state["probe"]["images"].shape == (4, 3, 32, 32)

    cb2 = cam(num_images=4)
    trainer = make_trainer(tmp_path, [cb2], logger=TensorBoardLogger(str(tmp_path), name="resumed"), max_epochs=3)
    trainer.fit(make_model(dm, seed=1), dm, ckpt_path=ckpt.last_model_path)
    assert cb2.epochs_logged == [0, 1, 2]
    assert torch.equal(cb2.probe.images, cb1.probe.images) and torch.equal(cb2.probe.labels, cb1.probe.labels)
    assert cb2.history.epochs("gradcam") == [0, 1, 2]
    for epoch in (0, 1):
        assert torch.equal(cb2.history.maps["gradcam"][epoch], cb1.history.maps["gradcam"][epoch])
    acc = events(trainer.loggers[0].log_dir)
    assert [e.step for e in acc.Images("cam/gradcam/grid")] == [5]  # the scalars' step of epoch 2
    (evo,) = acc.Images("cam/gradcam/evolution")
    assert evo.step == 5 and evo.height == 4 * (96 + 2) + 2  # input row + 3 epoch rows of 96-pixel tiles


# ----------------------------------------------------------------------------- faults
def test_a_raising_method_is_counted_and_training_completes(tmp_path: Any) -> None:
    dm = make_data()
    trainer = make_trainer(tmp_path, [CAMCallback(methods=(Broken, "gradcam"), num_images=2)])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(make_model(dm), dm)
    assert trainer.current_epoch == 2
    msgs = cam_warnings(record, "fault(s) in CAM work")
    # per epoch: 2 validation batches + 1 probe grid, all from the broken method
    assert len(msgs) == 2
    assert all("3 fault(s)" in m and "3 error" in m and "boom in explain" in m for m in msgs)
    assert "cam/gradcam/adcc" in trainer.callback_metrics and "cam/broken/adcc" not in trainer.callback_metrics


def test_nan_maps_are_left_out_and_counted(tmp_path: Any) -> None:
    dm = make_data()
    trainer = make_trainer(tmp_path, [CAMCallback(methods=(NaNFirst,), num_images=2)], max_epochs=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(make_model(dm), dm)
    (msg,) = cam_warnings(record, "fault(s) in CAM work")
    # per batch: the NaN map of sample 0 (the second pass on x * map, which NaNFirst also spoils at its sample 0,
    # spoils that same left-out sample: the batch keeps its order); 2 batches + the probe call
    assert "3 fault(s)" in msg and "3 nonfinite" in msg
    for metric in ADCC:
        assert math.isfinite(float(trainer.callback_metrics[f"cam/nanfirst/{metric}"]))


def test_a_failing_logger_is_counted_and_training_completes(tmp_path: Any) -> None:
    dm = make_data()
    # no gallery: one image per epoch (the grid), so one logger fault per epoch (the gallery would add one)
    trainer = make_trainer(tmp_path, [CAMCallback(num_images=2, views=("drift", "agreement", "summary"))],
                           logger=FailingTB(str(tmp_path), name="fail"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(make_model(dm), dm)
    assert trainer.current_epoch == 2
    # images are written in the background: a write's failure is counted in the next run's report (epoch 0's grid
    # in epoch 1's), the last run's and the end of fit's in the report at teardown
    (msg,) = cam_warnings(record, "fault(s) in CAM work")
    assert "at epoch 1 (1 logger)" in msg and "write cam/gradcam/grid at step" in msg and "disk full" in msg
    (last,) = cam_warnings(record, "in the background")
    # grid and evolution (TensorBoard charts the curves itself: no summary figure)
    assert "2 logger" in last and "evolution images" in last and "disk full" in last
    assert "cam/gradcam/adcc" in trainer.callback_metrics


def test_on_error_raise_reraises(tmp_path: Any) -> None:
    dm = make_data()
    trainer = make_trainer(tmp_path, [CAMCallback(methods=(Broken,), on_error="raise")], logger=False)
    with pytest.raises(RuntimeError, match="boom in explain"):
        trainer.fit(make_model(dm), dm)
    trainer = make_trainer(tmp_path, [CAMCallback(methods=(NaNFirst,), on_error="raise")], logger=False)
    with pytest.raises(RuntimeError, match="non-finite"):
        trainer.validate(make_model(dm), dm, verbose=False)


def test_sanity_check_is_skipped_by_default(tmp_path: Any) -> None:
    dm = make_data()
    Recording.calls = []
    options = {"num_sanity_val_steps": 1, "max_epochs": 1, "limit_val_batches": 1, "logger": False}
    trainer = make_trainer(tmp_path, [cam(methods=(Recording,), metrics=("complexity",), num_images=0)], **options)
    trainer.fit(make_model(dm), dm)
    assert [n for n, _ in Recording.calls] == [16]  # epoch 0 only
    Recording.calls = []
    trainer = make_trainer(tmp_path, [cam(methods=(Recording,), metrics=("complexity",), num_images=0,
                                          skip_sanity_check=False)], **options)
    trainer.fit(make_model(dm), dm)
    assert [n for n, _ in Recording.calls] == [16, 16]  # sanity check, then epoch 0


def test_no_logger_writes_no_files(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    dm = make_data()
    cb = cam(num_images=2)
    trainer = make_trainer(tmp_path, [cb], logger=False, max_epochs=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(make_model(dm), dm)
    assert cb.history.epochs("gradcam") == [0]  # the evolution exists in the state ...
    assert not list(tmp_path.rglob("*.png"))  # ... but logger=False means no output files
    assert len(cam_warnings(record, "the trainer has no logger, so the CAM heatmap grids")) == 1


def test_target_label_without_labels_is_a_fault_under_warn_and_an_error_under_raise(tmp_path: Any) -> None:
    class NoLabels(GAPClassifier):
        """The model's own steps see the labels; the callback's ``cam_inputs`` calls get none."""

        in_step = False

        def _step(self, batch: Any, stage: str) -> torch.Tensor:
            self.in_step = True
            try:
                return super()._step(batch, stage)
            finally:
                self.in_step = False

        def cam_inputs(self, batch: Any) -> CAMBatch:
            return CAMBatch(batch["image"], batch["label"] if self.in_step else None)

    dm = make_data()
    trainer = make_trainer(tmp_path, [CAMCallback(target="label", num_images=2)], logger=False, max_epochs=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(make_model(dm, cls=NoLabels), dm)
    (msg,) = cam_warnings(record, "fault(s) in CAM work")
    assert "2 fault(s)" in msg and "2 error" in msg and "return labels from `cam_inputs`" in msg
    assert trainer.current_epoch == 1 and "cam/gradcam/adcc" not in trainer.callback_metrics
    trainer = make_trainer(tmp_path, [cam(target="label")], logger=False)
    with pytest.raises(ValueError, match=r"CAMCallback\(target='label'\) needs labels.*use target='pred'"):
        trainer.validate(make_model(dm, cls=NoLabels), dm, verbose=False)


def test_evolution_faults_go_through_the_same_policy(tmp_path: Any) -> None:
    dm = make_data()
    trainer = make_trainer(tmp_path, [cam(num_images=2, log_evolution=True)],
                           logger=FailingTB(str(tmp_path), name="fail"), max_epochs=1)
    with pytest.raises(OSError, match="disk full"):  # on_error="raise": the first failing grid stops the run
        trainer.fit(make_model(dm), dm)
    trainer = make_trainer(tmp_path, [CAMCallback(num_images=2)], logger=FailingTB(str(tmp_path), name="f2"),
                           max_epochs=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(make_model(dm), dm)
    (msg,) = cam_warnings(record, "evolution images")
    # one report at teardown for the images written in the background: the last run's (the grid, the gallery) and
    # the end of fit's (the evolution image; no summary figure: TensorBoard charts the curves itself), all failed
    assert msg.startswith("CAMCallback: 3 fault(s) while writing the CAM images in the background (the last CAM "
                          "run's, and at the end of fit the evolution images and the views' final images) (3 logger); "
                          "first logger on rank 0: a logger failed to write cam/gradcam/"), msg
    assert "disk full" in msg


# ----------------------------------------------------------------------------- any model (issue 16)
class _AnyModel(CAMMixin, pl.LightningModule):
    """A user's module around any network: no target layer named (the rule chooses), logits read from whatever
    the network returns (a tensor, a HuggingFace ModelOutput, a dict)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> Any:
        return self.net(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self(x)
        return out if isinstance(out, torch.Tensor) else out.logits if hasattr(out, "logits") else out["logits"]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self._logits(batch[0]), batch[1])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", nn.functional.cross_entropy(self._logits(batch[0]), batch[1]))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loaders(channels: int, size: int = 32) -> tuple[Any, Any]:
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(16, channels, size, size, generator=g), torch.randint(0, 3, (16,), generator=g))
    return DataLoader(data, batch_size=8), DataLoader(data, batch_size=8)


class _DictNet(nn.Module):
    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.ReLU())
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(self.features(x).mean(dim=(2, 3))), "aux": x.mean()}


def _hf_vit() -> nn.Module:
    import transformers as hf

    config = hf.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, num_labels=3)
    return hf.ViTForImageClassification(config)


@pytest.mark.parametrize(("net", "channels", "layer"), [
    (_DictNet, 3, r"net\.features"), (lambda: _DictNet(4), 4, r"net\.features"),
    (_hf_vit, 3, r"net\.vit\.(encoder\.layer|layers)\.0"),  # the first of 2 blocks: the last one's output fails (c)
], ids=["dict-output", "4-channels", "huggingface-vit"])
def test_any_model_works_in_the_callback_without_a_wrapper(tmp_path: Any, net: Any, channels: int,
                                                           layer: str) -> None:
    torch.manual_seed(0)
    model = _AnyModel(net())
    cb = CAMCallback(metrics=("complexity", "average_drop", "adcc"), num_images=2, on_error="raise")
    trainer = make_trainer(tmp_path, [cb], max_epochs=1)
    train, val = _loaders(channels)
    trainer.fit(model, train, val)
    assert all(math.isfinite(float(trainer.callback_metrics[f"cam/gradcam/{k}"])) for k in ("complexity", "adcc"))
    cam = cb._runner.cams["gradcam"]
    assert re.fullmatch(layer, cam.target_layer_name), cam.target_layer_reason  # chosen by the rule, first batch
    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0})  # type: ignore[union-attr]
    acc.Reload()
    (grid,) = acc.Images("cam/gradcam/grid")  # the grid is written whatever the channel count
    assert grid.width > 0 and acc.Images("cam/gradcam/worst")


class _MLP(nn.Module):
    """An MLP on flattened images: no layer keeps a spatial layout."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_model_without_a_spatial_layer_gets_one_message_and_no_figure(tmp_path: Any) -> None:
    """Two epochs of an MLP: one warning that says the model has no spatial layer (not a fault per epoch), and no
    metric, grid, strategies alarm or summary line for the method that never made a map."""
    torch.manual_seed(0)
    model = _AnyModel(_MLP())
    cb = CAMCallback(num_images=2)
    trainer = make_trainer(tmp_path, [cb], max_epochs=2)
    train, val = _loaders(3)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(model, train, val)
    said = cam_warnings(record, "has no layer with a spatial output")
    assert len(said) == 1 and "left out of this run" in said[0] and "MLP on flattened images" in said[0], said
    assert not cam_warnings(record, "fault(s)")
    assert not [k for k in trainer.callback_metrics if k.startswith("cam/")], list(trainer.callback_metrics)
    acc = events(trainer.logger.log_dir)  # type: ignore[union-attr]
    assert not [t for t in acc.Tags()["scalars"] if t.startswith("cam/")], acc.Tags()["scalars"]
    assert not [t for t in acc.Tags()["images"] if t.startswith("cam/")], acc.Tags()["images"]


def test_several_target_layers_through_a_fit(tmp_path: Any) -> None:
    """`cam_target_layer` a list: every method explains each layer and averages the maps; the fit logs their
    metrics and grids like any other."""
    dm = make_data()
    model = make_model(dm)
    model.cam_target_layer = ["features.0", "features.1"]  # type: ignore[assignment]
    cb = cam(methods=("gradcam", "eigencam"), metrics=ADCC, num_images=2)
    trainer = make_trainer(tmp_path, [cb], max_epochs=1)
    trainer.fit(model, dm)
    assert {c.target_layer_name for c in cb._runner.cams.values()} == {"features.0+features.1"}
    for method in ("gradcam", "eigencam"):
        assert all(math.isfinite(float(trainer.callback_metrics[f"cam/{method}/{k}"])) for k in ADCC)
    assert len(events(trainer.logger.log_dir).Images("cam/gradcam/grid")) == 1  # type: ignore[union-attr]


def test_trainer_test_prints_the_metrics_readably_and_per_class_statistics_go_to_the_logger(tmp_path: Any) -> None:
    """`trainer.test` returns (and prints) the cam_test metrics, not the strategies' per-class statistics, which the
    logger gets in a section of their own (`cam_test_strategies/`)."""
    dm = make_data()
    model = make_model(dm)
    cb = cam(metrics=ADCC, num_images=0, stages=("fit", "test"), views={"strategies": {"min_maps": 4}})
    trainer = make_trainer(tmp_path, [cb], max_epochs=1)
    trainer.fit(model, dm)
    (results,) = trainer.test(model, dm, verbose=False)
    cam_keys = [k for k in results if k.startswith("cam_test")]
    assert cam_keys and not [k for k in cam_keys if "strateg" in k and not k.endswith("/strategy/alarm")], cam_keys
    assert len(cam_keys) <= 2 * len(ADCC) + 4, cam_keys
    tags = events(trainer.logger.log_dir).Tags()["scalars"]  # type: ignore[union-attr]
    assert [t for t in tags if t.startswith("cam_test_strategies/gradcam/")], tags
    assert [t for t in tags if t.startswith("cam_strategies/gradcam/")], tags


# ----------------------------------------------------------------------------- cost by part (issue 32)
def test_timing_splits_the_callbacks_work_by_part_and_the_images_are_written_when_fit_returns(
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    dm = make_data()
    timed_cb, plain_cb = CAMCallback(num_images=2, timing=True), CAMCallback(num_images=2)
    trainer = make_trainer(tmp_path, [timed_cb], max_epochs=1)
    with caplog.at_level("INFO"):
        trainer.fit(make_model(dm), dm)
    parts = timed_cb.timings
    assert {"batch/passes", "batch/observe/worst", "end/worst", "probe/passes", "probe/grid", "encode",
            "fit_end/grid", "start"} <= set(parts) and all(v >= 0 for v in parts.values())
    assert any("CAM work of epoch 0" in r.message and "batch/passes" in r.message for r in caplog.records)
    assert plain_cb.timings == {}
    # the grids, the gallery and the evolution image were written in the background, and all are there when fit
    # returns (TensorBoard's own reader)
    events = EventAccumulator(str(trainer.logger.log_dir), size_guidance={"images": 0})
    events.Reload()
    assert {"cam/gradcam/grid", "cam/gradcam/worst", "cam/gradcam/evolution"} <= set(events.Tags()["images"])
    # TensorBoard charts the curves itself (the custom-scalars layout): no summary figure by default
    assert "cam/summary" not in events.Tags()["images"] and "custom_scalars__config__" in events.Tags()["tensors"]
    assert not any(t.name == "lightning_cam-images" and t.is_alive() for t in threading.enumerate())


def test_an_exception_in_training_still_writes_the_queued_images_before_the_loggers_close(tmp_path: Any) -> None:
    """Lightning calls `on_exception`, finalizes the loggers and calls no `teardown`: the images queued by the last
    CAM run are written before that, and no writer thread is left running."""
    dm = make_data()

    class FailsLater(GAPClassifier):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if self.current_epoch == 1:
                raise RuntimeError("the user's own bug")
            return super().training_step(batch, batch_idx)

    trainer = make_trainer(tmp_path, [CAMCallback(num_images=2)], max_epochs=3)
    with pytest.raises(RuntimeError, match="the user's own bug"):
        trainer.fit(make_model(dm, cls=FailsLater), dm)
    events = EventAccumulator(str(trainer.logger.log_dir), size_guidance={"images": 0})  # type: ignore[union-attr]
    events.Reload()
    assert len(events.Images("cam/gradcam/grid")) == 1  # epoch 0's validation
    # (without `on_exception` the writer's threads were left running, waiting for a `teardown` that never comes)
    assert not any(t.name == "lightning_cam-images" and t.is_alive() for t in threading.enumerate())
