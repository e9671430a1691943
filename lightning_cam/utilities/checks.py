"""Every input rule of lightning_cam, checked in exactly one function with one message.

Each ``check_*`` names the value it received and the fix, and returns the value in the form the caller
uses (a ``(B,)`` long tensor, an ``int``, a ``float``, ...). The CAM methods, the metric formulas in
`lightning_cam.functional`, the metric classes, [`lightning_cam.evaluate_batch`][lightning_cam.evaluate_batch] and
`lightning_cam.render` all call these instead of checking on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal, overload

import matplotlib
import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "BASELINES",
    "DEFAULT_OPTIONS",
    "check_alpha",
    "check_baseline",
    "check_batch_size",
    "check_boxes",
    "colormap_table",
    "check_images",
    "check_logits",
    "check_maps",
    "check_masks",
    "check_options",
    "check_same_shape",
    "check_shape",
    "check_sigma",
    "check_steps",
    "check_target_range",
    "as_multi_hot",
    "check_targets",
    "check_threshold",
    "check_road_noise",
    "check_road_percentiles",
    "check_tolerance",
    "check_top_k",
]

#: baseline names accepted by `lightning_cam.functional.perturbation.make_baseline` (or a tensor).
BASELINES = ("zeros", "blur", "mean")

#: keyword options of [`lightning_cam.evaluate_batch`][lightning_cam.evaluate_batch] and their defaults.
DEFAULT_OPTIONS: dict[str, Any] = {
    "steps": 20,  # insertion/deletion: number of perturbation steps (>= 1)
    "baseline": "zeros",  # insertion/deletion: "zeros", "blur", "mean" or a tensor
    "sigma": 5.0,  # insertion/deletion: blur baseline's Gaussian sigma in pixels
    "batch_size": None,  # insertion/deletion: perturbed images per forward; None: utilities.chunking.chunk_size
    "threshold": 0.5,  # iou: map threshold in (0, 1)
    "tolerance": 0,  # pointing_game: pixels by which the object is grown
    "top_k": 1000,  # top_k_intersection: the map's highest pixels counted (Quantus's default)
    "road_percentiles": (20, 40, 60, 80),  # the ROAD family: the percentiles averaged over (ARCC's)
    "road_noise": 0.01,  # the ROAD family: the imputation's noise (pytorch-grad-cam's)
    "randomization": "cascading",  # randomization: "cascading" (top down) or "independent" (one layer)
    "randomization_layers": None,  # randomization: how many layers from the top (None: all; independent: the k-th)
    "randomization_seed": 42,  # randomization: the re-initialisation's seed (Quantus's default)
    "random_logit_seed": 42,  # random_logit: the seed of each class's other class
}

_LUT_SIZE = 256


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shape(value: object) -> object:
    return tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__


def check_shape(x: object, dims: Sequence[str | int], name: str, hint: str = "") -> Tensor:
    """The one shape check (kornia's style): ``x`` is a tensor with one dimension per entry of ``dims``; an
    ``int`` entry fixes that dimension's size, a ``str`` names a free one. The message names the layout, the
    shape received and ``hint`` (the fix).

    Examples:
        >>> check_shape(torch.zeros(2, 3, 4, 4), ("B", 3, "H", "W"), "images").shape
        torch.Size([2, 3, 4, 4])
        >>> check_shape(torch.zeros(2, 4, 4, 4), ("B", 3, "H", "W"), "images", "RGB in [0, 1]")
        Traceback (most recent call last):
        ...
        ValueError: `images` must be a (B, 3, H, W) tensor, got shape (2, 4, 4, 4); RGB in [0, 1].
    """
    ok = isinstance(x, Tensor) and x.ndim == len(dims) and all(
        isinstance(d, str) or x.shape[i] == d for i, d in enumerate(dims))
    if not ok:
        layout = "(" + ", ".join(str(d) for d in dims) + ")"
        got = f"shape {_shape(x)}" if isinstance(x, Tensor) else f"a {_shape(x)}"
        raise ValueError(f"`{name}` must be a {layout} tensor, got {got}{'; ' + hint if hint else ''}.")
    assert isinstance(x, Tensor)
    return x


# ----------------------------------------------------------------------------------------- model inputs
def check_images(images: object, *, allow_empty: bool = False) -> Tensor:
    """Model inputs: a ``(B, C, H, W)`` floating-point tensor, non-empty unless ``allow_empty``.

    Examples:
        >>> check_images(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}.")
    if images.ndim != 4:
        fix = " Add the batch dimension with images.unsqueeze(0)." if images.ndim == 3 else ""
        raise ValueError(f"images must be 4-D (B, C, H, W), got shape {tuple(images.shape)}.{fix}")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be a floating-point tensor, got dtype {images.dtype}; convert with images.float() "
            "(and normalise as the model expects)."
        )
    if images.shape[0] == 0 and not allow_empty:
        raise ValueError("images is an empty batch (B == 0); pass at least one image.")
    return images


def as_multi_hot(labels: Tensor) -> Tensor:
    """``(B, K)`` labels as bool positives: bool as they are, floats above 0.5, non-zero integers.

    Examples:
        >>> as_multi_hot(torch.tensor([[0.9, 0.1], [0.0, 1.0]])).tolist(), as_multi_hot(torch.tensor([[2, 0]])).tolist()
        ([[True, False], [False, True]], [[True, False]])
    """
    if labels.dtype == torch.bool:
        return labels
    return labels > 0.5 if labels.is_floating_point() else labels != 0


def check_targets(targets: object, batch: int, device: torch.device, multi_hot: bool = False) -> Tensor | None:
    """Classes to explain: ``None``, an int, or ``B`` integer class indices -> ``(B,)`` long (or ``None``).

    With ``multi_hot`` (the ``multilabel`` output kind, [`lightning_cam.targets.task`][lightning_cam.targets.task]), a
    ``(B, K)``
    matrix of labels is accepted too and returned as bool (``True`` for a positive: non-zero integers, floats
    above 0.5): every positive is one (image, class) pair to explain.

    Examples:
        >>> check_targets([1, 2], 2, torch.device("cpu"))
        tensor([1, 2])
        >>> check_targets(3, 2, torch.device("cpu"))
        tensor([3, 3])
        >>> check_targets(torch.tensor([[1.0, 0.0, 1.0]]), 1, torch.device("cpu"), multi_hot=True)
        tensor([[ True, False,  True]])
    """
    if targets is None:
        return None
    if isinstance(targets, bool):
        raise ValueError("targets must be integer class indices, got a bool.")
    if isinstance(targets, int):
        return torch.full((batch,), targets, dtype=torch.long, device=device)
    if isinstance(targets, (list, tuple)):
        if not all(_is_int(t) for t in targets):
            raise ValueError(
                "targets must be integer class indices (a LongTensor of shape (B,)), got a list with non-int entries."
            )
        targets = torch.tensor(list(targets), dtype=torch.long)
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be None, an int or a LongTensor of shape (B,), got {type(targets).__name__}.")
    if targets.ndim == 2 and targets.shape[1] > 1:
        if targets.shape[0] != batch:
            raise ValueError(f"targets has {targets.shape[0]} rows but the batch has {batch} images.")
        if multi_hot:
            return as_multi_hot(targets).to(device)
        raise ValueError(
            f"targets must be 1-D (B,) class indices, got shape {tuple(targets.shape)}. Several labels per image "
            "(multi-hot, a sigmoid per class) are the task='multilabel' output kind (on CAMMixin: `cam_task = "
            "'multilabel'`); for one-hot rows of a softmax classifier pass targets.argmax(1)."
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(
            f"targets must be integer class indices (a LongTensor of shape (B,)), got dtype {targets.dtype}; "
            "use targets.long() for class indices or targets.argmax(1) for one-hot/probabilities."
        )
    if targets.ndim == 0:
        targets = targets.expand(batch)
    if targets.ndim != 1:
        raise ValueError(
            f"targets must be 1-D (B,) class indices, got shape {tuple(targets.shape)}; use targets.view(-1) "
            "for (B, 1), or targets.argmax(1) for one-hot."
        )
    if targets.shape[0] != batch:
        raise ValueError(
            f"targets has {targets.shape[0]} entries but the batch has {batch} images; pass one class index per image."
        )
    return targets.to(device=device, dtype=torch.long)


def check_logits(logits: object, batch: int, model: nn.Module) -> Tensor:
    """The model output must be a tensor with one row per image (its shape is the target kind's rule,
    [`TargetKind.check_output`][lightning_cam.targets.base.TargetKind.check_output]).

    Examples:
        >>> check_logits(torch.zeros(2, 5), 2, nn.Identity()).shape
        torch.Size([2, 5])
    """
    if not isinstance(logits, Tensor):
        raise TypeError(
            f"{type(model).__name__}.forward returned {type(logits).__name__}; CAM methods need a (B, num_classes) "
            "logits tensor. Wrap the model so that forward(images) returns the logits."
        )
    if logits.ndim < 2 or logits.shape[0] != batch:
        raise ValueError(
            f"{type(model).__name__}.forward returned shape {tuple(logits.shape)}; CAM methods need one row of "
            f"scores per image (B={batch}, ...). Wrap the model so that forward(images) returns them."
        )
    return logits


def check_target_range(targets: Tensor, num_classes: int) -> None:
    """Every target must index one of the ``num_classes`` logits.

    Examples:
        >>> check_target_range(torch.tensor([0, 4]), 5)
    """
    bad = (targets < 0) | (targets >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"targets out of range for a model with {num_classes} classes: got {targets[bad][:8].tolist()}; "
            f"class indices must be in [0, {num_classes - 1}]."
        )


# ----------------------------------------------------------------------------------- maps, ground truth
def check_maps(maps: object, name: str = "maps") -> Tensor:
    """A batch of maps: a ``(B, H, W)`` tensor.

    Examples:
        >>> check_maps(torch.zeros(2, 4, 4)).shape
        torch.Size([2, 4, 4])
    """
    return check_shape(maps, ("B", "H", "W"), name,
                       f"add the batch dimension with `{name}.unsqueeze(0)` or squeeze extra dimensions")


def check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Two per-sample inputs of one formula must have the same shape.

    Examples:
        >>> check_same_shape(torch.zeros(3), torch.ones(3), "probs", "masked_probs")
    """
    if a.shape != b.shape:
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}; "
            "pass one value per sample for both."
        )


def check_masks(masks: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Ground-truth object masks of the maps' ``(B, H, W)`` ``shape`` (a ``(B, 1, H, W)`` mask is squeezed).

    Examples:
        >>> check_masks(torch.ones(2, 1, 4, 4, dtype=torch.bool), (2, 4, 4)).shape
        torch.Size([2, 4, 4])
    """
    m = masks[:, 0] if masks.ndim == 4 and masks.shape[1] == 1 else masks
    if tuple(m.shape) != tuple(shape):
        raise ValueError(
            f"`masks` must be (B, H, W) = {tuple(shape)} like the maps (or (B, K, H, W), a mask per class), got "
            f"{tuple(masks.shape)}; resize the masks to the input size (maps are upsampled to it), or pass boxes "
            "instead."
        )
    return m


def check_boxes(boxes: Tensor, batch: int | None = None) -> Tensor:
    """Ground-truth boxes: ``(B, 4)`` as ``(x0, y0, x1, y1)`` pixels, ``B = batch`` when given.

    Examples:
        >>> check_boxes(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), batch=1).shape
        torch.Size([1, 4])
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4 or (batch is not None and boxes.shape[0] != batch):
        expected = "(B, 4)" if batch is None else f"(B, 4) = ({batch}, 4)"
        raise ValueError(
            f"`boxes` must be {expected} as (x0, y0, x1, y1) pixels, one box per image, or (B, N, 5) rows "
            f"(x0, y0, x1, y1, class) padded with class -1; got shape {tuple(boxes.shape)}."
        )
    return boxes


# --------------------------------------------------------------------------------------- metric options
def check_steps(steps: object) -> int:
    """Insertion/deletion: the number of perturbation steps, an integer ``>= 1``.

    Examples:
        >>> check_steps(20)
        20
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be an integer >= 1, got {steps!r}.")
    return steps


@overload
def check_batch_size(batch_size: object, *, allow_none: Literal[False] = False) -> int: ...
@overload
def check_batch_size(batch_size: object, *, allow_none: bool) -> int | None: ...
def check_batch_size(batch_size: object, *, allow_none: bool = False) -> int | None:
    """Images per forward (a memory cap): an integer ``>= 1`` (or ``None`` when ``allow_none``).

    Examples:
        >>> check_batch_size(32), check_batch_size(None, allow_none=True)
        (32, None)
    """
    if batch_size is None and allow_none:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        also = " or None (all at once)" if allow_none else ""
        raise ValueError(f"`batch_size` (images per forward) must be an integer >= 1{also}, got {batch_size!r}.")
    return batch_size


def check_threshold(threshold: object) -> float:
    """IoU: the map threshold, a number in ``(0, 1)`` (maps are in ``[0, 1]``).

    Examples:
        >>> check_threshold(0.5)
        0.5
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"`threshold` must lie in (0, 1) (maps are in [0, 1]), got {threshold!r}.")
    return float(threshold)


def check_tolerance(tolerance: object) -> int:
    """Pointing game: pixels by which the object is grown, an integer ``>= 0``.

    Examples:
        >>> check_tolerance(15)
        15
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"`tolerance` must be an integer >= 0 (pixels), got {tolerance!r}.")
    return tolerance


def check_top_k(top_k: object) -> int:
    """Top-k intersection: how many of the map's highest pixels are counted, an integer ``>= 1``.

    Examples:
        >>> check_top_k(1000)
        1000
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be an integer >= 1 (pixels of the map counted), got {top_k!r}.")
    return top_k


def check_road_percentiles(percentiles: object) -> tuple[float, ...]:
    """The ROAD family: a non-empty sequence of percentiles in ``(0, 100)``.

    Examples:
        >>> check_road_percentiles([10, 90])
        (10.0, 90.0)
    """
    if isinstance(percentiles, (str, bytes)) or not hasattr(percentiles, "__iter__"):
        raise ValueError(f"`road_percentiles` must be a sequence of numbers in (0, 100), got {percentiles!r}.")
    values = tuple(percentiles)
    if not values or any(isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 100 for p in values):
        raise ValueError("`road_percentiles` must be a non-empty sequence of numbers in (0, 100), "
                         f"got {percentiles!r}.")
    return tuple(float(p) for p in values)


def check_road_noise(noise: object) -> float:
    """The ROAD family: the imputation noise's standard deviation, a number ``>= 0``.

    Examples:
        >>> check_road_noise(0)
        0.0
    """
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not float(noise) >= 0:
        raise ValueError("`road_noise` (the imputation noise's standard deviation) must be a number >= 0, "
                         f"got {noise!r}.")
    return float(noise)


def check_randomization(order: object) -> str:
    """Model parameter randomisation: ``"cascading"`` (the top layers re-initialised together, from the output
    down) or ``"independent"`` (one layer alone).

    Examples:
        >>> check_randomization("independent")
        'independent'
    """
    if order not in ("cascading", "independent"):
        raise ValueError("`randomization` must be 'cascading' (the top layers re-initialised together) or "
                         f"'independent' (one layer alone), got {order!r}.")
    return str(order)


def check_randomization_layers(layers: object) -> int | None:
    """Model parameter randomisation: how many layers from the top are re-initialised (``cascading``) or which one
    (``independent``, counting from 1 at the top); ``None``: every layer (``independent``: the top one).

    Examples:
        >>> check_randomization_layers(3), check_randomization_layers(None)
        (3, None)
    """
    if layers is not None and (not _is_int(layers) or int(layers) < 1):  # type: ignore[call-overload]
        raise ValueError(f"`randomization_layers` must be None (every layer) or an integer >= 1, got {layers!r}.")
    return None if layers is None else int(layers)  # type: ignore[call-overload]


def check_seed(name: str, seed: object) -> int:
    """A seed option: an integer ``>= 0``.

    Examples:
        >>> check_seed("random_logit_seed", 7)
        7
    """
    if not _is_int(seed) or int(seed) < 0:  # type: ignore[call-overload]
        raise ValueError(f"`{name}` must be an integer >= 0, got {seed!r}.")
    return int(seed)  # type: ignore[call-overload]


def check_baseline(baseline: object) -> str | Tensor:
    """Insertion/deletion baseline: one of `BASELINES` or a tensor (its shape is checked on use).

    Examples:
        >>> check_baseline("blur")
        'blur'
    """
    if isinstance(baseline, Tensor):
        return baseline
    if not isinstance(baseline, str) or baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; use one of {list(BASELINES)} or a tensor.")
    return baseline


def check_sigma(sigma: object) -> float:
    """Blur baseline: the Gaussian's standard deviation, a number ``> 0`` (pixels).

    Examples:
        >>> check_sigma(5)
        5.0
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not float(sigma) > 0:
        raise ValueError(f"`sigma` (the blur baseline's Gaussian, in pixels) must be a number > 0, got {sigma!r}.")
    return float(sigma)


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword options of [`lightning_cam.evaluate_batch`][lightning_cam.evaluate_batch], each checked, merged over
    `DEFAULT_OPTIONS`.

    Raises:
        TypeError: an unknown option name (the valid ones are listed).
        ValueError: an option out of range (see the ``check_*`` of that option).

    Examples:
        >>> check_options({"steps": 10})["steps"], check_options({})["threshold"]
        (10, 0.5)
    """
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for evaluate_batch; valid options are {sorted(DEFAULT_OPTIONS)}.")
    opts = {**DEFAULT_OPTIONS, **options}
    return {
        "steps": check_steps(opts["steps"]),
        "baseline": check_baseline(opts["baseline"]),
        "sigma": check_sigma(opts["sigma"]),
        "batch_size": check_batch_size(opts["batch_size"], allow_none=True),
        "threshold": check_threshold(opts["threshold"]),
        "tolerance": check_tolerance(opts["tolerance"]),
        "top_k": check_top_k(opts["top_k"]),
        "road_percentiles": check_road_percentiles(opts["road_percentiles"]),
        "road_noise": check_road_noise(opts["road_noise"]),
        "randomization": check_randomization(opts["randomization"]),
        "randomization_layers": check_randomization_layers(opts["randomization_layers"]),
        "randomization_seed": check_seed("randomization_seed", opts["randomization_seed"]),
        "random_logit_seed": check_seed("random_logit_seed", opts["random_logit_seed"]),
    }


# ------------------------------------------------------------------------------------------- rendering
def check_on_error(on_error: object) -> str:
    """The fault policy: ``"warn"`` (count, report, continue) or ``"raise"``.

    Examples:
        >>> check_on_error("stop")
        Traceback (most recent call last):
        ...
        ValueError: `on_error` must be 'warn' (count, report, continue) or 'raise', got 'stop'.
    """
    if on_error not in ("warn", "raise"):
        raise ValueError(f"`on_error` must be 'warn' (count, report, continue) or 'raise', got {on_error!r}.")
    return str(on_error)


def check_alpha(alpha: object) -> float:
    """Overlay: the heatmap's weight, a number in ``[0, 1]``.

    Examples:
        >>> check_alpha(0.5)
        0.5
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"`alpha` (the heatmap's weight in the overlay) must be in [0, 1], got {alpha!r}.")
    return float(alpha)


@lru_cache(maxsize=32)
def colormap_table(colormap: str) -> Tensor:
    """A matplotlib colormap name -> its ``(256, 3)`` float32 RGB lookup table (cached, on the CPU); the check
    of the name (an unknown one is a ``ValueError`` listing some valid ones) is the look-up itself.

    Examples:
        >>> colormap_table("gray")[[0, -1]]
        tensor([[0., 0., 0.],
                [1., 1., 1.]])
    """
    try:
        cmap = matplotlib.colormaps[colormap]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(n for n in matplotlib.colormaps if not n.endswith("_r"))[:40])
        raise ValueError(
            f"unknown colormap {colormap!r}; use a matplotlib colormap name such as 'jet', 'turbo', "
            f"'viridis', 'inferno' (see matplotlib.colormaps; some of them: {valid}, ...)."
        ) from None
    rgba = cmap(np.linspace(0.0, 1.0, _LUT_SIZE))
    return torch.from_numpy(np.ascontiguousarray(rgba[:, :3])).float()
