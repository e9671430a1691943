"""``ShapesDataModule``: the built-in synthetic dataset as a ``LightningDataModule``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning_cam.data.base import SplitDataModule
from lightning_cam.data.shapes import (
    SHAPES_CLASSES,
    SHAPES_MEAN,
    SHAPES_STD,
    SHORTCUT_VARIANTS,
    ShapesDataset,
    check_shortcut,
)
from lightning_cam.data.watermark import check_watermark
from lightning_cam.targets import available_targets

__all__ = ["SHAPES_TASKS", "SPLIT_SHORTCUTS", "ShapesDataModule"]

# Offsets that give the train/val/test splits independent generator streams for one ``seed``.
_SPLIT_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_029}
#: What an evaluation split does with the planted cue: the training correlation, lying markers, or none.
SPLIT_SHORTCUTS: tuple[str, ...] = (*SHORTCUT_VARIANTS, "none")


#: the ``task`` values Shapes makes labels for
SHAPES_TASKS = ("multiclass", "multilabel", "binary", "segmentation", "embedding")

class ShapesDataModule(SplitDataModule):
    """Train/val/test splits of `ShapesDataset`, generated in memory.

    Every batch is a dict ``{"image": (B, 3, S, S) float32 normalised, "label": (B,) long,
    "mask": (B, S, S) bool, "box": (B, 4) float (x0, y0, x1, y1) half-open pixel box}``.
    The splits use independent streams derived from ``seed``, so they never share samples by
    construction, and each split is identical on every rank and every run.

    Attributes used by the CLI to configure the model: `num_classes`, `in_channels` (3),
    `class_names`, `mean`, `std` (the normalisation, for ``cam_denormalize``).

    A shortcut to catch: with ``shortcut=p > 0`` a fraction ``p`` of the images of every split carries
    a small class-coded marker (a saturated colour square in the corner opposite the object, see
    `plant_markers`), a cue a classifier can learn instead of the
    shape. The training split always codes the marker with the label; ``val_shortcut`` and
    ``test_shortcut`` choose what the evaluation splits show: ``"same"`` (the training correlation:
    a shortcut model keeps its accuracy, but its maps leave the object), ``"shuffled"`` (each marker
    has the colour of a random other class: a shortcut model's accuracy falls) or ``"none"`` (no
    marker). Masks and boxes stay those of the shape, and the images are the clean ones plus the
    markers. ``configs/shapes_shortcut.yaml`` validates on ``"same"`` and tests on ``"shuffled"``.

    Args:
        num_train: training split size.
        num_val: validation split size.
        num_test: test split size.
        image_size: side of the square images, in pixels (`ShapesDataset`, as the
            next six).
        num_classes: how many shapes, 2 to 5 (square, circle, triangle, cross, diamond); for ``task="segmentation"``
            the classes of the label maps, 3 to 6 (the background and 2 to 5 shapes).
        min_scale: smallest object size, a fraction of ``image_size``.
        max_scale: largest object size, a fraction of ``image_size``.
        noise_std: standard deviation of the pixel noise.
        max_distractors: most class-neutral soft blobs per image.
        mean: per-channel normalisation mean of the images.
        std: per-channel normalisation standard deviation.
        batch_size: the loaders' batch size.
        num_workers: the loaders' worker processes.
        seed: the data seed (each split derives its own stream from it).
        shortcut: fraction of images with a marker, in ``[0, 1]`` (``0``: the clean data).
        val_shortcut: ``"same"``, ``"shuffled"`` or ``"none"`` (see above), for the validation split.
        test_shortcut: the same, for the test split.
        shortcut_size: marker side as a fraction of ``image_size``.
        task: the output kind the data are for (linked to the model by the CLI): ``"multiclass"`` (one object
            per image), ``"multilabel"`` (two or three objects of distinct classes per image: multi-hot
            ``label`` ``(B, K)``, ``mask`` ``(B, K, S, S)`` per class, ``box`` ``(B, 3, 5)`` rows
            ``(x0, y0, x1, y1, class)``; see `lightning_cam.data.shapes_multilabel`), ``"binary"``
            (``num_classes=2``: square is class 0, circle class 1, for a one-logit model) or ``"segmentation"``
            (the multi-label images with their label maps: ``label`` ``(B, S, S)`` long, ``0`` the background and
            ``k + 1`` class ``k``; `num_classes` then counts the background: 6 is the background and 5 shapes) or
            ``"embedding"`` (the multi-class images and labels, for an embedding model learnt from its classes:
            same-class pairs near, others far).
        watermark: the fraction of images with a fixed tag in the bottom-left corner, each tagged image
            labelled ``watermark_class``, in every split (`lightning_cam.data.watermark`); ``0``: none. With
            ``task="segmentation"`` every object of a tagged image is labelled ``watermark_class`` in its label map
            (whatever its shape: only the tag tells it), the segmenter's planted shortcut.
        watermark_class: the label of the tagged images (a shape's index, ``k``; a label map marks it ``k + 1``).
        watermark_size: the tag's side as a fraction of ``image_size``.
        ground_truth: ``False`` leaves ``"mask"`` and ``"box"`` out of the batches (labels only, as most real
            datasets are: what the callback can still find without them).

    Examples:
        >>> dm = ShapesDataModule(num_train=8, num_val=8, image_size=32, batch_size=4)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.val_dataloader()))
        >>> batch["image"].shape, batch["label"].shape, batch["mask"].shape, batch["box"].shape
        (torch.Size([4, 3, 32, 32]), torch.Size([4]), torch.Size([4, 32, 32]), torch.Size([4, 4]))
        >>> cued = ShapesDataModule(num_train=8, num_val=8, image_size=32, shortcut=1.0, val_shortcut="shuffled")
        >>> cued.setup("fit")
        >>> bool((cued.train_set.markers == cued.train_set.labels).all())  # training: the label's colour
        True
        >>> bool((cued.val_set.markers != cued.val_set.labels).all())  # shuffled: another class's colour
        True
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
        shortcut: float = 0.0,
        val_shortcut: str = "same",
        test_shortcut: str = "same",
        shortcut_size: float = 0.25,
        task: str = "multiclass",
        watermark: float = 0.0,
        watermark_class: int = 0,
        watermark_size: float = 0.16,
        ground_truth: bool = True,
    ) -> None:
        super().__init__()
        if task not in SHAPES_TASKS:  # the labels Shapes can make
            raise ValueError(f"task must be one of {list(SHAPES_TASKS)} (the kinds "
                             f"of {available_targets()} whose labels Shapes makes), got {task!r}")
        if task == "binary" and num_classes != 2:
            raise ValueError(f"task='binary' needs num_classes=2 (class 1, circle, is the positive one), got "
                             f"{num_classes}")
        if (task in ("multilabel", "segmentation") and shortcut) or (task == "multilabel" and watermark):
            raise ValueError(f"the planted cues code one label per image; use shortcut=0 with task={task!r}"
                             + (" and watermark=0" if task == "multilabel" else " (the watermark works: its tagged "
                                "images' objects are all labelled watermark_class)"))
        check_watermark(watermark, watermark_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        check_shortcut(shortcut, "same", shortcut_size)
        for name, value in (("val_shortcut", val_shortcut), ("test_shortcut", test_shortcut)):
            if value not in SPLIT_SHORTCUTS:
                raise ValueError(f"{name} must be one of {list(SPLIT_SHORTCUTS)}, got {value!r}")
        # a segmenter's classes count the background (0) before the shapes (1..K), as its outputs do
        segmentation = task == "segmentation"
        shapes = num_classes - 1 if segmentation else num_classes
        if not 2 <= shapes <= len(SHAPES_CLASSES):
            low, high = (3, len(SHAPES_CLASSES) + 1) if segmentation else (2, len(SHAPES_CLASSES))
            what = " (the background and 2-5 shapes)" if segmentation else ""
            raise ValueError(f"num_classes must be in {low}..{high}{what}, got {num_classes}")
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
        self.class_names = (["background"] if segmentation else []) + list(SHAPES_CLASSES[:shapes])
        self.task = task
        self._options: dict[str, Any] = {
            "image_size": image_size, "num_classes": shapes, "min_scale": min_scale, "max_scale": max_scale,
            "noise_std": noise_std, "max_distractors": max_distractors, "mean": self.mean, "std": self.std,
            "shortcut_size": shortcut_size, "multilabel": task == "multilabel", "watermark": watermark,
            "watermark_class": watermark_class, "watermark_size": watermark_size, "ground_truth": ground_truth,
            "segmentation": segmentation,
        }
        self.shortcut = float(shortcut)
        self.split_shortcuts = {"train": "same", "val": val_shortcut, "test": test_shortcut}
        self.train_set: ShapesDataset | None = None
        self.val_set: ShapesDataset | None = None
        self.test_set: ShapesDataset | None = None

    def make_split(self, split: str) -> ShapesDataset:
        """Generate one split (``"train"``, ``"val"`` or ``"test"``)."""
        sizes = {"train": self.num_train, "val": self.num_val, "test": self.num_test}
        if split not in sizes:
            raise ValueError(f"unknown split {split!r}; expected one of {list(sizes)}")
        variant = self.split_shortcuts[split]
        prob = 0.0 if variant == "none" else self.shortcut
        return ShapesDataset(
            sizes[split], seed=self.seed + _SPLIT_OFFSETS[split], shortcut=prob,
            shortcut_variant="same" if variant == "none" else variant, **self._options,
        )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self.make_split("train")
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self.make_split("val")
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self.make_split("test")
