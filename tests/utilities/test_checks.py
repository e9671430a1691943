"""utilities/checks.py: each input rule once, and its message names the value received and the fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_cam.utilities.checks import (
    DEFAULT_OPTIONS,
    check_alpha,
    check_baseline,
    check_batch_size,
    check_boxes,
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
    colormap_table,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: check_images([1.0]), TypeError, r"torch.Tensor of shape \(B, C, H, W\), got list"),
        (lambda: check_images(torch.zeros(3, 8, 8)), ValueError, r"4-D .* got shape \(3, 8, 8\).*unsqueeze\(0\)"),
        (lambda: check_images(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)), ValueError, r"torch.uint8.*images.float"),
        (lambda: check_images(torch.zeros(0, 3, 8, 8)), ValueError, "empty batch"),
        (lambda: check_targets(True, 2, CPU), ValueError, "got a bool"),
        (lambda: check_targets([1, 0.5], 2, CPU), ValueError, "non-int entries"),
        (lambda: check_targets("cat", 2, CPU), TypeError, "got str"),
        (lambda: check_targets(torch.zeros(2), 2, CPU), ValueError, r"torch.float32.*targets.long\(\)"),
        (lambda: check_targets(torch.zeros(2, 1, dtype=torch.long), 2, CPU), ValueError, r"\(2, 1\).*view\(-1\)"),
        (lambda: check_targets([0, 1, 2], 2, CPU), ValueError, "3 entries but the batch has 2 images"),
        (lambda: check_logits((torch.zeros(2, 3),), 2, nn.Identity()), TypeError, "Identity.forward returned tuple"),
        (lambda: check_logits(torch.zeros(3, 4), 2, nn.Identity()), ValueError, r"shape \(3, 4\).*B=2"),
        (lambda: check_target_range(torch.tensor([1, 9]), 5), ValueError, r"5 classes: got \[9\].*\[0, 4\]"),
        (lambda: check_maps(torch.zeros(4, 4)), ValueError, r"`maps` must be a \(B, H, W\).*\(4, 4\).*unsqueeze"),
        (lambda: check_same_shape(torch.zeros(2), torch.zeros(3), "p", "q"), ValueError, r"same shape.*\(2,\).*\(3,\)"),
        (lambda: check_masks(torch.zeros(2, 5, 5), (2, 4, 4)), ValueError, r"\(2, 4, 4\).*\(2, 5, 5\).*resize the"),
        (lambda: check_boxes(torch.zeros(2, 5), 2), ValueError, r"\(B, 4\) = \(2, 4\).*\(2, 5\)"),
        (lambda: check_steps(0), ValueError, r"`steps` must be an integer >= 1, got 0"),
        (lambda: check_batch_size(2.0), ValueError, r"`batch_size`.*integer >= 1, got 2.0"),
        (lambda: check_threshold(1.0), ValueError, r"`threshold` must lie in \(0, 1\).*got 1.0"),
        (lambda: check_tolerance(-1), ValueError, r"`tolerance` must be an integer >= 0 \(pixels\), got -1"),
        (lambda: check_baseline("noise"), ValueError, r"unknown baseline 'noise'.*\['zeros', 'blur', 'mean'\]"),
        (lambda: check_sigma(0), ValueError, r"`sigma`.*> 0, got 0"),
        (lambda: check_alpha(1.5), ValueError, r"`alpha`.*\[0, 1\], got 1.5"),
        (lambda: colormap_table("nope"), ValueError, r"unknown colormap 'nope'.*matplotlib.colormaps"),
        (lambda: check_options({"stpes": 3}), TypeError, r"unknown option\(s\) \['stpes'\].*valid options"),
    ],
)
def test_each_rule_names_the_value_and_the_fix(call, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_valid_values_come_back_in_the_form_callers_use() -> None:
    assert check_targets(2, 3, CPU).tolist() == [2, 2, 2]
    assert check_targets(torch.tensor(1), 2, CPU).tolist() == [1, 1]
    assert check_images(torch.zeros(0, 3, 4, 4), allow_empty=True).shape[0] == 0
    assert check_masks(torch.ones(2, 1, 4, 4), (2, 4, 4)).shape == (2, 4, 4)
    assert check_batch_size(None, allow_none=True) is None
    assert check_threshold(0.25) == 0.25 and check_sigma(2) == 2.0 and check_alpha(1) == 1.0
    base = torch.zeros(3, 1, 1)
    assert check_baseline(base) is base
    lut = colormap_table("viridis")
    assert lut.shape == (256, 3) and lut.dtype == torch.float32 and colormap_table("viridis") is lut  # cached


def test_check_options_fills_defaults_and_checks_every_option() -> None:
    assert check_options({}) == DEFAULT_OPTIONS
    assert check_options({"steps": 4, "sigma": 2})["sigma"] == 2.0
    for name, bad in (("steps", True), ("batch_size", 0), ("threshold", 0), ("tolerance", 1.5),
                      ("baseline", "nope"), ("sigma", -1.0)):
        with pytest.raises(ValueError, match=name if name != "baseline" else "unknown baseline"):
            check_options({name: bad})
