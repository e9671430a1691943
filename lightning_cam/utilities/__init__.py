"""Shared helpers: every input check (:mod:`~lightning_cam.utilities.checks`, one function per rule) and the
model-mode context (:mod:`~lightning_cam.utilities.modes`)."""

from lightning_cam.utilities.checks import (
    BASELINES,
    DEFAULT_OPTIONS,
    check_alpha,
    check_baseline,
    check_batch_size,
    check_boxes,
    check_colormap,
    check_images,
    check_logits,
    check_maps,
    check_masks,
    check_options,
    check_same_shape,
    check_sigma,
    check_steps,
    check_target_range,
    check_targets,
    check_threshold,
    check_tolerance,
)
from lightning_cam.utilities.modes import eval_mode

__all__ = [
    "BASELINES",
    "DEFAULT_OPTIONS",
    "check_alpha",
    "check_baseline",
    "check_batch_size",
    "check_boxes",
    "check_colormap",
    "check_images",
    "check_logits",
    "check_maps",
    "check_masks",
    "check_options",
    "check_same_shape",
    "check_sigma",
    "check_steps",
    "check_target_range",
    "check_targets",
    "check_threshold",
    "check_tolerance",
    "eval_mode",
]
