"""Datamodules over real image datasets stored locally: CIFAR-10, MNIST and any ImageFolder tree.

Nothing is downloaded unless you pass ``download=True``; when the files are missing, ``setup`` raises
a `FileNotFoundError` naming the path it expected. Batches are dicts
``{"image": (B, C, H, W) float32 normalised, "label": (B,) long}`` (see `collate_dict`), the
same layout as [`ShapesDataModule`][lightning_cam.data.ShapesDataModule] minus masks and boxes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset
from torch.utils.data.dataloader import default_collate
from torchvision import transforms as T
from torchvision.datasets import CIFAR10, MNIST, ImageFolder
from torchvision.datasets.folder import find_classes

from lightning_cam.data.base import SplitDataModule

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "CIFAR10DataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "collate_dict",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def collate_dict(samples: Sequence[tuple[Tensor, int]]) -> dict[str, Tensor]:
    """Collate ``(image, label)`` samples into ``{"image": (B, C, H, W), "label": (B,) long}``.

    Examples:
        >>> batch = collate_dict([(torch.zeros(1, 2, 2), 3), (torch.ones(1, 2, 2), 1)])
        >>> batch["image"].shape, batch["label"]
        (torch.Size([2, 1, 2, 2]), tensor([3, 1]))
    """
    images, labels = default_collate(list(samples))
    return {"image": images, "label": torch.as_tensor(labels, dtype=torch.long)}


def _missing(what: str, expected: str, root: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{what} not found: expected it under {expected!r}. Pass `download=True` (CLI: "
        f"`--data.download=true`) to fetch it into root={root!r}, or point `root` at the folder that holds it."
    )


class _LocalVisionDataModule(SplitDataModule):
    """Shared loader plumbing: dict batches, ``batch_size``, ``num_workers``."""

    collate_fn = collate_dict

    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __init__(self, root: str, batch_size: int, num_workers: int, download: bool) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.root = os.path.expanduser(str(root))
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.download = download
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None


class CIFAR10DataModule(_LocalVisionDataModule):
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` (torchvision's layout).

    Train: the 50k training images with random crop (padding 4) and horizontal flip; val and test:
    the official 10k test images. Normalised with `CIFAR10_MEAN`/`CIFAR10_STD`.

    Args:
        root: folder holding ``cifar-10-batches-py``.
        download: fetch the archive into ``root`` if missing (off by default; never in tests).
        batch_size, num_workers: DataLoader options.
        augment: random crop + flip on the training split.

    Examples:
        >>> dm = CIFAR10DataModule(root="/nonexistent")
        >>> dm.num_classes, dm.in_channels, dm.class_names[0]
        (10, 3, 'airplane')
    """

    num_classes = 10
    in_channels = 3
    mean = CIFAR10_MEAN
    std = CIFAR10_STD
    class_names = list(CIFAR10_CLASSES)

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        batch_size: int = 128,
        num_workers: int = 0,
        augment: bool = True,
    ) -> None:
        super().__init__(root, batch_size, num_workers, download)
        self.save_hyperparameters()
        self.augment = augment

    def prepare_data(self) -> None:
        if self.download:
            CIFAR10(self.root, train=True, download=True)
            CIFAR10(self.root, train=False, download=True)

    def setup(self, stage: str | None = None) -> None:
        folder = os.path.join(self.root, CIFAR10.base_folder)
        if not os.path.isdir(folder):
            raise _missing("CIFAR-10", folder, self.root)
        norm = [T.ToTensor(), T.Normalize(self.mean, self.std)]
        aug = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if self.augment else []
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = CIFAR10(self.root, train=True, transform=T.Compose(aug + norm))
        if self.val_set is None:
            self.val_set = self.test_set = CIFAR10(self.root, train=False, transform=T.Compose(norm))


class MNISTDataModule(_LocalVisionDataModule):
    """MNIST from ``<root>/MNIST/raw`` (torchvision's layout), 1-channel 28x28.

    Train: the 60k training digits; val and test: the official 10k test digits. Normalised with
    `MNIST_MEAN`/`MNIST_STD`. ``in_channels`` is 1 (the CLI passes it to the model).

    Args:
        root: folder holding ``MNIST/raw``.
        download: fetch the files into ``root`` if missing (off by default; never in tests).
        batch_size, num_workers: DataLoader options.

    Examples:
        >>> dm = MNISTDataModule(root="/nonexistent")
        >>> dm.num_classes, dm.in_channels, dm.mean
        (10, 1, (0.1307,))
    """

    num_classes = 10
    in_channels = 1
    mean = MNIST_MEAN
    std = MNIST_STD
    class_names = [str(d) for d in range(10)]

    def __init__(self, root: str = "data", download: bool = False, batch_size: int = 128, num_workers: int = 0) -> None:
        super().__init__(root, batch_size, num_workers, download)
        self.save_hyperparameters()

    def prepare_data(self) -> None:
        if self.download:
            MNIST(self.root, train=True, download=True)
            MNIST(self.root, train=False, download=True)

    def setup(self, stage: str | None = None) -> None:
        raw = os.path.join(self.root, "MNIST", "raw")
        names = [os.path.splitext(os.path.basename(url))[0] for url, _ in MNIST.resources]
        if not all(os.path.isfile(os.path.join(raw, name)) for name in names):
            raise _missing(f"MNIST (files {names})", raw, self.root)
        transform = T.Compose([T.ToTensor(), T.Normalize(self.mean, self.std)])
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = MNIST(self.root, train=True, transform=transform)
        if self.val_set is None:
            self.val_set = self.test_set = MNIST(self.root, train=False, transform=transform)


class ImageFolderDataModule(_LocalVisionDataModule):
    """Any ``root/<split>/<class>/<image>`` tree, read with ``torchvision.datasets.ImageFolder``.

    Classes are the sub-folders of ``root/<train_dir>`` (sorted). Validation uses ``root/<val_dir>``
    when it exists, otherwise a seeded ``val_fraction`` hold-out of the training images; test uses
    ``root/<test_dir>`` when given and present, otherwise the validation set. Train images get a
    random resized crop and flip (``augment``), eval images a resize + centre crop, all to
    ``image_size`` and normalised with ``mean``/``std`` (ImageNet statistics by default).

    Args:
        root: the dataset folder.
        image_size: side of the square crops fed to the model.
        train_dir, val_dir, test_dir: split sub-folders of ``root``.
        val_fraction: hold-out share of the training images when ``val_dir`` is missing.
        seed: seed of the hold-out split.
        grayscale: convert to 1 channel (then ``in_channels`` is 1; pass 1-entry ``mean``/``std``).
        augment: random resized crop + flip on the training split.
        mean, std: normalisation.
        batch_size, num_workers: DataLoader options.
        download: accepted for config symmetry; an ImageFolder cannot be downloaded (must be False).

    Examples:
        >>> dm = ImageFolderDataModule(root="/nonexistent", image_size=64)
        >>> dm.in_channels, dm.image_size
        (3, 64)
    """

    def __init__(
        self,
        root: str = "data/images",
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 0,
        train_dir: str = "train",
        val_dir: str = "val",
        test_dir: str | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        grayscale: bool = False,
        augment: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        download: bool = False,
    ) -> None:
        if download:
            raise ValueError("an ImageFolder dataset cannot be downloaded; put the images under `root` yourself")
        super().__init__(root, batch_size, num_workers, download)
        channels = 1 if grayscale else 3
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean and std need {channels} entries for grayscale={grayscale}, got {mean}, {std}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        # Plain float lists in the recorded hparams, equal to what the model records for the same values.
        mean, std = [float(m) for m in mean], [float(v) for v in std]
        self.save_hyperparameters()
        self.image_size = image_size
        self.train_dir, self.val_dir, self.test_dir = train_dir, val_dir, test_dir
        self.val_fraction = val_fraction
        self.seed = seed
        self.grayscale = grayscale
        self.augment = augment
        self.in_channels = channels
        self.mean, self.std = tuple(mean), tuple(std)
        self._classes: list[str] | None = None

    @property
    def class_names(self) -> list[str]:
        """Sorted sub-folder names of ``root/<train_dir>`` (scanned on first access)."""
        if self._classes is None:
            folder = os.path.join(self.root, self.train_dir)
            if not os.path.isdir(folder):
                raise FileNotFoundError(
                    f"ImageFolder training split not found: expected class sub-folders under {folder!r} "
                    f"(layout root/{self.train_dir}/<class>/<image>). Point `root` (CLI: `--data.root`) at "
                    "your dataset or set `train_dir`."
                )
            self._classes = find_classes(folder)[0]
        return self._classes

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        """Number of class sub-folders."""
        return len(self.class_names)

    def _transforms(self, train: bool) -> Any:
        grey = [T.Grayscale(1)] if self.grayscale else []
        if train and self.augment:
            geo = [T.RandomResizedCrop(self.image_size, scale=(0.6, 1.0), antialias=True), T.RandomHorizontalFlip()]
        else:
            geo = [T.Resize(self.image_size, antialias=True), T.CenterCrop(self.image_size)]
        return T.Compose(grey + geo + [T.ToTensor(), T.Normalize(self.mean, self.std)])

    def setup(self, stage: str | None = None) -> None:
        classes = self.class_names  # raises a clear error when the tree is missing
        train_root = os.path.join(self.root, self.train_dir)
        val_root = os.path.join(self.root, self.val_dir)
        if os.path.isdir(val_root):
            val_set: Dataset = ImageFolder(val_root, transform=self._transforms(False))
            if val_set.classes != classes:  # type: ignore[attr-defined]
                raise ValueError(
                    f"class folders differ between {train_root!r} {classes} and {val_root!r} "
                    f"{val_set.classes}; every split needs the same class sub-folders"  # type: ignore[attr-defined]
                )
            train_set: Dataset = ImageFolder(train_root, transform=self._transforms(True))
        else:
            full_train = ImageFolder(train_root, transform=self._transforms(True))
            full_eval = ImageFolder(train_root, transform=self._transforms(False))
            n = len(full_train)
            n_val = max(1, round(n * self.val_fraction))
            if n_val >= n:
                raise ValueError(f"{train_root!r} has only {n} images; too few to hold out a validation split")
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
            train_set, val_set = Subset(full_train, order[n_val:]), Subset(full_eval, order[:n_val])
        test_set = val_set
        if self.test_dir is not None and os.path.isdir(os.path.join(self.root, self.test_dir)):
            test_set = ImageFolder(os.path.join(self.root, self.test_dir), transform=self._transforms(False))
        self.train_set, self.val_set, self.test_set = train_set, val_set, test_set
