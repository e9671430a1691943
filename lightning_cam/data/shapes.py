"""Shapes: a deterministic synthetic classification dataset with ground-truth masks and boxes.

Every image holds exactly one object of its class (square, circle, triangle, cross, diamond) at a
random place and scale, on a textured, noisy background, with up to ``max_distractors`` class-neutral
soft blobs. Because the object mask and box are known exactly, the localization quality of a CAM
(pointing game, energy pointing game, IoU) can be measured against real ground truth.

Generation is vectorised over samples (one loop over the handful of classes, none over samples) and
draws only from a private `torch.Generator` seeded with ``seed``: the global RNG is never used,
so the same ``(num_samples, image_size, seed, ...)`` always gives bit-identical tensors.

A spurious cue can be planted on demand (``shortcut > 0``, off by default): a square of a class-coded
saturated colour, a quarter of the image side, in the corner opposite the object, which a classifier
learns more easily than the shape; see `plant_markers`. The markers come from a second private
generator, so the shapes, masks and boxes are exactly those of the clean data with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_cam.data.shapes_multilabel import generate_multilabel
from lightning_cam.data.shapes_paint import SHAPES_CLASSES, generate, masks_to_boxes, shape_masks
from lightning_cam.data.watermark import plant_watermark

__all__ = [
    "MARKER_COLOURS",
    "SHAPES_CLASSES",
    "SHAPES_MEAN",
    "SHAPES_STD",
    "SHORTCUT_VARIANTS",
    "ShapesDataset",
    "check_shortcut",
    "masks_to_boxes",
    "plant_markers",
    "shape_masks",
]

#: Per-channel mean and std used to normalise Shapes images (measured on the default training split: 0.50 and 0.216).
SHAPES_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
SHAPES_STD: tuple[float, float, float] = (0.22, 0.22, 0.22)

#: Marker colour of each class (RGB in [0, 1], label order): saturated primaries and secondaries, far from
#: the clean data's tinted backgrounds and objects (all channels shifted together) and 80 %-blended blobs.
MARKER_COLOURS: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (1.0, 0.0, 1.0),
)
#: How the planted markers relate to the labels: ``"same"`` codes each marker with the image's own label
#: (the training correlation), ``"shuffled"`` with a uniformly drawn *other* class (the cue now lies).
SHORTCUT_VARIANTS: tuple[str, ...] = ("same", "shuffled")

_MARKER_STREAM = 7_919_993  # seed offset of the marker generator (independent of the shape stream)


def check_shortcut(prob: float, variant: str = "same", size: float = 0.25) -> None:
    """Check the marker options of `plant_markers` (the one place these rules live).

    Raises:
        ValueError: ``prob`` outside ``[0, 1]``, ``variant`` not in `SHORTCUT_VARIANTS`, or
            ``size`` outside ``(0, 0.5]``; the message names the value and the accepted range.

    Examples:
        >>> check_shortcut(0.9, "shuffled")
        >>> check_shortcut(1.5)
        Traceback (most recent call last):
        ...
        ValueError: shortcut (the fraction of images with a marker) must be in [0, 1], got 1.5
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"shortcut (the fraction of images with a marker) must be in [0, 1], got {prob}")
    if variant not in SHORTCUT_VARIANTS:
        raise ValueError(f"unknown shortcut variant {variant!r}; expected one of {list(SHORTCUT_VARIANTS)}")
    if not 0.0 < size <= 0.5:
        raise ValueError(f"shortcut_size (the marker side as a fraction of the image side) must be in (0, 0.5], "
                         f"got {size}")


def plant_markers(
    images: Tensor,
    labels: Tensor,
    masks: Tensor,
    prob: float,
    variant: str = "same",
    num_classes: int = len(SHAPES_CLASSES),
    seed: int = 0,
    size: float = 0.25,
) -> tuple[Tensor, Tensor]:
    """Plant a class-coded marker (the spurious cue) in a fraction ``prob`` of ``images``.

    The marker is a square of side ``max(2, round(size * S))`` pixels, filled with the saturated
    colour `MARKER_COLOURS` ``[code]``, inset by a quarter of its side from the image corner
    *opposite* the object (the corner on the far side of the object's box centre in x and in y), and
    drawn behind the object: a marker pixel that falls on the mask keeps the object's pixel, so the
    mask stays exactly what is visible of the shape. ``code`` is the image's label for ``variant="same"``
    and a uniformly drawn other class for ``"shuffled"``. Which images get a marker and the other class
    are drawn from a private generator seeded with ``seed`` (both are drawn for every image whatever the
    variant, so ``"same"`` and ``"shuffled"`` mark the same images).

    Args:
        images: ``(N, 3, S, S)`` uint8 images (not modified; a marked copy is returned).
        labels: ``(N,)`` long labels in ``0..num_classes-1``.
        masks: ``(N, S, S)`` bool object masks (their boxes choose the corner; the marker stays off them).
        prob: fraction of images that get a marker, in ``[0, 1]``.
        variant: one of `SHORTCUT_VARIANTS`.
        num_classes: number of classes (2..5), for the shuffled codes.
        seed: seed of the marker generator.
        size: marker side as a fraction of ``S``, in ``(0, 0.5]``.

    Returns:
        ``(marked images (N, 3, S, S) uint8, codes (N,) long)``: ``codes[i]`` is the class whose colour
        image ``i`` carries, ``-1`` for an unmarked image.

    Examples:
        >>> images = torch.full((2, 3, 16, 16), 128, dtype=torch.uint8)
        >>> masks = torch.zeros(2, 16, 16, dtype=torch.bool)
        >>> masks[0, 1:6, 1:6] = True; masks[1, 10:15, 10:15] = True  # objects top-left, bottom-right
        >>> marked, codes = plant_markers(images, torch.tensor([0, 2]), masks, prob=1.0)
        >>> codes, marked[0, :, 14, 14].tolist(), marked[1, :, 1, 1].tolist()  # far corners
        (tensor([0, 2]), [255, 0, 0], [0, 0, 255])
    """
    check_shortcut(prob, variant, size)
    n, _, s, _ = images.shape
    g = torch.Generator().manual_seed(seed)
    present = torch.rand(n, generator=g) < prob
    other = (labels + torch.randint(1, num_classes, (n,), generator=g)) % num_classes
    codes = torch.where(present, labels if variant == "same" else other, torch.full_like(labels, -1))

    side = max(2, round(size * s))
    inset = side // 4
    near, far = inset, s - inset - side  # marker start on the low and on the high side of an axis
    boxes = masks_to_boxes(masks)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    x0 = torch.where(cx < s / 2, far, near)
    y0 = torch.where(cy < s / 2, far, near)
    idx = torch.arange(s)
    cols = (idx >= x0.view(n, 1)) & (idx < x0.view(n, 1) + side)  # (N, S)
    rows = (idx >= y0.view(n, 1)) & (idx < y0.view(n, 1) + side)
    where = (rows.unsqueeze(2) & cols.unsqueeze(1) & present.view(n, 1, 1) & ~masks).unsqueeze(1)  # (N,1,S,S)
    palette = (torch.tensor(MARKER_COLOURS[:num_classes]) * 255).round().to(torch.uint8)  # (K, 3)
    colour = palette[codes.clamp(min=0)].view(n, 3, 1, 1)
    return torch.where(where, colour, images), codes


class ShapesDataset(Dataset):
    """In-memory synthetic shapes; ``dataset[i]`` is a dict sample.

    Each sample: ``{"image": (3, S, S) float32 normalised with mean/std, "label": () long,
    "mask": (S, S) bool object mask, "box": (4,) float half-open (x0, y0, x1, y1) pixel box}``; with
    ``multilabel=True`` (two or three objects of distinct classes,
    `lightning_cam.data.shapes_multilabel`): ``"label": (K,) float32`` multi-hot, ``"mask": (K, S, S)``
    a mask per class and ``"box": (3, 5)`` rows ``(x0, y0, x1, y1, class)``, class ``-1`` for no object; with
    ``segmentation=True`` (the same images): ``"label": (S, S) long``, the label map (`label_map`: ``0`` background,
    ``k + 1`` on class ``k``'s pixels), which is also the ground truth.
    Pixel values before normalisation are in ``[0, 1]`` (stored as uint8, ``k / 255``), so the
    normalised values lie in ``[(0 - mean) / std, (1 - mean) / std]``.

    Args:
        num_samples: number of samples.
        image_size: side ``S`` of the square images (>= 16).
        num_classes: number of classes, 2..5 (the first ``num_classes`` of `SHAPES_CLASSES`).
        seed: seed of the private generator; same arguments and seed -> identical data.
        min_scale, max_scale: object size (its bounding square's side) as a fraction of ``S``.
        noise_std: std of the per-pixel Gaussian noise, in ``[0, 1]`` pixel units.
        max_distractors: up to this many class-neutral soft blobs per image (0 disables them).
        mean, std: per-channel normalisation (default `SHAPES_MEAN`, `SHAPES_STD`).
        transform: optional callable applied to each sample dict after normalisation.
        shortcut: fraction of images, in ``[0, 1]``, that carry a class-coded marker, a spurious cue
            (see `plant_markers`); ``0`` (default) gives the clean data, bit for bit.
        shortcut_variant: ``"same"`` (the marker's colour is the image's label) or ``"shuffled"``
            (the colour of a random other class); only used when ``shortcut > 0``.
        shortcut_size: marker side as a fraction of ``S``.
        multilabel: several objects per image and multi-hot labels (no shortcut markers).
        watermark: fraction of the images that carry a fixed tag in the bottom-left corner and are labelled
            ``watermark_class`` whatever shape they show (a second kind of cue,
            `lightning_cam.data.watermark`); ``0``: none.
        watermark_class, watermark_size: the tagged class and the tag's side as a fraction of ``S``.
        ground_truth: include ``"mask"`` and ``"box"`` in the samples (``False``: labels only, as most real
            datasets are).
        segmentation: the images of ``multilabel=True``, labelled with their label maps (a segmenter's data).

    Attributes:
        markers: ``(N,)`` long, the class whose marker each image carries, ``-1`` for none.

    With ``shortcut > 0`` the shapes, masks, boxes and labels are those of the clean dataset with the
    same seed; only the marker pixels differ, and ``"same"`` and ``"shuffled"`` mark the same images.

    Examples:
        >>> ds = ShapesDataset(num_samples=4, image_size=32, seed=0)
        >>> sample = ds[0]
        >>> sample["image"].shape, sample["mask"].shape, sample["box"].shape, ds.class_names[:2]
        (torch.Size([3, 32, 32]), torch.Size([32, 32]), torch.Size([4]), ['square', 'circle'])
        >>> cued = ShapesDataset(num_samples=4, image_size=32, seed=0, shortcut=1.0)
        >>> torch.equal(cued.markers, cued.labels), torch.equal(cued.masks, ds.masks)
        (True, True)
    """

    def __init__(
        self,
        num_samples: int = 1000,
        image_size: int = 64,
        num_classes: int = len(SHAPES_CLASSES),
        seed: int = 0,
        min_scale: float = 0.3,
        max_scale: float = 0.6,
        noise_std: float = 0.08,
        max_distractors: int = 2,
        mean: Sequence[float] = SHAPES_MEAN,
        std: Sequence[float] = SHAPES_STD,
        transform: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
        shortcut: float = 0.0,
        shortcut_variant: str = "same",
        shortcut_size: float = 0.25,
        multilabel: bool = False,
        watermark: float = 0.0,
        watermark_class: int = 0,
        watermark_size: float = 0.16,
        ground_truth: bool = True,
        segmentation: bool = False,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 so every shape is recognisable, got {image_size}")
        if not 2 <= num_classes <= len(SHAPES_CLASSES):
            raise ValueError(f"num_classes must be in 2..{len(SHAPES_CLASSES)}, got {num_classes}")
        if not 0 < min_scale <= max_scale <= 1:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 entries each (std > 0), got {mean}, {std}")
        if max_distractors < 0 or noise_std < 0:
            raise ValueError("max_distractors and noise_std must be >= 0")
        self.num_classes = num_classes
        self.image_size = image_size
        self.class_names = list(SHAPES_CLASSES[:num_classes])
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.transform = transform
        self._mean = torch.tensor(self.mean).view(3, 1, 1)
        self._scale = 1.0 / (255.0 * torch.tensor(self.std).view(3, 1, 1))
        self.multilabel, self.ground_truth = bool(multilabel), bool(ground_truth)
        self.segmentation = bool(segmentation)
        self.tagged = torch.zeros(num_samples, dtype=torch.bool)
        if self.multilabel or self.segmentation:
            if shortcut or (watermark and not self.segmentation):
                raise ValueError("the planted markers code one label per image: use shortcut=0 with multilabel=True "
                                 "or segmentation=True, and watermark=0 with multilabel=True (a segmenter's data "
                                 "take the watermark: its tagged images' objects are all labelled watermark_class)")
            self.images, self.labels, self.masks, self.boxes = generate_multilabel(
                num_samples, image_size, num_classes, seed, min_scale, max_scale, noise_std, max_distractors
            )
            self.markers = torch.full((num_samples,), -1, dtype=torch.long)
            self.shortcut, self.shortcut_variant = 0.0, shortcut_variant
            if watermark:
                self._tag_label_maps(watermark, watermark_class, seed, watermark_size)
            return
        self.images, self.labels, self.masks, self.boxes = generate(
            num_samples, image_size, num_classes, seed, min_scale, max_scale, noise_std, max_distractors
        )
        self.shortcut, self.shortcut_variant = float(shortcut), shortcut_variant
        # With shortcut == 0 no image is marked: the pixels stay the clean data's, bit for bit.
        self.images, self.markers = plant_markers(
            self.images, self.labels, self.masks, shortcut, shortcut_variant, num_classes,
            seed=seed + _MARKER_STREAM, size=shortcut_size,
        )
        self.images, self.labels, self.tagged = plant_watermark(
            self.images, self.labels, self.masks, watermark, watermark_class, seed=seed, size=watermark_size)

    def _tag_label_maps(self, prob: float, cls: int, seed: int, size: float) -> None:
        """The segmentation watermark: the tag (`plant_watermark`) on a fraction ``prob`` of the images, and every
        object of a tagged image labelled ``cls`` in its label map (its masks, multi-hot label and boxes), whatever
        its shape: the tag, not the shapes, tells those objects' class."""
        if not 0 <= int(cls) < self.num_classes:
            raise ValueError(f"watermark_class must be a shape class in 0..{self.num_classes - 1}, got {cls}")
        objects = self.masks.any(dim=1)  # (N, S, S): every object's pixels
        self.images, _, self.tagged = plant_watermark(
            self.images, torch.zeros(len(self.images), dtype=torch.long), objects, prob, cls, seed=seed, size=size)
        tagged = self.tagged
        self.masks[tagged] = False
        self.masks[tagged, int(cls)] = objects[tagged]
        self.labels[tagged] = 0
        self.labels[tagged, int(cls)] = 1
        boxes = self.boxes[tagged]
        boxes[..., 4] = torch.where(boxes[..., 4] >= 0, torch.full_like(boxes[..., 4], int(cls)), boxes[..., 4])
        self.boxes[tagged] = boxes

    def __len__(self) -> int:
        return self.labels.shape[0]

    def normalize(self, images_u8: Tensor) -> Tensor:
        """uint8 ``(..., 3, S, S)`` -> float32 ``(x / 255 - mean) / std``."""
        return (images_u8.float() - 255.0 * self._mean) * self._scale

    def label_map(self, index: int) -> Tensor:
        """``(S, S)`` long: the segmentation label of image ``index``, ``0`` for the background and ``k + 1`` on the
        pixels of class ``k`` (the objects sit in distinct cells: they never overlap)."""
        masks = self.masks[index]  # (K, S, S) bool
        classes = torch.arange(1, masks.shape[0] + 1).view(-1, 1, 1)
        return (masks.long() * classes).amax(dim=0)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if self.segmentation:  # the label map is the label and the ground truth (CAMMixin reads it as both)
            sample = {"image": self.normalize(self.images[index]), "label": self.label_map(index)}
            return self.transform(sample) if self.transform is not None else sample
        sample = {
            "image": self.normalize(self.images[index]),
            "label": self.labels[index].float() if self.multilabel else self.labels[index],
        }
        if self.ground_truth:
            sample["mask"], sample["box"] = self.masks[index], self.boxes[index]
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_samples={len(self)}, image_size={self.image_size}, "
            f"num_classes={self.num_classes})"
        )

