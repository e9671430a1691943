"""``CAMMixin``: what a ``LightningModule`` tells the CAM callback about itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["CAMBatch", "CAMMixin"]


@dataclass
class CAMBatch:
    """The parts of a batch that CAM work needs.

    Attributes:
        images: ``(B, C, H, W)`` float tensor, in the model's input space (already normalised).
        labels: ``(B,)`` long tensor of true classes, or ``None``.
        masks: ``(B, H, W)`` bool/float ground-truth object masks, or ``None``.
        boxes: ``(B, 4)`` ``(x0, y0, x1, y1)`` pixel boxes, or ``None``.
    """

    images: Tensor
    labels: Tensor | None = None
    masks: Tensor | None = None
    boxes: Tensor | None = None


_IMAGE_KEYS = ("image", "images", "x", "input", "inputs", "img", "pixel_values")
_LABEL_KEYS = ("label", "labels", "y", "target", "targets")
_MASK_KEYS = ("mask", "masks", "segmentation")
_BOX_KEYS = ("box", "boxes", "bbox", "bboxes")


def _first(batch: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in batch:
            return batch[key]
    return None


class CAMMixin:
    """Mix into a ``LightningModule`` to tell :class:`~lightning_cam.CAMCallback` how to explain it.

    No constructor arguments are required; override what differs from the defaults:

    * :attr:`cam_target_layer`: dotted module name (or module) whose activation is explained. ``None``
      (default) picks the last ``nn.Conv2d`` of :meth:`cam_model`.
    * :meth:`cam_inputs`: unpack a batch into a :class:`CAMBatch`. Handles ``(x, y)``/``(x, y, mask)``
      tuples and dicts with image/label/mask/box keys.
    * :meth:`cam_denormalize`: map a model-space image back to displayable ``[0, 1]`` RGB.
    * :meth:`cam_model`: the module whose forward returns the logits (default: ``self``).
    * :attr:`cam_class_names`: optional class names for grid captions.

    Example:
        >>> import pytorch_lightning as pl
        >>> class Net(CAMMixin, pl.LightningModule):
        ...     cam_target_layer = "features.3"
        >>> Net().cam_inputs((torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]))).labels
        tensor([0, 1])
    """

    cam_target_layer: str | nn.Module | None = None
    cam_class_names: Sequence[str] | None = None
    #: per-channel mean/std used by :meth:`cam_denormalize`; ``None`` means no normalisation.
    cam_mean: Sequence[float] | None = None
    cam_std: Sequence[float] | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        # `self.cam_target_layer = self.layer4` on an nn.Module would register the layer a second time
        # as a submodule named "cam_target_layer" (duplicating its parameters in the state dict), and
        # the class attribute `None` would then shadow it. Keep a module given here as a plain reference.
        if name == "cam_target_layer" and isinstance(value, nn.Module):
            modules = self.__dict__.get("_modules")
            if modules is not None:
                modules.pop(name, None)
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    def cam_model(self) -> nn.Module:
        """The module whose ``forward(images)`` returns ``(B, num_classes)`` logits."""
        return self  # type: ignore[return-value]

    def cam_layer(self) -> str | nn.Module:
        """The target layer: :attr:`cam_target_layer`, or the last ``nn.Conv2d`` of :meth:`cam_model`."""
        target = self.cam_target_layer
        if target is None:  # a module registered by nn.Module.__setattr__ (mixin listed after nn.Module)
            target = self.__dict__.get("_modules", {}).get("cam_target_layer")
        if target is not None:
            return target
        model = self.cam_model()
        convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError(
                f"{type(self).__name__} has no nn.Conv2d to explain by default; set "
                "`cam_target_layer` to the dotted name of the layer whose activation to explain."
            )
        return convs[-1]

    def cam_inputs(self, batch: Any) -> CAMBatch:
        """Unpack ``batch`` into images, labels and optional masks/boxes.

        Accepts a :class:`CAMBatch`, a tensor of images, an ``(images, labels[, masks[, boxes]])``
        tuple/list, or a mapping with keys such as ``image``/``label``/``mask``/``box``.
        Override for any other layout.
        """
        if isinstance(batch, CAMBatch):
            return batch
        if isinstance(batch, Tensor):
            return CAMBatch(images=batch)
        if isinstance(batch, Mapping):
            images = _first(batch, _IMAGE_KEYS)
            if images is None:
                raise TypeError(
                    f"cannot find images in a batch dict with keys {sorted(batch)}; expected one of "
                    f"{list(_IMAGE_KEYS)}, or override `cam_inputs(batch)` on {type(self).__name__}."
                )
            return CAMBatch(images, _first(batch, _LABEL_KEYS), _first(batch, _MASK_KEYS), _first(batch, _BOX_KEYS))
        if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
            parts = [p if isinstance(p, Tensor) else None for p in batch[:4]]
            parts += [None] * (4 - len(parts))
            return CAMBatch(*parts)
        raise TypeError(
            f"cannot unpack a batch of type {type(batch).__name__} into images and labels; expected "
            f"(images, labels) or a dict with an 'image' key, or override `cam_inputs(batch)` on "
            f"{type(self).__name__}."
        )

    def cam_denormalize(self, images: Tensor) -> Tensor:
        """Map ``(B, C, H, W)`` model-space images to displayable ``(B, 3, H, W)`` in ``[0, 1]``."""
        x = images.detach().float()
        if self.cam_mean is not None and self.cam_std is not None:
            mean = torch.as_tensor(self.cam_mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            std = torch.as_tensor(self.cam_std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            x = x * std + mean
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x.clamp(0.0, 1.0)
