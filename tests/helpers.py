"""Test doubles shared by several test files (imported as ``tests.helpers``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger

from lightning_cam.data import ShapesDataset
from lightning_cam.models import GAPClassifier


class _FailingWriter:
    """A SummaryWriter stand-in whose ``add_image`` always fails; everything else is the real writer."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def add_image(self, *args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FailingTB(TensorBoardLogger):
    """A TensorBoard logger whose ``add_image`` always fails (scalars still work)."""

    @property
    def experiment(self) -> Any:
        return _FailingWriter(super().experiment)


def tiny_classifier(lightning_module: type) -> type:
    """A small GAP classifier on Shapes batches (dicts with ``image``/``label``/``mask``) as a user writes it,
    deriving from the given package's ``LightningModule`` (``pytorch_lightning`` or ``lightning.pytorch``)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from lightning_cam import CAMMixin

    class TinyNet(CAMMixin, lightning_module):  # type: ignore[misc, valid-type]
        cam_target_layer = "features.2"

        def __init__(self, num_classes: int = 5, mean: Any = None, std: Any = None) -> None:
            super().__init__()
            self.cam_mean, self.cam_std = mean, std
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                                          nn.ReLU())
            self.head = nn.Linear(16, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x).mean(dim=(2, 3)))

        def _loss(self, batch: Any, stage: str) -> torch.Tensor:
            loss = F.cross_entropy(self(batch["image"]), batch["label"])
            self.log(f"{stage}_loss", loss)
            return loss

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self._loss(batch, "train")

        def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self._loss(batch, "val")

        def test_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self._loss(batch, "test")

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    return TinyNet


def wandb_history(run_dir: str) -> list[dict[str, Any]]:
    """The history rows (``wandb.log`` calls) of an offline W&B run, read from its ``run-*.wandb`` file: the
    records of W&B's log format (7-byte file header, 32 KiB blocks, records ``crc32 | length | type``)."""
    import glob
    import json
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = glob.glob(f"{run_dir}/run-*.wandb")
    with open(path, "rb") as f:
        data = f.read()
    rows: list[dict[str, Any]] = []
    pos, chunk, block = 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = pb.Record()
            record.ParseFromString(chunk)
            chunk = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return rows


def trained_shapes_model(num_val: int) -> tuple[GAPClassifier, torch.Tensor, torch.Tensor]:
    """A GAPClassifier trained on 1000 Shapes images of 24 px for 6 epochs (seeded, about 90 % accuracy), and
    ``num_val`` normalised validation images with their labels: ``(model in eval mode, images, labels)``."""
    torch.manual_seed(0)
    train = ShapesDataset(num_samples=1000, image_size=24, seed=0)
    val = ShapesDataset(num_samples=num_val, image_size=24, seed=1)
    x, y = train.normalize(train.images), train.labels
    model = GAPClassifier(num_classes=5, channels=(16, 32, 32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), val.normalize(val.images), val.labels


class MethodOptions(dict[str, dict[str, Any]]):
    """Constructor options per method, keyed by canonical method names only (a key that is an alias or names no
    method fails at import, instead of silently dropping the options), read with :meth:`of`."""

    def __init__(self, table: dict[str, dict[str, Any]]) -> None:
        from lightning_cam.methods import available_methods

        names = set(available_methods())
        wrong = sorted(k for k in table if k not in names)
        if wrong:
            raise KeyError(f"method options keyed by {wrong}, which are not canonical method names {sorted(names)}.")
        super().__init__(table)

    def of(self, name: str) -> dict[str, Any]:
        """The options of method ``name`` (canonical name or alias), ``{}`` when it has none."""
        from lightning_cam.methods import get_method

        return dict(self.get(get_method(name).name, {}))


def record_of(method: str, parts: Any, result: Any, values: Any = None) -> Any:
    """A one-method ``BatchRecord`` as the scoring step makes it: a sample whose map is NaN counts as left out."""
    import torch

    from lightning_cam.record import BatchRecord, MethodRecord

    kept = torch.isfinite(result.maps.flatten(1)).all(1)
    n = int(kept.shape[0])
    return BatchRecord(parts, {method: MethodRecord(method, parts, result, dict(values or {}), kept, torch.arange(n))})
