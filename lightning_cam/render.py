"""Render class activation maps for people: colormap overlays, captions and image grids.

Pure functions, tensor in and tensor out, with no state and no hooks. Images are ``(B, 3, H, W)`` float
tensors in ``[0, 1]`` (what [`cam_denormalize`][lightning_cam.mixin.CAMMixin.cam_denormalize] returns); maps are
``(B, H, W)`` float tensors in ``[0, 1]`` (what a CAM method returns). Every output is a float32 image
tensor in ``[0, 1]`` that ``SummaryWriter.add_image`` (``dataformats="CHW"``) and
``torchvision.utils.save_image`` accept as is.

Colours come from matplotlib's colormaps (``matplotlib.colormaps[name]``), sampled once into a 256-entry
lookup table and applied on the maps' device by indexing; captions are drawn with matplotlib's text
engine (Agg) in one figure per call; the layout is `torchvision.utils.make_grid`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.utils import make_grid

from lightning_cam.targets.task import NO_CLASS
from lightning_cam.utilities.checks import check_alpha, check_maps, check_shape, colormap_table

__all__ = [
    "BACKGROUND",
    "BORDER",
    "CAPTION_MIN_HEIGHT",
    "CORRECT_COLOR",
    "OUTLINE_COLOR",
    "PADDING",
    "UNKNOWN_COLOR",
    "WRONG_COLOR",
    "add_border",
    "apply_colormap",
    "as_rgb",
    "cam_grid",
    "draw_outlines",
    "evolution_grid",
    "fit_longer_side",
    "letterbox",
    "overlay",
    "overlay_columns",
    "text_tiles",
    "text_width",
    "to_uint8",
]

#: border/caption colours (RGB in ``[0, 1]``) of a correct, a wrong and an unlabelled prediction.
CORRECT_COLOR: tuple[float, float, float] = (0.15, 0.85, 0.25)
WRONG_COLOR: tuple[float, float, float] = (0.95, 0.2, 0.15)
UNKNOWN_COLOR: tuple[float, float, float] = (0.85, 0.85, 0.85)
#: outline of the region a map explains (a segmentation pair's predicted pixels), on the overlays
OUTLINE_COLOR: tuple[float, float, float] = (1.0, 1.0, 1.0)
#: dark grey behind captions and between tiles.
BACKGROUND = 0.08
#: smallest caption height in pixels (two lines of text); larger tiles get a third of their height.
CAPTION_MIN_HEIGHT = 24
#: frame width of the overlays, in pixels.
BORDER = 3
#: pixels between tiles.
PADDING = 2


def _check_images(images: Tensor) -> Tensor:
    return check_shape(images, ("B", 3, "H", "W"), "images",
                       "RGB in [0, 1]; use CAMMixin.cam_denormalize(images) to turn model inputs into displayable RGB")


def as_rgb(images: Tensor) -> Tensor:
    """``(B, C, H, W)`` displayable images of any channel count as ``(B, 3, H, W)``: one channel as grey, two
    channels as the first one in grey (the second has no colour of its own), three as they are, four or more as
    their first three (RGBA's alpha, a depth or infrared band dropped). Override
    [`cam_display`][lightning_cam.mixin.CAMMixin.cam_display] to show other bands.

    Example:
        >>> as_rgb(torch.rand(2, 1, 4, 4)).shape, as_rgb(torch.rand(2, 4, 4, 4)).shape
        (torch.Size([2, 3, 4, 4]), torch.Size([2, 3, 4, 4]))
    """
    c = check_shape(images, ("B", "C", "H", "W"), "images").shape[1]
    if c == 3:
        return images
    if c < 3:
        return images[:, :1].expand(-1, 3, -1, -1)
    return images[:, :3]


def fit_longer_side(images: Tensor, size: int) -> Tensor:
    """``(B, C, H, W)`` resized so that the longer side is ``size``, float32; the same tensor as float32 when it
    already is. Smaller: the mean of each tile's pixels (``"area"``: no aliasing, and about 4 times faster than
    bilinear on a CPU at 224 -> 32 px); larger: bilinear.

    Example:
        >>> fit_longer_side(torch.ones(1, 3, 8, 4), 16).shape
        torch.Size([1, 3, 16, 8])
    """
    h, w = images.shape[-2:]
    scale = size / max(h, w)
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    if new == (h, w):
        return images.float()
    if new[0] <= h and new[1] <= w:
        return F.interpolate(images.float(), size=new, mode="area")
    return F.interpolate(images.float(), size=new, mode="bilinear", align_corners=False)


def letterbox(images: Tensor, size: int) -> Tensor:
    """``(B, C, H, W)`` resized so that the longer side is ``size`` and padded with zeros to
    ``(B, C, size, size)``, centred: every tile has one shape whatever the images' sizes.

    Example:
        >>> letterbox(torch.ones(1, 1, 4, 8), 16).shape
        torch.Size([1, 1, 16, 16])
    """
    x = fit_longer_side(images, size)
    nh, nw = x.shape[-2:]
    top, left = (size - nh) // 2, (size - nw) // 2
    return F.pad(x, (left, size - nw - left, top, size - nh - top))


def to_uint8(x: Tensor) -> Tensor:
    """Values in ``[0, 1]`` as ``uint8`` ``round(255 · clamp(x, 0, 1))`` (NaN as 0), same shape and device.

    Example:
        >>> to_uint8(torch.tensor([0.0, 0.5, 1.0, float("nan"), 2.0])).tolist()
        [0, 128, 255, 0, 255]
    """
    return (torch.nan_to_num(x.detach().float(), nan=0.0).clamp(0, 1) * 255).round().to(torch.uint8)


def apply_colormap(maps: Tensor, colormap: str = "jet") -> Tensor:
    """Colour ``(B, H, W)`` maps in ``[0, 1]`` with a matplotlib colormap.

    ``heat[b, :, i, j] = cmap(round(clamp(maps[b, i, j], 0, 1) * 255) / 255)[:3]``: the colormap sampled at
    256 levels, as matplotlib does for 8-bit images. Non-finite values are drawn as 0.

    Args:
        maps: ``(B, H, W)`` float tensor, values in ``[0, 1]`` (clamped).
        colormap: a name in ``matplotlib.colormaps`` (``"jet"``, ``"turbo"``, ``"viridis"``, ...).

    Returns:
        ``(B, 3, H, W)`` float32 RGB in ``[0, 1]`` on ``maps.device``.

    Example:
        >>> heat = apply_colormap(torch.tensor([[[0.0, 1.0]]]), "gray")
        >>> heat.shape, heat[0, :, 0, 1].tolist()
        (torch.Size([1, 3, 1, 2]), [1.0, 1.0, 1.0])
    """
    check_maps(maps)
    lut = colormap_table(colormap).to(maps.device)
    x = torch.nan_to_num(maps.detach().float(), nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
    idx = (x * (lut.shape[0] - 1)).round().long()
    return lut[idx].permute(0, 3, 1, 2).contiguous()


def overlay(images: Tensor, maps: Tensor, colormap: str = "jet", alpha: float = 0.5) -> Tensor:
    """Blend coloured maps over images: ``(1 - alpha) * images + alpha * apply_colormap(maps)``.

    Maps of another size than the images are resized bilinearly to ``(H, W)`` first.

    Args:
        images: ``(B, 3, H, W)`` RGB in ``[0, 1]``.
        maps: ``(B, h, w)`` maps in ``[0, 1]``.
        colormap: matplotlib colormap name.
        alpha: weight of the heatmap, in ``[0, 1]``.

    Returns:
        ``(B, 3, H, W)`` float32 in ``[0, 1]``.

    Example:
        >>> out = overlay(torch.zeros(2, 3, 4, 4), torch.ones(2, 2, 2), "gray", alpha=0.25)
        >>> out.shape, round(out.max().item(), 4)
        (torch.Size([2, 3, 4, 4]), 0.25)
    """
    _check_images(images)
    check_maps(maps)
    alpha = check_alpha(alpha)
    if maps.shape[0] != images.shape[0]:
        raise ValueError(f"got {images.shape[0]} images but {maps.shape[0]} maps; pass one map per image.")
    maps = maps.detach().float().to(images.device)
    if maps.shape[-2:] != images.shape[-2:]:
        maps = F.interpolate(maps[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    heat = apply_colormap(maps, colormap)
    return ((1.0 - alpha) * images.detach().float() + alpha * heat).clamp(0.0, 1.0)


def add_border(images: Tensor, colors: Tensor, width: int = 3) -> Tensor:
    """Paint a ``width``-pixel frame of a per-image colour around each image (returns a copy).

    Args:
        images: ``(B, 3, H, W)`` RGB.
        colors: ``(B, 3)`` RGB per image (or ``(3,)`` for all).
        width: frame width in pixels, ``0 <= 2 * width < min(H, W)``.

    Returns:
        ``(B, 3, H, W)`` float32.

    Example:
        >>> out = add_border(torch.zeros(1, 3, 5, 5), torch.tensor([1.0, 0.0, 0.0]), width=1)
        >>> out[0, 0].sum().item(), out[0, 0, 2, 2].item()
        (16.0, 0.0)
    """
    _check_images(images)
    h, w = images.shape[-2:]
    if width < 0 or 2 * width >= min(h, w):
        raise ValueError(f"border width must be >= 0 and leave pixels inside a {h}x{w} image, got {width}.")
    out = images.detach().float().clone()
    if width == 0:
        return out
    col = colors.detach().float().to(out.device).expand(out.shape[0], 3)[:, :, None, None]
    frame = torch.ones(h, w, dtype=torch.bool, device=out.device)
    frame[width : h - width, width : w - width] = False
    return torch.where(frame, col.expand_as(out), out)


def _fit_text(text: str, max_chars: int) -> str:
    lines = [line if len(line) <= max_chars else line[: max(1, max_chars - 1)] + "…" for line in text.split("\n")]
    return "\n".join(lines)


def text_tiles(
    texts: Sequence[str],
    height: int,
    width: int,
    colors: Sequence[Sequence[float]] | None = None,
    fontsize: float | None = None,
) -> Tensor:
    """Draw one caption per tile (white or coloured text on dark grey).

    Lines too long for the tile are cut with an ellipsis. This loops over the (few) captions in Python: it
    is meant for the handful of probe images of a grid, not for hot paths.

    Args:
        texts: ``B`` strings; ``"\\n"`` starts a new line.
        height: tile height in pixels.
        width: tile width in pixels.
        colors: ``B`` RGB triples in ``[0, 1]`` for the text (default white).
        fontsize: in points at 100 dpi (default: fits two lines into ``height``).

    Returns:
        ``(B, 3, height, width)`` float32 in ``[0, 1]``.

    Example:
        >>> tiles = text_tiles(["pred: circle", "pred: square"], height=24, width=96)
        >>> tiles.shape, bool(tiles.max() > 0.5)
        (torch.Size([2, 3, 24, 96]), True)
    """
    n = len(texts)
    if height < 4 or width < 4:
        raise ValueError(f"caption tiles need at least 4x4 pixels, got {height}x{width}.")
    if colors is not None and len(colors) != n:
        raise ValueError(f"got {n} texts but {len(colors)} colors; pass one colour per text.")
    if n == 0:
        return torch.zeros(0, 3, height, width)
    palette = None if colors is None else tuple(tuple(float(c) for c in color) for color in colors)
    drawn = _drawn_tiles(tuple(str(t) for t in texts), height, width, palette, fontsize)
    return torch.from_numpy(drawn).float().div_(255.0)  # a fresh tensor: the kept array is never handed out


#: the captions' resolution (points to pixels) and the width of a character of DejaVu Sans, in ems (a wide
#: estimate: a line of that many characters fits)
_DPI, _CHAR_EM = 100.0, 0.62


def text_width(text: str, fontsize: float) -> int:
    """The pixels the longest line of ``text`` needs in `text_tiles` at ``fontsize`` points (a longer line is cut
    with an ellipsis there), margins included.

    Examples:
        >>> text_width("a caption", 7.0) < text_width("a longer caption", 7.0)
        True
    """
    longest = max((len(line) for line in text.split("\n")), default=0)
    return math.ceil((longest + 2) * _CHAR_EM * fontsize * _DPI / 72.0)


@functools.lru_cache(maxsize=32)
def _drawn_tiles(texts: tuple[str, ...], height: int, width: int, colors: tuple[tuple[float, ...], ...] | None,
                 fontsize: float | None) -> np.ndarray:
    """`text_tiles`, drawn once per distinct set of captions (the methods of one run share their probe captions,
    and the captions repeat from run to run). Kept as a ``uint8`` ``(B, 3, height, width)`` array (not a tensor:
    a bounded cache, not live tensors): at most 32 sets of a few hundred kilobytes each.

    Drawn with Pillow's FreeType text in matplotlib's own DejaVu Sans: about 0.3 ms a caption, where one
    matplotlib figure of the captions took 4 ms a caption (0.17 s for the 45 tiles of a strategies image)."""
    if fontsize is None:  # fit the lines into the height and, down to 5 pt, the longest line into the width
        max_lines = max(t.count("\n") + 1 for t in texts)
        longest = max(len(line) for t in texts for line in str(t).split("\n")) or 1
        by_width = width / (longest * _CHAR_EM * _DPI / 72.0)
        fontsize = max(5.0, min(11.0, 0.8 * height / max_lines * 72.0 / _DPI / 1.25, by_width))
    pixels = fontsize * _DPI / 72.0
    max_chars = max(3, int(width / (_CHAR_EM * pixels)))
    font = _font(round(pixels * 4) / 4)
    out = np.empty((len(texts), 3, height, width), dtype=np.uint8)
    background = (round(255 * BACKGROUND),) * 3
    for i, text in enumerate(texts):
        tile = Image.new("RGB", (width, height), background)
        if text:
            color = tuple(round(255 * c) for c in colors[i]) if colors is not None else (255, 255, 255)
            ImageDraw.Draw(tile).multiline_text((width / 2, height / 2), _fit_text(str(text), max_chars), font=font,
                                                fill=color, anchor="mm", align="center", spacing=0.1 * pixels)
        out[i] = np.asarray(tile).transpose(2, 0, 1)
    return out


@functools.lru_cache(maxsize=16)
def _font(pixels: float) -> ImageFont.FreeTypeFont:
    """matplotlib's DejaVu Sans (shipped with matplotlib: no system font needed) at ``pixels`` pixels."""
    return ImageFont.truetype(font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans")), pixels)


def draw_outlines(images: Tensor, regions: Tensor, color: Sequence[float] = OUTLINE_COLOR) -> Tensor:
    """``images`` with the outline of each ``region`` drawn in ``color``: the region's pixels that touch a pixel
    outside it (a 3x3 neighbourhood), after resizing the region to the images (nearest).

    Args:
        images: ``(B, 3, H, W)`` in ``[0, 1]``.
        regions: ``(B, h, w)`` bool.

    Examples:
        >>> region = torch.zeros(1, 4, 4, dtype=torch.bool)
        >>> region[0, 1:3, 1:3] = True
        >>> draw_outlines(torch.zeros(1, 3, 4, 4), region)[0, 0].int().tolist()
        [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    inside = F.interpolate(regions[:, None].float(), size=images.shape[-2:], mode="nearest")
    eroded = -F.max_pool2d(-inside, 3, stride=1, padding=1)
    edge = (inside - eroded).clamp(0, 1)  # (B, 1, H, W)
    paint = torch.tensor(list(color), dtype=images.dtype).view(1, 3, 1, 1)
    return images * (1 - edge) + paint * edge


def overlay_columns(images: Tensor, maps: Tensor, colors: Sequence[Sequence[float]], texts: Sequence[str],
                    colormap: str = "jet", alpha: float = 0.5, border: int = BORDER,
                    padding: int = PADDING, nrow: int | None = None, outlines: Tensor | None = None) -> Tensor:
    """The column layout of the probe grid and the worst-case gallery: per image, the input, its overlay framed
    in ``colors[b]``, and a caption ``texts[b]`` in that colour, laid out with ``make_grid``.

    Args:
        images: ``(B, 3, h_t, w_t)`` displayable RGB tiles in ``[0, 1]`` (already at tile size).
        maps: ``(B, h, w)`` maps in ``[0, 1]`` (resized to the tiles).
        colors: ``B`` RGB triples of frame and caption.
        texts: ``B`` captions.
        nrow: columns per row (default all ``B`` in one row; ``make_grid``'s ``nrow``).
        outlines: ``(B, h, w)`` bool regions outlined on the overlays (`draw_outlines`): what each map explains
            (a segmentation pair's predicted pixels), or ``None``.

    Returns:
        ``(3, 2 * h_t + caption + 2 * padding, B * (w_t + padding) + padding)`` float32 in ``[0, 1]`` with
        ``caption = max(CAPTION_MIN_HEIGHT, h_t // 3)`` (one row; ``ceil(B / nrow)`` rows of ``nrow`` otherwise).

    Example:
        >>> overlay_columns(torch.rand(2, 3, 32, 32), torch.rand(2, 8, 8), [CORRECT_COLOR] * 2, ["a", "b"]).shape
        torch.Size([3, 92, 70])
    """
    th, tw = images.shape[-2:]
    over = overlay(images, maps, colormap, alpha)
    if outlines is not None:
        over = draw_outlines(over, outlines.detach().cpu())
    palette = torch.tensor([list(c) for c in colors], dtype=torch.float32)
    over = add_border(over, palette, width=min(border, (min(th, tw) - 1) // 2))
    captions = text_tiles(texts, max(CAPTION_MIN_HEIGHT, th // 3), tw, colors=colors)
    columns = torch.cat([images.float(), over, captions], dim=2)
    return make_grid(columns, nrow=nrow or images.shape[0], padding=padding, pad_value=BACKGROUND)


def class_name(classes: Sequence[str] | None, index: int) -> str:
    """The caption of a class index: its name, ``"none"`` for a multi-label pair's absent class
    (`NO_CLASS`), else the index.

    Example:
        >>> class_name(["circle"], 0), class_name(["circle"], -2), class_name(None, 3)
        ('circle', 'none', '3')
    """
    if classes is not None and 0 <= index < len(classes):
        return str(classes[index])
    return "none" if index == NO_CLASS else str(index)


def cam_grid(
    images: Tensor,
    maps: Tensor,
    preds: Tensor,
    labels: Tensor | None = None,
    class_names: Sequence[str] | None = None,
    colormap: str = "jet",
    alpha: float = 0.5,
    tile_size: int = 128,
    border: int = BORDER,
    padding: int = PADDING,
    outlines: Tensor | None = None,
) -> Tensor:
    """A grid with one column per image: the input, its CAM overlay framed green (right) or red (wrong), and
    a caption with the predicted and the true class.

    Layout: column ``b`` holds ``images[b]`` (resized so its longer side is ``tile_size``), below it
    ``overlay(images[b], maps[b])`` with a ``border``-pixel frame in `CORRECT_COLOR` if
    ``preds[b] == labels[b]``, `WRONG_COLOR` if not, `UNKNOWN_COLOR` without labels; below that
    a caption tile ``"pred: <name>\\ntrue: <name>"``. Columns are laid out with ``make_grid``. A multi-label
    pair's column names its class, or ``none`` where the model does not predict it (``pred``) or the labels do
    not hold it (``true``), see [`predicted_for`][lightning_cam.targets.task.predicted_for].

    Args:
        images: ``(B, 3, H, W)`` displayable RGB in ``[0, 1]``.
        maps: ``(B, h, w)`` CAMs in ``[0, 1]`` (resized to the images).
        preds: ``(B,)`` predicted class indices.
        labels: ``(B,)`` true class indices, or ``None``.
        class_names: names for the captions (indices are shown when missing).
        colormap, alpha: see `overlay`.
        tile_size: longer side of each tile in pixels.
        border: frame width of the overlays.
        padding: pixels between columns (``make_grid``).
        outlines: ``(B, h, w)`` bool, the region each map explains, outlined on its overlay (a segmentation
            pair's predicted pixels, `TargetKind.region`), or ``None``.

    Returns:
        ``(3, H_grid, W_grid)`` float32 in ``[0, 1]`` with ``W_grid = B * (w_t + padding) + padding`` and
        ``H_grid = 2 * h_t + caption + 2 * padding`` for tiles of ``h_t x w_t``.

    Example:
        >>> grid = cam_grid(torch.rand(4, 3, 32, 32), torch.rand(4, 32, 32), torch.tensor([0, 1, 2, 0]),
        ...                 torch.tensor([0, 1, 0, 0]), ["circle", "square", "cross"], tile_size=64)
        >>> grid.shape
        torch.Size([3, 156, 266])
    """
    _check_images(images)
    check_maps(maps)
    b = images.shape[0]
    if maps.shape[0] != b or preds.shape[0] != b or (labels is not None and labels.shape[0] != b):
        raise ValueError(
            f"images ({b}), maps ({maps.shape[0]}), preds ({preds.shape[0]}) and labels "
            f"({None if labels is None else labels.shape[0]}) must hold one entry per image."
        )
    imgs = fit_longer_side(images.detach().cpu(), tile_size).clamp(0.0, 1.0)
    preds_l = [int(p) for p in preds.detach().cpu().tolist()]
    labels_l = None if labels is None else [int(t) for t in labels.detach().cpu().tolist()]
    if labels_l is None:
        colors = [UNKNOWN_COLOR] * b
        texts = [f"pred: {class_name(class_names, p)}" for p in preds_l]
    else:
        colors = [CORRECT_COLOR if p == t else WRONG_COLOR for p, t in zip(preds_l, labels_l)]
        texts = [f"pred: {class_name(class_names, p)}\ntrue: {class_name(class_names, t)}"
                 for p, t in zip(preds_l, labels_l)]
    return overlay_columns(imgs, maps.detach().cpu().float(), colors, texts, colormap, alpha, border, padding,
                           outlines=outlines)


def evolution_grid(
    images: Tensor,
    maps: Tensor,
    row_labels: Sequence[str],
    colormap: str = "jet",
    alpha: float = 0.5,
    tile_size: int = 96,
    padding: int = PADDING,
    title: str = "input",
) -> Tensor:
    """How the maps of the same images change: the inputs on top, then one row of overlays per entry of
    ``maps`` (for example one per epoch), each row labelled on the left.

    Args:
        images: ``(B, 3, H, W)`` displayable RGB in ``[0, 1]``.
        maps: ``(E, B, h, w)`` maps in ``[0, 1]``, row ``e`` drawn over the same ``images``.
        row_labels: ``E`` labels (e.g. ``"epoch 3"``) drawn left of each row.
        colormap, alpha: see `overlay`.
        tile_size: longer side of each tile in pixels.
        padding: pixels between tiles.
        title: label of the input row.

    Returns:
        ``(3, (E + 1) * (h_t + padding) + padding, (B + 1) * (w_t + padding) + padding)`` float32 in
        ``[0, 1]`` for tiles of ``h_t x w_t``.

    Example:
        >>> evo = evolution_grid(torch.rand(3, 3, 16, 16), torch.rand(2, 3, 4, 4), ["epoch 0", "epoch 1"],
        ...                      tile_size=32)
        >>> evo.shape
        torch.Size([3, 104, 138])
    """
    _check_images(images)
    if maps.ndim != 4 or maps.shape[1] != images.shape[0]:
        raise ValueError(
            f"maps must be (E, B, h, w) with B = {images.shape[0]} images, got {tuple(maps.shape)}."
        )
    e, b = maps.shape[:2]
    if len(row_labels) != e:
        raise ValueError(f"got {e} rows of maps but {len(row_labels)} row labels; pass one label per row.")
    imgs = fit_longer_side(images.detach().cpu(), tile_size).clamp(0.0, 1.0)
    th, tw = imgs.shape[-2:]
    rows = [imgs]
    flat = maps.detach().cpu().float().reshape(e * b, *maps.shape[-2:])
    over = overlay(imgs.repeat(e, 1, 1, 1), flat, colormap, alpha)
    rows.extend(over.reshape(e, b, 3, th, tw).unbind(0))
    labels = text_tiles([title, *row_labels], th, tw)
    tiles = torch.cat([torch.cat([labels[i : i + 1], row]) for i, row in enumerate(rows)])
    return make_grid(tiles, nrow=b + 1, padding=padding, pad_value=BACKGROUND)

