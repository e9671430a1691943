"""``ShapesDataModule``: the built-in synthetic dataset as a ``LightningDataModule``."""

from __future__ import annotations

from collections.abc import Sequence

from lightning_cam.data.base import SplitDataModule
from lightning_cam.data.shapes import SHAPES_CLASSES, SHAPES_MEAN, SHAPES_STD, ShapesDataset

__all__ = ["ShapesDataModule"]

# Offsets that give the train/val/test splits independent generator streams for one ``seed``.
_SPLIT_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_029}


class ShapesDataModule(SplitDataModule):
    """Train/val/test splits of :class:`~lightning_cam.data.ShapesDataset`, generated in memory.

    Every batch is a dict ``{"image": (B, 3, S, S) float32 normalised, "label": (B,) long,
    "mask": (B, S, S) bool, "box": (B, 4) float (x0, y0, x1, y1) half-open pixel box}``.
    The splits use independent streams derived from ``seed``, so they never share samples by
    construction, and each split is identical on every rank and every run.

    Attributes used by the CLI to configure the model: :attr:`num_classes`, :attr:`in_channels` (3),
    :attr:`class_names`, :attr:`mean`, :attr:`std` (the normalisation, for ``cam_denormalize``).

    Example:
        >>> dm = ShapesDataModule(num_train=8, num_val=8, image_size=32, batch_size=4)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.val_dataloader()))
        >>> batch["image"].shape, batch["label"].shape, batch["mask"].shape, batch["box"].shape
        (torch.Size([4, 3, 32, 32]), torch.Size([4]), torch.Size([4, 32, 32]), torch.Size([4, 4]))
    """

    in_channels: int = 3

    def __init__(
        self,
        num_train: int = 4000,
        num_val: int = 1000,
        num_test: int = 1000,
        image_size: int = 64,
        num_classes: int = len(SHAPES_CLASSES),
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
        min_scale: float = 0.3,
        max_scale: float = 0.6,
        noise_std: float = 0.08,
        max_distractors: int = 2,
        mean: Sequence[float] = SHAPES_MEAN,
        std: Sequence[float] = SHAPES_STD,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 2 <= num_classes <= len(SHAPES_CLASSES):
            raise ValueError(f"num_classes must be in 2..{len(SHAPES_CLASSES)}, got {num_classes}")
        # Plain float lists in the recorded hparams, equal to what the model records for the same values.
        mean, std = [float(m) for m in mean], [float(v) for v in std]
        self.save_hyperparameters()
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.image_size = image_size
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.mean, self.std = tuple(mean), tuple(std)
        self.class_names = list(SHAPES_CLASSES[:num_classes])
        self._options = {
            "image_size": image_size, "num_classes": num_classes, "min_scale": min_scale, "max_scale": max_scale,
            "noise_std": noise_std, "max_distractors": max_distractors, "mean": self.mean, "std": self.std,
        }
        self.train_set: ShapesDataset | None = None
        self.val_set: ShapesDataset | None = None
        self.test_set: ShapesDataset | None = None

    def make_split(self, split: str) -> ShapesDataset:
        """Generate one split (``"train"``, ``"val"`` or ``"test"``)."""
        sizes = {"train": self.num_train, "val": self.num_val, "test": self.num_test}
        if split not in sizes:
            raise ValueError(f"unknown split {split!r}; expected one of {list(sizes)}")
        return ShapesDataset(sizes[split], seed=self.seed + _SPLIT_OFFSETS[split], **self._options)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self.make_split("train")
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self.make_split("val")
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self.make_split("test")
