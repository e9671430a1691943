"""Localization formulas: hand-computed cases and edges."""

from __future__ import annotations

import pytest
import torch

from lightning_cam.data.shapes import masks_to_boxes
from lightning_cam.functional.localization import boxes_to_masks, energy_pointing_game, iou, pointing_game

NAN = float("nan")


def _mask(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


def test_pointing_game_hand_computed() -> None:
    maps = torch.tensor([[[0.1, 0.9], [0.2, 0.3]], [[0.1, 0.9], [0.2, 0.3]]])
    masks = torch.stack([_mask([[0, 1], [0, 0]]), _mask([[1, 0], [1, 1]])])
    torch.testing.assert_close(pointing_game(maps, masks), torch.tensor([1.0, 0.0]))


def test_pointing_game_constant_map_scores_zero() -> None:
    full = torch.ones(2, 3, 3, dtype=torch.bool)
    got = pointing_game(torch.stack([torch.zeros(3, 3), torch.full((3, 3), 0.7)]), full)
    torch.testing.assert_close(got, torch.zeros(2))


def test_pointing_game_tolerance_grows_object() -> None:
    maps = torch.zeros(1, 5, 5)
    maps[0, 0, 0] = 1.0
    masks = torch.zeros(1, 5, 5, dtype=torch.bool)
    masks[0, 2, 2] = True
    assert pointing_game(maps, masks, tolerance=1).item() == 0.0
    assert pointing_game(maps, masks, tolerance=2).item() == 1.0
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(maps, masks, tolerance=-1)


def test_energy_pointing_game_hand_computed_and_edges() -> None:
    maps = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = torch.stack([_mask([[0, 1], [0, 0]]), _mask([[1, 1], [1, 1]]), _mask([[0, 0], [0, 0]])])
    torch.testing.assert_close(energy_pointing_game(maps, masks), torch.tensor([0.75, 0.0, 0.0]))


def test_iou_hand_computed_and_edges() -> None:
    maps = torch.tensor([[[0.9, 0.6], [0.1, 0.0]], [[0.1, 0.1], [0.1, 0.1]], [[0.5, 0.4], [0.4, 0.4]]])
    masks = torch.stack([_mask([[1, 0], [1, 0]]), _mask([[0, 0], [0, 0]]), _mask([[1, 0], [0, 0]])])
    # 1 of 3 ; empty union -> 0 ; threshold is inclusive -> 1
    torch.testing.assert_close(iou(maps, masks), torch.tensor([1 / 3, 0.0, 1.0]))
    torch.testing.assert_close(iou(maps[:1], masks[:1], threshold=0.95), torch.tensor([0.0]))
    # float masks are binarised at 0.5
    torch.testing.assert_close(iou(maps[:1], masks[:1].float() * 0.9), torch.tensor([1 / 3]))


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1, 1.5])
def test_iou_threshold_must_be_open_unit_interval(threshold: float) -> None:
    with pytest.raises(ValueError, match=r"threshold.*\(0, 1\)"):
        iou(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool), threshold=threshold)


def test_nan_map_gives_nan_only_for_that_sample() -> None:
    maps = torch.rand(2, 4, 4)
    maps[1, 2, 2] = NAN
    masks = torch.ones(2, 4, 4, dtype=torch.bool)
    for fn in (pointing_game, energy_pointing_game, iou):
        got = fn(maps, masks)
        assert torch.isfinite(got[0]) and torch.isnan(got[1]), fn.__name__


def test_mask_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="resize the masks"):
        iou(torch.zeros(1, 4, 4), torch.zeros(1, 2, 2, dtype=torch.bool))


def test_boxes_to_masks_inverts_shapes_masks_to_boxes() -> None:
    masks = torch.zeros(3, 8, 9, dtype=torch.bool)
    masks[0, 1:4, 2:7] = True
    masks[1, 0, 0] = True
    masks[2, 5:8, 3:9] = True
    boxes = masks_to_boxes(masks)  # engineer C's half-open boxes
    torch.testing.assert_close(boxes_to_masks(boxes, 8, 9), masks)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        boxes_to_masks(torch.zeros(3), 8, 9)


def test_class_ground_truth_per_class_masks_and_class_boxes() -> None:
    from lightning_cam.functional.localization import class_ground_truth

    masks = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    masks[0, 1, 0, 0] = masks[1, 2, 3, 3] = True
    got = class_ground_truth(masks, None, torch.tensor([1, 2]), (4, 4))
    assert got[0, 0, 0] and got[1, 3, 3] and int(got.sum()) == 2
    assert int(class_ground_truth(masks, None, torch.tensor([0, 0]), (4, 4)).sum()) == 0  # absent class: empty
    rows = torch.tensor([[[0.0, 0.0, 2.0, 2.0, 1.0], [2.0, 2.0, 4.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0, -1.0]]])
    one = class_ground_truth(None, rows, torch.tensor([1]), (4, 4))
    assert one[0, :2, :2].all() and int(one.sum()) == 4
    # one mask per image keeps today's meaning whatever the target
    single = torch.ones(2, 4, 4, dtype=torch.bool)
    assert class_ground_truth(single, None, torch.tensor([0, 4]), (4, 4)).all()
    with pytest.raises(ValueError, match="a mask per class"):
        class_ground_truth(torch.zeros(2, 4, 5), None, torch.tensor([0, 1]), (4, 4))
