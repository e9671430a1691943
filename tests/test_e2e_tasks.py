"""What the user of a multi-label or one-logit binary classifier sees (issue 17): the callback's scalars equal
``evaluate_batch`` on the same (image, class) pairs, the grid has one column per (probe image, label), a kind
that does not fit the model or the labels is a clear message, 2 processes equal 1, and the multi-label config
learns to point at each class's own object (read back from TensorBoard's event files)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_cam import CAMCallback, CAMMixin, evaluate_batch
from lightning_cam.data import ShapesDataModule
from lightning_cam.methods import GradCAM
from lightning_cam.models import GAPClassifier
from lightning_cam.render import cam_grid
from tests.helpers import assert_ddp_equals_one_process, events

REPO = Path(__file__).resolve().parents[1]
METRICS = ("average_drop", "increase", "coherency", "complexity", "adcc", "pointing_game")


def _setup(task: str, seed: int = 0) -> tuple[ShapesDataModule, GAPClassifier]:
    k = 2 if task == "binary" else 5
    dm = ShapesDataModule(num_train=32, num_val=24, num_test=8, image_size=32, batch_size=8, num_classes=k, task=task)
    torch.manual_seed(seed)
    model = GAPClassifier(num_classes=k, channels=(8, 16), class_names=dm.class_names, mean=dm.hparams.mean,
                          std=dm.hparams.std, task=task)
    return dm, model


def _validate(tmp_path: Path, task: str, **cam: object) -> tuple[GAPClassifier, ShapesDataModule, EventAccumulator]:
    dm, model = _setup(task)
    callback = CAMCallback(methods=("gradcam",), metrics=METRICS, max_samples=None, on_error="raise", **cam)
    trainer = pl.Trainer(accelerator="cpu", logger=TensorBoardLogger(str(tmp_path), name="tb"), callbacks=[callback],
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(model, dm, verbose=False)
    return model, dm, events(trainer.logger.log_dir)


def _reference(model: GAPClassifier, dm: ShapesDataModule, target: str) -> dict[str, float]:
    """The mean of evaluate_batch's per-pair values over the validation split, blank maps left out."""
    cam = GradCAM(model, task=model.cam_task)
    per: dict[str, list[torch.Tensor]] = {m: [] for m in METRICS}
    for batch in dm.val_dataloader():
        parts = model.cam_inputs(batch)
        values = evaluate_batch(cam, parts.images, parts.labels if target == "label" else None, parts.masks,
                                metrics=METRICS)
        for m in METRICS:
            per[m].append(values[m])
    out = {}
    for m in METRICS:
        v = torch.cat(per[m])
        out[m] = float(v[torch.isfinite(v)].mean())
    return out


@pytest.mark.parametrize("target", ["label", "pred"])
def test_multilabel_scalars_equal_evaluate_batch_on_the_same_pairs(tmp_path: Path, target: str) -> None:
    model, dm, acc = _validate(tmp_path, "multilabel", target=target, num_images=3, views=("per_class", "worst"))
    want = _reference(model, dm, target)
    for metric in METRICS:
        (got,) = acc.Scalars(f"cam/gradcam/{metric}")
        assert got.value == pytest.approx(want[metric], rel=1e-4, abs=1e-5), metric
    per_class = [t for t in acc.Tags()["scalars"] if t.startswith("cam/gradcam/per_class/pointing_game/")]
    assert per_class, "per-class curves of the pairs' classes"
    # the grid: one column per (probe image, label), whatever `target` is (fixed columns across epochs)
    labels = torch.stack([dm.val_set[i]["label"] for i in range(3)])
    pairs = int(labels.sum())
    (grid,) = acc.Images("cam/gradcam/grid")
    want_w = cam_grid(torch.rand(pairs, 3, 32, 32), torch.rand(pairs, 32, 32), torch.zeros(pairs)).shape[-1]
    assert pairs > 3 and grid.width == want_w


def test_binary_scalars_use_the_sigmoid_of_the_one_logit(tmp_path: Path) -> None:
    model, dm, acc = _validate(tmp_path, "binary", target="label", num_images=4)
    assert model.fc.out_features == 1
    want = _reference(model, dm, "label")
    for metric in METRICS:
        (got,) = acc.Scalars(f"cam/gradcam/{metric}")
        assert got.value == pytest.approx(want[metric], rel=1e-4, abs=1e-5), metric
    assert 0 < want["average_drop"] < 100  # a softmax over one logit would give 0 for every image


class _UserModule(CAMMixin, pl.LightningModule):
    """A user's module that trains with binary cross-entropy but leaves ``cam_task`` at its default."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        label = batch["label"].float()
        logits = self(batch["image"])
        return F.binary_cross_entropy_with_logits(logits.view_as(label), label)


def _user_validate(dm: ShapesDataModule, outputs: int) -> None:
    callback = CAMCallback(methods=("gradcam",), metrics=("average_drop",), on_error="raise", num_images=0)
    pl.Trainer(accelerator="cpu", logger=False, callbacks=[callback], enable_progress_bar=False,
               enable_model_summary=False).validate(_UserModule(outputs), dm, verbose=False)


def test_a_kind_that_does_not_fit_is_a_clear_message() -> None:
    # a one-logit model left at the default softmax kind: the message says to set task='binary'
    with pytest.raises(ValueError, match="set task='binary'"):
        _user_validate(_setup("binary")[0], 1)
    # multi-hot labels for a softmax module: never an argmax, the message names cam_task
    with pytest.raises(ValueError, match="cam_task = 'multilabel'"):
        _user_validate(_setup("multilabel")[0], 5)


DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pytorch_lightning as pl
    import torch
    from lightning_cam import CAMCallback
    from lightning_cam.data import ShapesDataModule
    from lightning_cam.models import GAPClassifier

    METRICS = {metrics!r}

    if __name__ == "__main__":
        torch.set_num_threads(1)
        out, devices = sys.argv[1], int(sys.argv[2])
        dm = ShapesDataModule(num_train=32, num_val=32, image_size=32, batch_size=8, task="multilabel")
        torch.manual_seed(0)
        model = GAPClassifier(channels=(8, 16), class_names=dm.class_names, task="multilabel")
        cams = [CAMCallback(methods=("gradcam", "eigencam"), metrics=METRICS, target="pred", num_images=2,
                            views=("per_class", "agreement", "worst")),
                CAMCallback(methods=("layercam",), metrics=METRICS, target="label", max_samples=5, num_images=0,
                            views=())]
        strategy = "ddp" if devices > 1 else "auto"
        trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False, callbacks=cams,
                             enable_progress_bar=False, enable_model_summary=False)
        res = trainer.validate(model, dm, verbose=False)[0]
        if trainer.is_global_zero:
            json.dump(res, open(out + f"/res{{devices}}.json", "w"))
    """
)


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_on_pairs(tmp_path: Path) -> None:
    cam_keys = assert_ddp_equals_one_process(DDP_SCRIPT.format(metrics=METRICS), tmp_path)
    assert any("/per_class/" in k for k in cam_keys) and any(k.startswith("cam/layercam/") for k in cam_keys)


@pytest.mark.slow
def test_multilabel_config_learns_to_point_at_each_class(tmp_path: Path) -> None:
    # the real config, shortened (3 epochs on half the images): each class's map finds its own object far more
    # often than a random point would (chance: the share of the image the class's object covers, 9-19 %)
    from lightning_cam.cli import main

    cli = main(args=["fit", "--config", str(REPO / "configs" / "shapes_multilabel.yaml"), "--trainer.max_epochs=3",
                     "--data.num_train=2000", "--data.num_val=256", f"--trainer.logger.init_args.save_dir={tmp_path}",
                     f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false"])
    acc = events(cli.trainer.logger.log_dir)
    dm = cli.datamodule
    masks = dm.val_set.masks.float()  # (N, K, H, W)
    chance = (masks.flatten(2).mean(2).sum(0) / dm.val_set.labels.sum(0).clamp(min=1)).tolist()
    for k, name in enumerate(dm.class_names):
        series = [s.value for s in acc.Scalars(f"cam/gradcam/per_class/pointing_game/{name}")]
        assert len(series) == 3 and all(math.isfinite(v) for v in series)
        assert series[-1] > 2.5 * chance[k], (name, series, chance[k])
    overall = [s.value for s in acc.Scalars("cam/gradcam/pointing_game")]
    assert overall[-1] > max(overall[0], 0.5), overall
