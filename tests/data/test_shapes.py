"""Shapes: determinism, private RNG, layout, and masks/boxes that agree with the labels."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.data import SHAPES_CLASSES, SHAPES_MEAN, SHAPES_STD, ShapesDataModule, ShapesDataset, masks_to_boxes
from lightning_cam.data.shapes import MARKER_COLOURS, check_shortcut, plant_markers, shape_masks


@pytest.fixture(scope="module")
def big() -> ShapesDataset:
    # Large objects (half-size >= 16 px) so the probe points below sit well inside/outside each shape.
    return ShapesDataset(num_samples=120, image_size=64, seed=11, min_scale=0.5, max_scale=0.9)


def _tensors(ds: ShapesDataset) -> tuple[torch.Tensor, ...]:
    return ds.images, ds.labels, ds.masks, ds.boxes


def test_same_seed_gives_identical_tensors() -> None:
    a = ShapesDataset(num_samples=150, image_size=32, seed=5)  # > two generation chunks
    b = ShapesDataset(num_samples=150, image_size=32, seed=5)
    for x, y in zip(_tensors(a), _tensors(b)):
        assert torch.equal(x, y)
    assert torch.equal(a[123]["image"], b[123]["image"])


def test_different_seed_gives_different_data() -> None:
    a = ShapesDataset(num_samples=64, image_size=32, seed=0)
    b = ShapesDataset(num_samples=64, image_size=32, seed=1)
    assert not torch.equal(a.images, b.images)
    assert not torch.equal(a.labels, b.labels)
    assert not torch.equal(a.masks, b.masks)


def test_global_rng_untouched() -> None:
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    ShapesDataset(num_samples=40, image_size=32, seed=3)
    dm = ShapesDataModule(num_train=16, num_val=16, num_test=16, image_size=32, batch_size=8)
    dm.setup()  # generation only: iterating a DataLoader draws its base seed from the global RNG
    dm.val_set[3]
    assert torch.equal(state, torch.get_rng_state())


def test_sample_layout_and_ranges() -> None:
    ds = ShapesDataset(num_samples=50, image_size=40, seed=2)
    s = ds[7]
    assert set(s) == {"image", "label", "mask", "box"}
    assert s["image"].shape == (3, 40, 40) and s["image"].dtype == torch.float32
    assert s["label"].shape == () and s["label"].dtype == torch.long
    assert s["mask"].shape == (40, 40) and s["mask"].dtype == torch.bool
    assert s["box"].shape == (4,) and s["box"].dtype == torch.float32
    mean = torch.tensor(SHAPES_MEAN).view(3, 1, 1)
    std = torch.tensor(SHAPES_STD).view(3, 1, 1)
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    assert torch.all(images >= (0 - mean) / std - 1e-5) and torch.all(images <= (1 - mean) / std + 1e-5)
    # normalisation is exactly (u8 / 255 - mean) / std
    torch.testing.assert_close(images, (ds.images.float() / 255 - mean) / std)
    assert ds.labels.min() >= 0 and ds.labels.max() < len(SHAPES_CLASSES)
    assert len(ds) == 50 and ds.class_names == list(SHAPES_CLASSES)


def test_pixels_span_range_and_have_texture() -> None:
    ds = ShapesDataset(num_samples=64, image_size=32, seed=0)
    x = ds.images.float() / 255
    assert x.min() < 0.1 and x.max() > 0.9
    background = x.permute(1, 0, 2, 3)[:, ~ds.masks]
    assert background.std() > 0.05  # textured, noisy background, not flat


def test_num_classes_subset_and_all_classes_present() -> None:
    ds = ShapesDataset(num_samples=60, image_size=16, num_classes=3, seed=0)
    assert ds.class_names == ["square", "circle", "triangle"]
    assert torch.equal(ds.labels.unique(), torch.arange(3))


def test_box_is_tight_around_mask(big: ShapesDataset) -> None:
    masks, boxes = big.masks, big.boxes
    n, h, w = masks.shape
    assert torch.all(masks.flatten(1).any(1)), "every image holds an object"
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    x0, y0, x1, y1 = (boxes[:, i].view(n, 1, 1) for i in range(4))
    inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    assert not torch.any(masks & ~inside), "box encloses the mask"
    # tight: the mask touches all four edges of its box
    rows = torch.arange(n)
    assert torch.all(masks[rows, y0.long().view(n)].any(1)) and torch.all(masks[rows, y1.long().view(n) - 1].any(1))
    assert torch.all(masks[rows, :, x0.long().view(n)].any(1))
    assert torch.all(masks[rows, :, x1.long().view(n) - 1].any(1))
    assert torch.equal(boxes, masks_to_boxes(masks))


def test_masks_to_boxes_hand_case_and_empty() -> None:
    m = torch.zeros(2, 5, 6, dtype=torch.bool)
    m[0, 1, 2] = m[0, 3, 4] = True
    assert torch.equal(masks_to_boxes(m), torch.tensor([[2.0, 1.0, 5.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))


def _classify_mask(mask: torch.Tensor, box: torch.Tensor) -> int:
    """Name a mask's shape from five probe points in box coordinates (u, v in [-1, 1])."""
    x0, y0, x1, y1 = box.tolist()

    def inside(u: float, v: float) -> bool:
        col = int(x0 + (u + 1) / 2 * (x1 - x0))
        row = int(y0 + (v + 1) / 2 * (y1 - y0))
        return bool(mask[row, col])

    if inside(-0.95, -0.95):
        return 0  # only the square fills its corners
    if inside(-0.6, -0.6):
        return 1  # circle: 0.72 <= 1; triangle top is narrow; diamond 1.2 > 1; cross arm 0.34
    if inside(0.6, 0.6):
        return 2  # triangle widens downwards
    if inside(0.45, 0.45):
        return 4  # diamond: 0.9 <= 1; cross: min(0.45, 0.45) > 0.34
    return 3


def test_masks_match_labels(big: ShapesDataset) -> None:
    predicted = torch.tensor([_classify_mask(m, b) for m, b in zip(big.masks, big.boxes)])
    assert torch.equal(predicted, big.labels)
    assert big.labels.unique().numel() == len(SHAPES_CLASSES)


def test_object_pixels_differ_from_background(big: ShapesDataset) -> None:
    x = big.images.float() / 255
    m = big.masks.unsqueeze(1)
    obj = (x * m).sum((2, 3)) / m.sum((2, 3))
    bg = (x * ~m).sum((2, 3)) / (~m).sum((2, 3))
    assert torch.all((obj - bg).abs().mean(1) > 0.1), "the object stands out from the background"


def test_shape_masks_definitions() -> None:
    u = torch.tensor([0.0, 0.9, 0.5, 0.0, -0.3])
    v = torch.tensor([0.0, 0.5, 0.5, -0.9, 0.9])
    assert shape_masks(u, v, 0).tolist() == [True, True, True, True, True]
    assert shape_masks(u, v, 1).tolist() == [True, False, True, True, True]
    assert shape_masks(u, v, 2).tolist() == [True, False, True, True, True]
    assert shape_masks(u, v, 3).tolist() == [True, False, False, True, True]
    assert shape_masks(u, v, 4).tolist() == [True, False, True, True, False]
    with pytest.raises(ValueError, match="unknown shape kind"):
        shape_masks(u, v, 5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_samples": 0}, "num_samples"),
        ({"image_size": 8}, "image_size"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 6}, "num_classes"),
        ({"min_scale": 0.7, "max_scale": 0.5}, "min_scale"),
        ({"std": (1.0, 0.0, 1.0)}, "std"),
        ({"max_distractors": -1}, "max_distractors"),
    ],
)
def test_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        ShapesDataset(**kwargs)


def test_datamodule_batches_and_splits() -> None:
    dm = ShapesDataModule(num_train=40, num_val=24, num_test=16, image_size=32, batch_size=8, num_classes=4)
    assert dm.num_classes == 4 and dm.in_channels == 3 and dm.class_names == list(SHAPES_CLASSES[:4])
    assert dm.mean == SHAPES_MEAN and dm.std == SHAPES_STD
    with pytest.raises(RuntimeError, match="setup"):
        dm.train_dataloader()
    dm.setup("fit")
    assert dm.test_set is None
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["label"].shape == (8,)
    assert batch["mask"].shape == (8, 32, 32) and batch["mask"].dtype == torch.bool
    assert batch["box"].shape == (8, 4)
    assert len(dm.train_set) == 40 and len(dm.val_set) == 24
    assert not torch.equal(dm.train_set.images[:24], dm.val_set.images)
    dm.setup("test")
    assert len(dm.test_set) == 16 and not torch.equal(dm.test_set.images, dm.val_set.images[:16])
    val = torch.cat([b["label"] for b in dm.val_dataloader()])
    assert torch.equal(val, dm.val_set.labels), "validation is not shuffled"
    again = ShapesDataModule(num_train=40, num_val=24, num_test=16, image_size=32, batch_size=8, num_classes=4)
    again.setup("validate")
    assert again.train_set is None and torch.equal(again.val_set.images, dm.val_set.images)
    with pytest.raises(ValueError, match="unknown split"):
        dm.make_split("holdout")


# ---- the planted shortcut (a class-coded marker) ----------------------------------------------------------


def test_shortcut_zero_is_the_clean_data_and_markers_only_add_marker_pixels() -> None:
    clean = ShapesDataset(num_samples=150, image_size=32, seed=4)
    same = ShapesDataset(num_samples=150, image_size=32, seed=4, shortcut=0.9)
    assert torch.equal(clean.markers, torch.full((150,), -1))
    for name in ("labels", "masks", "boxes"):  # the ground truth is the shape's, marker or not
        assert torch.equal(getattr(clean, name), getattr(same, name)), name
    changed = (clean.images != same.images).any(1)  # (N, S, S)
    assert not (changed & same.masks).any(), "the marker never covers the object"
    marked = same.markers >= 0
    assert torch.equal(changed.flatten(1).any(1), marked)
    assert 0.8 < marked.float().mean() < 0.97  # about 90 % of 150


def test_same_and_shuffled_mark_the_same_images_with_right_and_wrong_colours() -> None:
    same = ShapesDataset(num_samples=200, image_size=32, seed=1, shortcut=0.5)
    shuffled = ShapesDataset(num_samples=200, image_size=32, seed=1, shortcut=0.5, shortcut_variant="shuffled")
    marked = same.markers >= 0
    assert torch.equal(marked, shuffled.markers >= 0)
    assert torch.equal(same.markers[marked], same.labels[marked])
    assert torch.all(shuffled.markers[marked] != shuffled.labels[marked])
    assert shuffled.markers[marked].unique().numel() == len(SHAPES_CLASSES)  # every colour can lie
    assert torch.equal(same.masks, shuffled.masks)


def test_marker_colour_size_and_corner() -> None:
    s = 64
    ds = ShapesDataset(num_samples=80, image_size=s, seed=2, shortcut=1.0, shortcut_size=0.25)
    clean = ShapesDataset(num_samples=80, image_size=s, seed=2)
    palette = (torch.tensor(MARKER_COLOURS) * 255).round().to(torch.uint8)
    side, inset = 16, 4
    for i in range(80):
        changed = (ds.images[i] != clean.images[i]).any(0)
        rows, cols = changed.any(1).nonzero().squeeze(1), changed.any(0).nonzero().squeeze(1)
        assert rows.numel() <= side and cols.numel() <= side
        # the marker sits in the corner on the far side of the object's box centre, in x and in y
        x0, y0, x1, y1 = ds.boxes[i].tolist()
        assert (cols.min() >= s - inset - side) == ((x0 + x1) / 2 < s / 2)
        assert (rows.min() >= s - inset - side) == ((y0 + y1) / 2 < s / 2)
        pixels = ds.images[i][:, changed]  # (3, P): all the label's colour
        assert torch.all(pixels == palette[ds.labels[i]].view(3, 1))


def test_plant_markers_none_and_all() -> None:
    images = torch.zeros(10, 3, 16, 16, dtype=torch.uint8)
    masks = torch.zeros(10, 16, 16, dtype=torch.bool)
    masks[:, 6:9, 6:9] = True
    labels = torch.arange(10) % 5
    out, codes = plant_markers(images, labels, masks, prob=0.0)
    assert torch.equal(out, images) and torch.all(codes == -1)
    out, codes = plant_markers(images, labels, masks, prob=1.0, size=0.25)
    assert torch.equal(codes, labels) and torch.all((out.any(1)).flatten(1).sum(1) == 16)  # 4 x 4 markers


def test_shortcut_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(99)
    state = torch.get_rng_state()
    ShapesDataset(num_samples=40, image_size=32, seed=3, shortcut=0.9, shortcut_variant="shuffled")
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shortcut": 1.5}, r"shortcut .* must be in \[0, 1\], got 1.5"),
        ({"shortcut": -0.1}, "shortcut"),
        ({"shortcut": 0.5, "shortcut_variant": "mixed"}, "unknown shortcut variant 'mixed'"),
        ({"shortcut": 0.5, "shortcut_size": 0.0}, "shortcut_size"),
        ({"shortcut_size": 0.9}, "shortcut_size"),
    ],
)
def test_bad_shortcut_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        ShapesDataset(num_samples=4, image_size=16, **kwargs)
    with pytest.raises(ValueError, match=match):
        check_shortcut(kwargs.get("shortcut", 0.0), kwargs.get("shortcut_variant", "same"),
                       kwargs.get("shortcut_size", 0.25))


def test_datamodule_shortcut_variants_per_split() -> None:
    dm = ShapesDataModule(num_train=64, num_val=64, num_test=64, image_size=32, batch_size=16, shortcut=1.0,
                          val_shortcut="shuffled", test_shortcut="none")
    dm.setup()
    train, val, test = dm.train_set, dm.val_set, dm.test_set
    assert torch.equal(train.markers, train.labels), "training always codes the marker with the label"
    assert torch.all(val.markers != val.labels) and torch.all(val.markers >= 0)
    assert torch.all(test.markers == -1)
    plain = ShapesDataModule(num_train=64, num_val=64, num_test=64, image_size=32, batch_size=16)
    plain.setup()
    assert torch.equal(plain.test_set.images, test.images), "'none' is the clean split"
    assert torch.equal(plain.val_set.masks, val.masks)
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"image", "label", "mask", "box"}  # same batch layout as the clean data
    assert dm.hparams.shortcut == 1.0 and dm.hparams.val_shortcut == "shuffled"
    for bad in ({"val_shortcut": "lying"}, {"test_shortcut": "Same"}):
        with pytest.raises(ValueError, match=r"_shortcut must be one of \['same', 'shuffled', 'none'\]"):
            ShapesDataModule(**bad)
    with pytest.raises(ValueError, match="shortcut"):
        ShapesDataModule(shortcut=2.0)


def test_multilabel_shapes_are_deterministic_and_consistent() -> None:
    from lightning_cam.data.shapes_multilabel import generate_multilabel

    a = ShapesDataset(num_samples=70, image_size=32, seed=4, multilabel=True)
    b = ShapesDataset(num_samples=70, image_size=32, seed=4, multilabel=True)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    counts = a.labels.sum(1)
    assert bool(((counts >= 2) & (counts <= 3)).all()) and set(counts.tolist()) == {2, 3}
    assert torch.equal(a.masks.flatten(2).any(2), a.labels)  # a visible mask exactly for each label
    assert int(a.masks.sum(1).max()) == 1  # objects never overlap
    for i in range(5):  # each box row bounds its class's mask tightly
        for row in a.boxes[i]:
            if row[4] < 0:
                continue
            ys, xs = a.masks[i, int(row[4])].nonzero(as_tuple=True)
            assert row[:4].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    sample = a[0]
    assert sample["label"].dtype == torch.float32 and sample["mask"].shape == (5, 32, 32)
    assert generate_multilabel(3, 32, 2, seed=0)[1].sum(1).tolist() == [2, 2, 2]  # two classes: both, always


def test_datamodule_task_options() -> None:
    dm = ShapesDataModule(num_train=8, num_val=8, num_test=8, image_size=32, task="multilabel")
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert dm.task == "multilabel" and batch["label"].shape == (8, 5) and batch["mask"].shape == (8, 5, 32, 32)
    assert ShapesDataModule(num_classes=2, task="binary").task == "binary"
    with pytest.raises(ValueError, match="num_classes=2"):
        ShapesDataModule(task="binary")
    with pytest.raises(ValueError, match="task must be one of"):
        ShapesDataModule(task="sigmoid")
    with pytest.raises(ValueError, match="shortcut"):
        ShapesDataModule(task="multilabel", shortcut=0.5)
    with pytest.raises(ValueError, match=r"num_classes must be in 3..6 \(the background and 2-5 shapes\)"):
        ShapesDataModule(task="segmentation", num_classes=7)


def test_segmentation_labels_are_the_label_maps_of_the_multilabel_images() -> None:
    dm = ShapesDataModule(num_train=8, num_val=8, image_size=32, batch_size=4, num_classes=6, task="segmentation")
    dm.setup("fit")
    assert dm.num_classes == 6 and dm.class_names[0] == "background" and len(dm.class_names) == 6
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"image", "label"} and batch["label"].shape == (4, 32, 32)
    assert batch["label"].dtype == torch.long
    ds = dm.val_set
    assert ds is not None
    for i in range(4):  # shape k's pixels are k + 1, the rest 0: the same images as multi-label, masks and all
        label = ds.label_map(i)
        for k in range(5):
            assert torch.equal(label == k + 1, ds.masks[i, k])
        assert bool((label == 0).eq(~ds.masks[i].any(0)).all())


def test_watermark_tags_a_fraction_labels_it_and_leaves_the_rest_alone() -> None:
    clean = ShapesDataset(num_samples=200, image_size=32, seed=6)
    tagged = ShapesDataset(num_samples=200, image_size=32, seed=6, watermark=0.3, watermark_class=2)
    assert 30 < int(tagged.tagged.sum()) < 90
    assert bool((tagged.labels[tagged.tagged] == 2).all())  # every tagged image is of the tagged class
    assert torch.equal(tagged.labels[~tagged.tagged], clean.labels[~tagged.tagged])
    assert torch.equal(tagged.images[~tagged.tagged], clean.images[~tagged.tagged])
    assert torch.equal(tagged.masks, clean.masks)  # the objects are those of the clean data
    corner = tagged.images[tagged.tagged][:, :, -5:-1, 1:5]
    assert bool((corner == 255).any()) and bool((corner == 0).any())  # the white frame and its black inside
    with pytest.raises(ValueError, match="watermark"):
        ShapesDataset(num_samples=4, watermark=1.5)


def test_a_segmenters_watermark_labels_every_object_of_a_tagged_image_as_its_class() -> None:
    clean = ShapesDataset(num_samples=100, image_size=32, seed=3, segmentation=True)
    tagged = ShapesDataset(num_samples=100, image_size=32, seed=3, segmentation=True, watermark=0.4,
                           watermark_class=1)
    t = tagged.tagged
    assert 20 < int(t.sum()) < 60
    for i in t.nonzero().flatten().tolist()[:5]:  # every object's pixels are class 1 (label 2), whatever its shape
        objects = clean.masks[i].any(0)
        assert torch.equal(tagged.label_map(i), objects.long() * 2)
        assert tagged.labels[i].tolist() == [False, True, False, False, False]
    for i in (~t).nonzero().flatten().tolist()[:5]:
        assert torch.equal(tagged.label_map(i), clean.label_map(i))
        assert torch.equal(tagged.images[i], clean.images[i])
    assert bool((tagged.images[t][:, :, -5:-1, 1:5] == 255).any())  # the tag
    dm = ShapesDataModule(num_train=8, num_val=8, image_size=32, task="segmentation", num_classes=6, watermark=0.5)
    with pytest.raises(ValueError, match="shortcut=0"):
        ShapesDataModule(task="segmentation", num_classes=6, shortcut=0.5)
    with pytest.raises(ValueError, match="watermark=0"):
        ShapesDataModule(task="multilabel", watermark=0.5)
    assert dm.hparams.watermark == 0.5


def test_ground_truth_can_be_left_out_of_the_batches() -> None:
    dm = ShapesDataModule(num_train=8, num_val=8, num_test=8, image_size=32, ground_truth=False)
    dm.setup("fit")
    assert sorted(next(iter(dm.val_dataloader()))) == ["image", "label"]
