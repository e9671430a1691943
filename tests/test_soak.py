"""Soak: 200 CAM calls and 50 validation epochs of CAMCallback leave no hooks behind and no growing memory.

Two measures after a warm-up and at the end: the process resident set size (``/proc/self/statm``, else
``resource``'s peak) and the number of live ``torch.Tensor`` objects (``gc``; deterministic). The figures are
printed (``pytest -s`` or the CI log shows them). The bounds are generous for allocator noise yet far below
what a real leak would add: keeping one target-layer activation per call (2 x 16 x 64 x 64 float32 = 512 KiB)
would add 90 MiB over the 180 measured calls, and one tensor or more per call.
"""

from __future__ import annotations

import gc
import os
import resource
import warnings
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_cam import CAMCallback, CAMMixin
from lightning_cam.callbacks.images import EVOLUTION_ROWS
from lightning_cam.methods import get_method

MiB = 1024 * 1024
RSS_BOUND = 40 * MiB  # a leak of one activation per call (512 KiB x 180) is 90 MiB
METHODS = ("gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "cam", "eigencam", "scorecam",
           "smoothgradcam++", "fakecam")
KWARGS: dict[str, dict[str, Any]] = {"scorecam": {"batch_size": 16}, "smoothgradcam++": {"num_samples": 2}}


def rss() -> int:
    """Resident set size of this process in bytes (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def live_tensors() -> int:
    """Live ``torch.Tensor`` objects (about 0.5 s: a full ``gc`` scan)."""
    gc.collect()
    with warnings.catch_warnings():  # isinstance() on lazy torch module attributes may warn
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def hook_counts(model: nn.Module) -> list[int]:
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
             "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")
    return [len(getattr(m, n, {})) for m in model.modules() for n in names]


class Net(CAMMixin, pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                      nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def data(n: int, size: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.randn(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)),
                      batch_size=4)


class Meter(Callback):
    """Records RSS at the end of every validation epoch and live tensors at the ``count_at`` epochs (listed
    after the CAM callback, so it sees the state the CAM work left)."""

    def __init__(self, count_at: set[int]) -> None:
        self.count_at = count_at
        self.rss: list[int] = []
        self.tensors: dict[int, int] = {}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch in self.count_at:
            self.tensors[trainer.current_epoch] = live_tensors()  # collects garbage first (0.3 s: not every epoch)
        self.rss.append(rss())


@pytest.mark.slow
def test_soak_200_cam_calls_no_hooks_no_growth() -> None:
    torch.set_num_threads(1)
    model = Net().eval()
    before = hook_counts(model)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 64, 64, generator=g)
    warmup, total = 20, 200
    for i in range(total):
        if i == warmup:
            rss0, tensors0 = rss(), live_tensors()
        name = METHODS[i % len(METHODS)]
        cam = get_method(name)(model, "features.3", **KWARGS.get(name, {}))
        maps = cam(x, targets=torch.tensor([i % 3, (i + 1) % 3]))
        assert maps.shape == (2, 64, 64) and bool(torch.isfinite(maps).all())
        del cam, maps
    rss1, tensors1 = rss(), live_tensors()
    print(f"\n[soak] {total} CAM calls ({len(METHODS)} methods, 2 x 3 x 64 x 64): RSS after {warmup} warm-up calls "
          f"{rss0 / MiB:.1f} MiB, at the end {rss1 / MiB:.1f} MiB (growth {(rss1 - rss0) / MiB:+.1f} MiB over "
          f"{total - warmup} calls); live tensors {tensors0} -> {tensors1}")
    assert hook_counts(model) == before and sum(before) == 0
    assert all(p.grad is None for p in model.parameters())
    assert tensors1 - tensors0 <= 0
    assert rss1 - rss0 < RSS_BOUND


@pytest.mark.slow
def test_soak_50_validation_epochs_no_hooks_no_growth(tmp_path: Any) -> None:
    torch.set_num_threads(1)
    epochs, warmup, images = 50, 5, 4
    model = Net()
    before = hook_counts(model)
    cb = CAMCallback(methods=("gradcam", "scorecam"), num_images=images, max_samples=8, progress=False,
                     tile_size=32, method_kwargs={"scorecam": {"batch_size": 32}})
    meter = Meter({warmup - 1, epochs - 1})
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, limit_train_batches=1, callbacks=[cb, meter],
        logger=TensorBoardLogger(str(tmp_path), name="tb"), enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, num_sanity_val_steps=0, log_every_n_steps=1,
    )
    trainer.fit(model, data(4, 32, 0), data(8, 32, 1))
    assert trainer.current_epoch == epochs and len(meter.rss) == epochs
    assert cb.history.epochs("gradcam") == list(range(epochs))
    rss0, rss1 = meter.rss[warmup - 1], meter.rss[-1]
    t0, t1 = meter.tensors[warmup - 1], meter.tensors[epochs - 1]
    trend = ", ".join(f"{r / MiB:.1f}" for r in meter.rss[warmup - 1 :: 5])
    # what the callback legitimately keeps per epoch: the probe maps (uint8, <= 64 px) and predictions per method
    kept = 2 * len(cb.methods)
    history_bytes = sum(t.numel() * t.element_size() for per in cb.history.maps.values() for t in per.values())
    print(f"\n[soak] {epochs} validation epochs (gradcam + scorecam, 8 samples + {images} probe images, "
          f"TensorBoard): RSS after epoch {warmup - 1} {rss0 / MiB:.1f} MiB, after epoch {epochs - 1} "
          f"{rss1 / MiB:.1f} MiB (growth {(rss1 - rss0) / MiB:+.1f} MiB over {epochs - warmup} epochs); live tensors "
          f"{t0} -> {t1} (the history keeps {kept} per epoch: {(t1 - t0) / (epochs - warmup):.1f}/epoch); "
          f"history {history_bytes / 1024:.1f} KiB of uint8 maps; RSS every 5 epochs from epoch {warmup - 1} (MiB): "
          f"{trend}")
    assert hook_counts(model) == before and sum(before) == 0
    # and the images of the run that just ended, still on the writer thread when the meter counts (a copy each:
    # a grid, a gallery and a strategies image per method), however far the writer got
    in_flight = 3 * len(cb.methods)
    assert t1 - t0 <= kept * (epochs - warmup) + in_flight
    assert rss1 - rss0 < RSS_BOUND
    # the history is uint8 maps of at most 64 px: 50 epochs x 4 images x 32 x 32 x 2 methods
    assert all(t.dtype == torch.uint8 and t.shape == (images, 32, 32) for per in cb.history.maps.values()
               for t in per.values())
    assert history_bytes == epochs * images * 32 * 32 * len(cb.methods)
    # the evolution image shows at most EVOLUTION_ROWS epochs, first and last included
    rows = cb.history.series("gradcam", max_rows=EVOLUTION_ROWS)
    assert rows is not None and len(rows[0]) == EVOLUTION_ROWS and rows[0][0] == 0 and rows[0][-1] == epochs - 1
