"""CIFAR-10 / MNIST / ImageFolder datamodules on local files only (nothing is downloaded)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from PIL import Image

from lightning_cam.data import CIFAR10DataModule, ImageFolderDataModule, MNISTDataModule
from lightning_cam.data.vision import IMAGENET_MEAN, MNIST_MEAN, MNIST_STD, collate_dict


def test_collate_dict() -> None:
    batch = collate_dict([(torch.zeros(3, 2, 2), 4), (torch.ones(3, 2, 2), 0)])
    assert set(batch) == {"image", "label"}
    assert batch["image"].shape == (2, 3, 2, 2) and torch.equal(batch["label"], torch.tensor([4, 0]))
    assert batch["label"].dtype == torch.long


def test_cifar10_missing_files_error_names_path_and_fix(tmp_path: Path) -> None:
    dm = CIFAR10DataModule(root=str(tmp_path))
    assert (dm.num_classes, dm.in_channels, len(dm.class_names), len(dm.mean)) == (10, 3, 10, 3)
    dm.prepare_data()  # download=False: does nothing, fetches nothing
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 not found.*cifar-10-batches-py.*download=True"):
        dm.setup("fit")
    assert list(tmp_path.iterdir()) == []


def test_mnist_missing_files_error_names_path_and_fix(tmp_path: Path) -> None:
    dm = MNISTDataModule(root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"MNIST.*not found.*MNIST/raw.*download=True"):
        dm.setup("fit")


def _write_idx(path: Path, data: torch.Tensor) -> None:
    magic = 0x0800 | data.dim()  # unsigned byte, ndim
    path.write_bytes(struct.pack(">I", magic) + struct.pack(f">{data.dim()}I", *data.shape) + data.numpy().tobytes())


def test_mnist_reads_local_idx_files(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        pixels = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8))
    dm = MNISTDataModule(root=str(tmp_path), batch_size=4)
    dm.setup("fit")
    assert len(dm.train_set) == 6 and len(dm.val_set) == 4 and dm.test_set is dm.val_set
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (4, 1, 28, 28) and batch["image"].dtype == torch.float32
    assert torch.equal(batch["label"], torch.arange(4))
    pixels = batch["image"] * MNIST_STD[0] + MNIST_MEAN[0]
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def _image_tree(root: Path, splits: dict[str, int], classes=("cat", "dog"), size=(20, 24)) -> None:
    g = torch.Generator().manual_seed(0)
    for split, per_class in splits.items():
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = torch.randint(0, 256, (3, *size), generator=g, dtype=torch.uint8)
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")


def test_imagefolder_train_val_tree(tmp_path: Path) -> None:
    _image_tree(tmp_path, {"train": 3, "val": 2})
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=16, batch_size=4)
    assert dm.class_names == ["cat", "dog"] and dm.num_classes == 2 and dm.in_channels == 3
    dm.setup("fit")
    assert len(dm.train_set) == 6 and len(dm.val_set) == 4 and dm.test_set is dm.val_set
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (4, 3, 16, 16) and torch.equal(batch["label"], torch.tensor([0, 0, 1, 1]))
    train = next(iter(dm.train_dataloader()))
    assert train["image"].shape == (4, 3, 16, 16)
    assert dm.mean == IMAGENET_MEAN


def test_imagefolder_holds_out_val_when_missing_and_grayscale(tmp_path: Path) -> None:
    _image_tree(tmp_path, {"train": 5, "test": 1}, classes=("a", "b", "c"))
    kwargs = {"root": str(tmp_path), "image_size": 12, "batch_size": 8, "val_fraction": 0.2, "grayscale": True,
                  "mean": (0.5,), "std": (0.5,), "test_dir": "test", "seed": 3}
    dm = ImageFolderDataModule(**kwargs)
    assert dm.in_channels == 1 and dm.num_classes == 3
    dm.setup("fit")
    assert len(dm.train_set) == 12 and len(dm.val_set) == 3 and len(dm.test_set) == 3
    assert set(dm.train_set.indices).isdisjoint(dm.val_set.indices)
    assert next(iter(dm.val_dataloader()))["image"].shape == (3, 1, 12, 12)
    again = ImageFolderDataModule(**kwargs)
    again.setup("fit")
    assert again.val_set.indices == dm.val_set.indices, "the hold-out split is seeded"


def test_imagefolder_missing_tree_error(tmp_path: Path) -> None:
    dm = ImageFolderDataModule(root=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"nowhere/train.*root/train/<class>/<image>.*--data.root"):
        dm.setup("fit")
    with pytest.raises(FileNotFoundError):
        _ = dm.num_classes


def test_imagefolder_class_mismatch_and_bad_arguments(tmp_path: Path) -> None:
    _image_tree(tmp_path, {"train": 1})
    _image_tree(tmp_path, {"val": 1}, classes=("cat", "cow"))
    with pytest.raises(ValueError, match="class folders differ"):
        ImageFolderDataModule(root=str(tmp_path)).setup("fit")
    with pytest.raises(ValueError, match="cannot be downloaded"):
        ImageFolderDataModule(root=str(tmp_path), download=True)
    with pytest.raises(ValueError, match="mean and std need 1 entries"):
        ImageFolderDataModule(root=str(tmp_path), grayscale=True)
    with pytest.raises(ValueError, match="val_fraction"):
        ImageFolderDataModule(root=str(tmp_path), val_fraction=1.0)
