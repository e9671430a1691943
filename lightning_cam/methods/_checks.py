"""Input validation for the CAM methods: every bad input gets an error naming the fix.

Layer lookup and activation layouts live in :mod:`lightning_cam.methods.layers`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["check_images", "check_logits", "check_target_range", "check_targets"]


def check_images(images: object) -> Tensor:
    """Validate ``images``: a non-empty ``(B, C, H, W)`` floating-point tensor.

    Example:
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
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch (B == 0); pass at least one image.")
    return images


def check_targets(targets: object, batch: int, device: torch.device) -> Tensor | None:
    """Validate ``targets`` before the forward: ``None``, an int, or ``B`` integer class indices -> ``(B,)`` long.

    Example:
        >>> check_targets([1, 2], 2, torch.device("cpu"))
        tensor([1, 2])
    """
    if targets is None:
        return None
    if isinstance(targets, bool):
        raise ValueError("targets must be integer class indices, got a bool.")
    if isinstance(targets, int):
        return torch.full((batch,), targets, dtype=torch.long, device=device)
    if isinstance(targets, (list, tuple)):
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in targets):
            raise ValueError(
                "targets must be integer class indices (a LongTensor of shape (B,)), got a list with non-int entries."
            )
        targets = torch.tensor(list(targets), dtype=torch.long)
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be None, an int or a LongTensor of shape (B,), got {type(targets).__name__}.")
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
    """The model output must be a ``(B, K)`` tensor of class scores."""
    if not isinstance(logits, Tensor):
        raise TypeError(
            f"{type(model).__name__}.forward returned {type(logits).__name__}; CAM methods need a (B, num_classes) "
            "logits tensor. Wrap the model so that forward(images) returns the logits."
        )
    if logits.ndim != 2 or logits.shape[0] != batch:
        raise ValueError(
            f"{type(model).__name__}.forward returned shape {tuple(logits.shape)}; CAM methods need "
            f"(B={batch}, num_classes) logits. Wrap the model so that forward(images) returns them."
        )
    return logits


def check_target_range(targets: Tensor, num_classes: int) -> None:
    """Every target must index one of the ``num_classes`` logits."""
    bad = (targets < 0) | (targets >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"targets out of range for a model with {num_classes} classes: got {targets[bad][:8].tolist()}; "
            f"class indices must be in [0, {num_classes - 1}]."
        )
