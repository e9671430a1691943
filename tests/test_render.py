"""lightning_cam.render: colormaps against matplotlib, overlay formula, borders, captions and grid layouts."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from lightning_cam.render import (
    CORRECT_COLOR,
    UNKNOWN_COLOR,
    WRONG_COLOR,
    add_border,
    apply_colormap,
    cam_grid,
    evolution_grid,
    overlay,
    text_tiles,
)


@pytest.mark.parametrize("name", ["jet", "viridis", "turbo"])
def test_apply_colormap_matches_matplotlib_8bit(name: str) -> None:
    maps = torch.linspace(0, 1, 256).reshape(1, 16, 16)
    heat = apply_colormap(maps, name)
    assert heat.shape == (1, 3, 16, 16) and heat.dtype == torch.float32
    # matplotlib's own 8-bit lookup: cmap(uint8 index) gives the colour of level index/255
    idx = np.round(maps.numpy() * 255).astype(np.uint8)
    expected = matplotlib.colormaps[name](idx)[..., :3]
    torch.testing.assert_close(heat[0].permute(1, 2, 0), torch.from_numpy(expected[0]).float())


def test_apply_colormap_clamps_and_handles_nonfinite() -> None:
    maps = torch.tensor([[[-1.0, 2.0, float("nan"), float("inf")]]])
    heat = apply_colormap(maps, "gray")
    assert heat[0, 0, 0].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_unknown_colormap_names_the_fix() -> None:
    with pytest.raises(ValueError, match="unknown colormap 'nope'.*matplotlib"):
        apply_colormap(torch.zeros(1, 2, 2), "nope")


def test_overlay_is_the_documented_blend_and_resizes_maps() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 8, 8, generator=g)
    maps = torch.rand(2, 8, 8, generator=g)
    out = overlay(images, maps, "viridis", alpha=0.3)
    torch.testing.assert_close(out, 0.7 * images + 0.3 * apply_colormap(maps, "viridis"))
    small = overlay(images, torch.ones(2, 2, 2), "gray", alpha=1.0)  # bilinear upsampled constant stays 1
    assert torch.equal(small, torch.ones_like(small))


def test_overlay_rejects_bad_shapes_and_alpha() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        overlay(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        overlay(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="alpha"):
        overlay(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4), alpha=1.5)
    with pytest.raises(ValueError, match="one map per image"):
        overlay(torch.zeros(2, 3, 4, 4), torch.zeros(3, 4, 4))


def test_add_border_paints_only_the_frame() -> None:
    images = torch.full((2, 3, 6, 6), 0.5)
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    out = add_border(images, colors, width=2)
    inner = torch.zeros(6, 6, dtype=torch.bool)
    inner[2:4, 2:4] = True
    assert torch.equal(out[:, :, inner], images[:, :, inner])
    assert torch.equal(out[0, :, ~inner], colors[0][:, None].expand(3, int((~inner).sum())))
    assert torch.equal(out[1, :, ~inner], colors[1][:, None].expand(3, int((~inner).sum())))
    assert torch.equal(images, torch.full((2, 3, 6, 6), 0.5))  # input untouched
    with pytest.raises(ValueError, match="border width"):
        add_border(images, colors, width=3)


def test_text_tiles_draw_in_the_requested_colour() -> None:
    tiles = text_tiles(["pred: circle", ""], height=24, width=96, colors=[(1.0, 0.0, 0.0), (1.0, 1.0, 1.0)])
    assert tiles.shape == (2, 3, 24, 96)
    assert 0.0 <= tiles.min() and tiles.max() <= 1.0
    red = (tiles[0, 0] > 0.5) & (tiles[0, 1] < 0.3)
    assert int(red.sum()) > 10  # text pixels are red
    assert float(tiles[1].std()) < 1e-6  # an empty caption is plain background


def test_cam_grid_layout_and_correctness_frames() -> None:
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    maps = torch.zeros(3, 4, 4)
    preds = torch.tensor([0, 1, 2])
    labels = torch.tensor([0, 2, 2])
    grid = cam_grid(images, maps, preds, labels, ["a", "b", "c"], tile_size=32, border=2, padding=2)
    caption = 24
    assert grid.shape == (3, 2 * 32 + caption + 4, 3 * (32 + 2) + 2)
    # top-left pixel of each overlay tile carries its frame colour
    y = 2 + 32
    for b, expected in enumerate([CORRECT_COLOR, WRONG_COLOR, CORRECT_COLOR]):
        x = 2 + b * 34
        torch.testing.assert_close(grid[:, y, x], torch.tensor(expected))
    unlabelled = cam_grid(images, maps, preds, None, tile_size=32, border=2)
    torch.testing.assert_close(unlabelled[:, y, 2], torch.tensor(UNKNOWN_COLOR))
    # the input row shows the (resized) inputs unchanged
    torch.testing.assert_close(grid[:, 2:34, 2:34], torch.nn.functional.interpolate(
        images[:1], size=(32, 32), mode="bilinear", align_corners=False).clamp(0, 1)[0])


def test_cam_grid_checks_lengths() -> None:
    with pytest.raises(ValueError, match="one entry per image"):
        cam_grid(torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8), torch.tensor([0]), None, tile_size=16)


def test_evolution_grid_rows_follow_the_maps() -> None:
    images = torch.zeros(2, 3, 8, 8)
    maps = torch.stack([torch.zeros(2, 8, 8), torch.ones(2, 8, 8)])
    evo = evolution_grid(images, maps, ["epoch 0", "epoch 1"], colormap="gray", alpha=1.0, tile_size=16, padding=2)
    assert evo.shape == (3, 3 * 18 + 2, 3 * 18 + 2)
    row = lambda r: evo[:, 2 + r * 18 : 2 + r * 18 + 16, 2 + 18 : 2 + 18 + 16]  # noqa: E731 first image column
    assert torch.equal(row(0), torch.zeros(3, 16, 16))  # input row
    assert torch.equal(row(1), torch.zeros(3, 16, 16))  # map 0 in gray = black
    assert torch.equal(row(2), torch.ones(3, 16, 16))  # map 1 in gray = white
    with pytest.raises(ValueError, match="one label per row"):
        evolution_grid(images, maps, ["epoch 0"])


def test_captions_of_narrow_tiles_are_shrunk_to_fit_not_cut() -> None:
    """Two validations of one epoch (val_check_interval=0.5) must not read the same in the evolution image."""
    from lightning_cam.callbacks.probe import History

    h = History()
    for row, step in enumerate((15, 31)):
        h.add("gradcam", row, torch.rand(2, 8, 8), torch.zeros(2), epoch=0, step=step)
    labels = [h.caption(0), h.caption(1)]
    assert labels == ["epoch 0\nstep 15", "epoch 0\nstep 31"]
    for texts, size in ((labels, 48), (["epoch 0, step 15", "epoch 0, step 31"], 96)):
        tiles = text_tiles(texts, height=size, width=size)
        assert not torch.equal(tiles[0], tiles[1])  # the steps differ in the pixels: nothing was cut


def test_text_tiles_are_drawn_once_per_set_of_captions_and_callers_cannot_change_the_kept_ones() -> None:
    from lightning_cam import render

    render._drawn_tiles.cache_clear()
    first = render.text_tiles(["pred: circle", "pred: square"], 24, 96, colors=[(1.0, 0.0, 0.0)] * 2)
    first.zero_()  # a caller drawing over its tiles
    again = render.text_tiles(["pred: circle", "pred: square"], 24, 96, colors=[(1.0, 0.0, 0.0)] * 2)
    info = render._drawn_tiles.cache_info()
    assert (info.hits, info.misses) == (1, 1) and again.max() > 0.5
    other = render.text_tiles(["pred: circle", "pred: square"], 24, 96)  # another colour: drawn anew
    assert render._drawn_tiles.cache_info().misses == 2 and not torch.equal(other, again)
