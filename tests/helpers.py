"""Test doubles shared by several test files (imported as ``tests.helpers``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

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


def events(log_dir: str) -> EventAccumulator:
    """TensorBoard's own reader over ``log_dir``, every scalar and image kept (what the tests read back)."""
    acc = EventAccumulator(log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


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


#: methods that explain one architecture only, tested in their own files on it (LeGrad: a torchvision ViT's attention
#: blocks; every other method explains any network with a feature map)
ARCHITECTURE_SPECIFIC = frozenset({"legrad"})


def cnn_methods() -> list[str]:
    """Every registered method that explains a convolutional network: the generic contract tests' list."""
    from lightning_cam.methods import available_methods

    return [name for name in available_methods() if name not in ARCHITECTURE_SPECIFIC]


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


def assert_ddp_equals_one_process(script: str, tmp_path: Path, timeout: float = 600) -> list[str]:
    """Run ``script`` (it writes ``res<devices>.json`` into the directory it is given) on 2 and on 1 process, each
    in a subprocess with a hard timeout, and check every ``cam/`` value of the two runs is the same; returns the
    ``cam/`` keys. A fault that raised in the CAM work fails the test (blank maps are only counted)."""
    path = tmp_path / "ddp_run.py"
    path.write_text(script)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for devices in ("2", "1"):
        proc = subprocess.run([sys.executable, str(path), str(tmp_path), devices], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert " raised " not in proc.stderr, proc.stderr[-3000:]
    two = json.loads((tmp_path / "res2.json").read_text())
    one = json.loads((tmp_path / "res1.json").read_text())
    cam_keys = [k for k in one if k.startswith("cam/")]
    assert set(cam_keys) == {k for k in two if k.startswith("cam/")}
    for key in cam_keys:
        assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6), key
    return cam_keys
