"""ProbePass: the probe grids of a model with extra inputs (forward(x, meta)) get their inputs too."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn

from lightning_cam import CAMBatch, CAMCallback, CAMMixin
from lightning_cam.callbacks.probe import ProbeSet


class MetaNet(CAMMixin, pl.LightningModule):
    """A classifier whose logits depend on a per-sample scalar besides the image."""

    cam_target_layer = "conv"

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: Tensor, meta: Tensor) -> Tensor:
        return self.fc(torch.cat([torch.relu(self.conv(x)).mean((2, 3)), meta[:, None]], 1))

    def cam_inputs(self, batch: tuple[Tensor, Tensor, Tensor]) -> CAMBatch:
        x, y, meta = batch
        return CAMBatch(x, y, extra=(meta,))

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], _: int) -> Tensor:
        x, y, meta = batch
        return nn.functional.cross_entropy(self(x, meta), y)

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], _: int) -> None:
        x, y, meta = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x, meta), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_probe_keeps_the_extra_inputs_of_its_images_and_checkpoints_them() -> None:
    probe = ProbeSet(capacity=2)
    probe.add(torch.rand(3, 3, 4, 4), torch.tensor([0, 1, 2]), extra={"meta": torch.tensor([5.0, 6.0, 7.0])})
    assert probe.size == 2 and probe.frozen and probe.extra is not None
    assert probe.extra.kwargs["meta"].tolist() == [5.0, 6.0]
    restored = ProbeSet(capacity=2)
    restored.load_state_dict(probe.state_dict())
    assert restored.extra is not None and restored.extra.kwargs["meta"].tolist() == [5.0, 6.0]


def test_grids_of_a_model_with_extra_inputs_are_logged_without_faults(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(16, 3, 8, 8), torch.randint(0, 3, (16,)), torch.randn(16))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    cb = CAMCallback(num_images=2, metrics=("complexity",), on_error="raise")
    trainer = pl.Trainer(max_epochs=1, logger=logger, callbacks=[cb], enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(MetaNet(), loader, loader)
    assert not [w for w in caught if "fault" in str(w.message)]
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert len(events.Images("cam/gradcam/grid")) == 1 and len(events.Images("cam/gradcam/evolution")) == 1
