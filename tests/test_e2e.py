"""End to end: the default config through the CLI, training untouched by the callback, 2-process DDP."""

from __future__ import annotations

import glob
import json
import math
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.loggers import TensorBoardLogger

from lightning_cam import CAMCallback
from lightning_cam.data import ShapesDataModule
from lightning_cam.models import GAPClassifier
from tests.helpers import events

REPO = Path(__file__).resolve().parents[1]
# The CAM settings of the main job, read from its config so that the tests follow it.
_CONFIG_CAM = yaml.safe_load((REPO / "configs" / "shapes.yaml").read_text())["trainer"]["callbacks"][0]["init_args"]
CONFIG_METHODS = tuple(_CONFIG_CAM["methods"])
CONFIG_METRICS = tuple(_CONFIG_CAM["metrics"])


@pytest.mark.slow
def test_default_config_two_epochs_fills_tensorboard(tmp_path: Path) -> None:
    from lightning_cam.cli import main

    cli = main(args=[
        "fit", "--config", str(REPO / "configs" / "shapes.yaml"), "--trainer.max_epochs=2",
        "--data.num_train=64", "--data.num_val=32", "--data.image_size=32", "--data.batch_size=16",
        f"--trainer.logger.init_args.save_dir={tmp_path}", f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
    ])
    (cb,) = [c for c in cli.trainer.callbacks if isinstance(c, CAMCallback)]
    assert cb.methods == CONFIG_METHODS and cb.metrics == CONFIG_METRICS
    log_dir = cli.trainer.logger.log_dir
    acc = events(log_dir)
    for method in CONFIG_METHODS:
        grids = acc.Images(f"cam/{method}/grid")
        assert [g.step for g in grids] == [3, 7]  # the scalars' steps (4 training batches per epoch)
        tile = cb.tile_size  # the config's
        assert all(g.width > 8 * tile and g.height > 2 * tile for g in grids)  # 8 probe images, 2 rows + captions
        assert [g.step for g in acc.Images(f"cam/{method}/evolution")] == [7]
        assert os.path.exists(os.path.join(log_dir, f"cam_evolution_{method}.png"))
        for metric in CONFIG_METRICS:
            values = [s.value for s in acc.Scalars(f"cam/{method}/{metric}")]
            assert len(values) == 2 and all(math.isfinite(v) for v in values), (method, metric, values)


def _fit_state(tmp_path: Path, with_callback: bool) -> tuple[dict[str, torch.Tensor], Any]:
    pl.seed_everything(7)
    dm = ShapesDataModule(num_train=64, num_val=32, image_size=32, batch_size=16, seed=0)
    model = GAPClassifier(num_classes=5, channels=(8, 16), dropout=0.2, class_names=dm.class_names,
                          mean=dm.hparams.mean, std=dm.hparams.std)
    callbacks = [CAMCallback(methods=("gradcam", "smoothgradcam++", "eigencam"), metrics=CONFIG_METRICS,
                             num_images=4, on_error="raise")] if with_callback else []
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=TensorBoardLogger(str(tmp_path)),
                         callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, num_sanity_val_steps=2)
    trainer.fit(model, dm)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rngs = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    return state, (rngs, [p.grad for p in model.parameters()], trainer.callback_metrics)


@pytest.mark.slow
def test_training_is_bit_identical_with_and_without_the_callback(tmp_path: Path) -> None:
    plain, (rng_plain, grads_plain, _) = _fit_state(tmp_path / "plain", with_callback=False)
    watched, (rng_watched, grads_watched, metrics) = _fit_state(tmp_path / "cam", with_callback=True)
    assert "cam/smoothgradcam_pp/adcc" in metrics  # the callback really worked
    assert plain.keys() == watched.keys()
    for key in plain:  # every parameter and buffer (BatchNorm running stats, num_batches_tracked)
        assert torch.equal(plain[key], watched[key]), key
    assert torch.equal(rng_plain[0], rng_watched[0])
    assert np.array_equal(rng_plain[1], rng_watched[1]) and rng_plain[2] == rng_watched[2]
    for g_plain, g_watched in zip(grads_plain, grads_watched):  # .grad as the optimizer left it
        assert (g_plain is None and g_watched is None) or torch.equal(g_plain, g_watched)


DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.loggers import TensorBoardLogger
    from lightning_cam import CAMCallback
    from lightning_cam.data import ShapesDataModule
    from lightning_cam.methods import GradCAM
    from lightning_cam.models import GAPClassifier

    METRICS = {metrics!r}

    class Rank1Broken(GradCAM):
        # fails on rank 1 only: the ranks must stay in step and training must go on
        name = "rank1broken"

        def explain(self, images, targets=None):
            if torch.distributed.is_initialized() and torch.distributed.get_rank() == 1:
                raise RuntimeError("rank 1 fails")
            return super().explain(images, targets)

    def build():
        dm = ShapesDataModule(num_train=64, num_val=32, image_size=32, batch_size=8, seed=0)
        torch.manual_seed(0)
        model = GAPClassifier(num_classes=5, channels=(8, 16), class_names=dm.class_names,
                              mean=dm.hparams.mean, std=dm.hparams.std)
        return dm, model

    def callback(ddp):
        methods = ("gradcam", "eigencam", Rank1Broken) if ddp else ("gradcam", "eigencam")
        views = {{"worst": {{}}, "drift": {{}}, "agreement": {{}}, "strategies": {{"min_maps": 4}}, "summary": {{}}}}
        return CAMCallback(methods=methods, metrics=METRICS, num_images=4, on_error="warn", views=views)

    def capped():
        # max_samples is the total over ranks: 5 on 2 ranks (3 + 2) are the first 5 samples of one process
        return CAMCallback(methods=("layercam",), metrics=METRICS, max_samples=5, num_images=0, views=())

    if __name__ == "__main__":
        torch.set_num_threads(1)
        out, devices = sys.argv[1], int(sys.argv[2])
        dm, model = build()
        if devices > 1:
            trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp", max_epochs=2,
                                 logger=TensorBoardLogger(out, name="tb"), callbacks=[callback(True), capped()],
                                 enable_progress_bar=False, enable_model_summary=False,
                                 enable_checkpointing=False, num_sanity_val_steps=0)
            trainer.fit(model, dm)
            res = trainer.validate(model, dm, verbose=False)[0]
            if trainer.is_global_zero:
                torch.save(model.state_dict(), out + "/weights.pt")
                json.dump({{"validate": res, "log_dir": trainer.logger.log_dir}}, open(out + "/ddp.json", "w"))
        else:
            model.load_state_dict(torch.load(out + "/weights.pt"))
            trainer = pl.Trainer(accelerator="cpu", devices=1, logger=TensorBoardLogger(out, name="single"),
                                 callbacks=[callback(False), capped()], enable_progress_bar=False,
                                 enable_model_summary=False)
            res = trainer.validate(model, dm, verbose=False)[0]
            json.dump({{"validate": res, "log_dir": trainer.logger.log_dir}}, open(out + "/single.json", "w"))
    """
)


@pytest.mark.slow
def test_ddp_two_processes_same_tags_and_values_as_one_process(tmp_path: Path) -> None:
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(metrics=CONFIG_METRICS))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    stderr = {}
    for devices in ("2", "1"):
        proc = subprocess.run([sys.executable, str(script), str(tmp_path), devices], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        stderr[devices] = proc.stderr
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    single_run = json.loads((tmp_path / "single.json").read_text())
    single = single_run["validate"]
    acc = events(ddp["log_dir"])
    for method in ("gradcam", "eigencam"):
        # the scalars' steps: 2 fit epochs of 4 steps per rank, then validate after the 8 steps
        assert [g.step for g in acc.Images(f"cam/{method}/grid")] == [3, 7, 8]
        assert [g.step for g in acc.Images(f"cam/{method}/evolution")] == [7]
        for metric in CONFIG_METRICS:
            tag = f"cam/{method}/{metric}"
            values = [s.value for s in acc.Scalars(tag)]
            assert len(values) == 3 and all(math.isfinite(v) for v in values), (tag, values)
            # the 2 ranks' shares (16 samples each) synced == one process over all 32 samples
            assert ddp["validate"][tag] == pytest.approx(single[tag], rel=1e-5, abs=1e-6), tag
    assert not glob.glob(str(tmp_path / "tb" / "version_1"))  # one run directory: only rank zero wrote
    # the strategies of each class (issue 19): the maps gathered from both ranks give the clusters of one process
    # (per-class statistics go to the loggers only: read back from each run's TensorBoard, the validate's values)
    one = events(single_run["log_dir"])
    strategy = [k for k in one.Tags()["scalars"] if k.startswith("cam_strategies/")]
    assert any("/count/" in k for k in strategy) and any("/same/" in k for k in strategy)
    assert not [k for k in single if k.startswith("cam_strategies/")]  # not in the results (table)
    for tag in strategy:
        assert acc.Scalars(tag)[-1].value == pytest.approx(one.Scalars(tag)[-1].value, rel=1e-5, abs=1e-6), tag
    assert len(acc.Images("cam/gradcam/strategies")) == 3
    # the method failing on rank 1 only: every epoch (2 fit + 1 validate) reports rank 1's 2 failed batches,
    # summed across ranks, and logs the values of rank 0's share; the other methods are unaffected (above)
    for epoch in (0, 1, 2):  # with rank 1's own message (issue 18), gathered at the epoch's end
        assert (f"CAMCallback: 2 fault(s) in CAM work at epoch {epoch} (2 error); first error on rank 1: rank1broken "
                "raised RuntimeError: rank 1 fails") in stderr["2"], stderr["2"][-3000:]
    for metric in CONFIG_METRICS:  # max_samples=5 over 2 ranks: the samples one process scores
        tag = f"cam/layercam/{metric}"
        assert ddp["validate"][tag] == pytest.approx(single[tag], rel=1e-5, abs=1e-6), tag
    assert "fault(s)" not in stderr["1"]
    assert len(acc.Scalars("cam/rank1broken/adcc")) == 3 and len(acc.Images("cam/rank1broken/grid")) == 3
