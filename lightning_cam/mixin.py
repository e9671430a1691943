"""``CAMMixin``: what a ``LightningModule`` tells the CAM callback about itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lightning_cam.methods.layers import Reshape, TargetLayer, check_reshape
from lightning_cam.record import CAMBatch
from lightning_cam.render import as_rgb
from lightning_cam.targets.task import Task, check_task
from lightning_cam.utilities.checks import as_multi_hot
from lightning_cam.utilities.outputs import Output, check_output

__all__ = ["CAMMixin", "as_class_indices"]



_IMAGE_KEYS = ("image", "images", "x", "input", "inputs", "img", "pixel_values")
_LABEL_KEYS = ("label", "labels", "y", "target", "targets")
_MASK_KEYS = ("mask", "masks", "segmentation")
_BOX_KEYS = ("box", "boxes", "bbox", "bboxes")


def _first(batch: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in batch:
            return batch[key]
    return None


def as_class_indices(labels: object, task: Task | str = "multiclass") -> Tensor | None:
    """Labels as the output kind explains them ([`lightning_cam.targets.task`][lightning_cam.targets.task]).

    * ``multiclass``: ``(B,)`` class indices. One-hot or soft (mixup/cutmix, label smoothing) ``(B, K)`` rows
      become their argmax (the dominant class). A row with two or more entries above 0.5 is a multi-hot
      label of a multi-label classifier: a ``ValueError`` naming ``cam_task = "multilabel"`` (never an argmax).
    * ``multilabel``: ``(B, K)`` rows become a bool multi-hot matrix (entries above 0.5, or non-zero
      integers); ``(B,)`` class indices stay one label per image.
    * ``binary``: ``(B,)`` 0/1 classes (floats above 0.5 are 1).

    ``(B, 1)`` is flattened and integer-valued floats become long. Anything else (fractional ``(B,)`` floats)
    is returned as it is, and ``None`` for non-tensors. Deciding whether 2-D or float labels are whole numbers
    reads them back to the host (a device sync); ``(B,)`` integer labels are returned without one.

    Examples:
        >>> as_class_indices(torch.tensor([[0.1, 0.7, 0.2], [1.0, 0.0, 0.0]]))
        tensor([1, 0])
        >>> as_class_indices(torch.tensor([[1.0, 0.0, 1.0]]), "multilabel")
        tensor([[ True, False,  True]])
    """
    if not isinstance(labels, Tensor):
        return None
    checked = check_task(task)
    kind = checked.kind
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 2 and labels.shape[1] > 1:
        positive = as_multi_hot(labels)
        if checked.several:
            return positive
        if bool((positive.sum(dim=1) > 1).any()):
            raise ValueError(
                f"the labels are multi-hot ({tuple(labels.shape)}, several positive classes per image), but the output "
                f"kind is {kind!r}: an argmax would silently keep one of them. For a multi-label classifier (a "
                "sigmoid per class) set `cam_task = 'multilabel'` on the module; for a softmax classifier pass one "
                "class index per image."
            )
        return labels.float().argmax(dim=1) if labels.dtype == torch.bool else labels.argmax(dim=1)
    labels = checked.target.labels(labels)  # the kind's own form (binary: floats above 0.5 are 1)
    if labels.ndim == 1 and labels.is_floating_point():
        if bool((labels == labels.round()).all()):
            return labels.long()
    return labels


def _ground_truth_kind(part: object, images: Tensor) -> str | None:
    """``"mask"`` for ``(B, H, W)`` / ``(B, K, H, W)``, ``"box"`` for ``(B, 4)`` / ``(B, N, 5)``, else ``None``
    (e.g. indices)."""
    if not isinstance(part, Tensor) or part.ndim == 0 or part.shape[0] != images.shape[0]:
        return None
    h, w = images.shape[-2:]
    if tuple(part.shape[1:]) == (h, w) or (part.ndim == 4 and tuple(part.shape[2:]) == (h, w)):
        return "mask"
    if part.dtype != torch.bool and (tuple(part.shape[1:]) == (4,) or (part.ndim == 3 and part.shape[2] == 5)):
        return "box"
    return None


class CAMMixin:
    """Mix into a ``LightningModule`` to tell [`CAMCallback`][lightning_cam.CAMCallback] how to explain it.

    No constructor arguments are required; override what differs from the defaults:

    * `cam_target_layer`: dotted module name (or module) whose activation is explained. ``None``
      (default): chosen on the first CAM batch by what the model does
      ([`choose_target_layer`][lightning_cam.methods.choose.choose_target_layer]: the latest module whose output has a
      spatial grid, carries everything that reaches the logits and has a gradient at its positions), logged
      once with its reason on the ``lightning_cam`` logger. A list of several layers is explained layer by layer
      and their maps averaged (for branches that meet only at the head; see `BaseCAM`).
    * `cam_task`: the output kind ([`lightning_cam.targets.task`][lightning_cam.targets.task]): ``"multiclass"``
      (softmax,
      default), ``"multilabel"`` (a sigmoid per class: one map per (image, label) pair) or ``"binary"`` (one
      logit), or a [`Task`][lightning_cam.targets.task.Task] with the multi-label ``threshold`` and
      ``max_labels``; every method, metric and view of the callback follows it.
    * `cam_output`: where the logits are in the model's output (``None``: a tensor, ``.logits`` of a
      HuggingFace ``ModelOutput`` or ``["logits"]``; a key, an index or a callable otherwise; see
      `lightning_cam.utilities.outputs`).
    * `cam_reshape`: the target layer's output layout for every method (``None`` detects it;
      ``"nchw"``, ``"nhwc"``, ``"tokens"``, ``"vit"`` or a callable to ``(B, C, h, w)``), handed to the
      methods through [`cam_method_kwargs`][lightning_cam.mixin.CAMMixin.cam_method_kwargs].
    * [`cam_inputs`][lightning_cam.mixin.CAMMixin.cam_inputs]: unpack a batch into a
      [`CAMBatch`][lightning_cam.mixin.CAMBatch]. Handles ``(x, y)``/``(x, y, mask)``
      tuples and dicts with image/label/mask/box keys; one-hot/soft labels become class indices.
    * [`cam_denormalize`][lightning_cam.mixin.CAMMixin.cam_denormalize]: map a model-space image back to displayable
      ``[0, 1]`` values;
      [`cam_display`][lightning_cam.mixin.CAMMixin.cam_display]: what the images show (three channels of it, any input
      channel count).
    * [`cam_model`][lightning_cam.mixin.CAMMixin.cam_model]: the module whose forward returns the logits (default:
      ``self``).
    * `cam_class_names`: optional class names for grid captions.

    Examples:
        >>> import pytorch_lightning as pl
        >>> class Net(CAMMixin, pl.LightningModule):
        ...     cam_target_layer = "features.3"
        >>> Net().cam_inputs((torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]))).labels
        tensor([0, 1])
    """

    cam_target_layer: TargetLayer = None
    #: layout of the target layer's output for every method (see `lightning_cam.methods.layers`)
    cam_reshape: Reshape = None
    #: where the logits are in the model's output (see `lightning_cam.utilities.outputs`)
    cam_output: Output = None
    #: the output kind (see [`lightning_cam.targets.task`][lightning_cam.targets.task])
    cam_task: Task | str = "multiclass"
    cam_class_names: Sequence[str] | None = None
    #: per-channel mean/std used by [`cam_denormalize`][lightning_cam.mixin.CAMMixin.cam_denormalize]; ``None`` means no
    #: normalisation.
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

    def cam_target_task(self) -> Task:
        """`cam_task` as one [`Task`][lightning_cam.targets.task.Task] object, the same at every call while
        `cam_task` is unchanged: every method, view and caption of the callback reads one target kind, so a state the
        kind keeps (an embedding model's concept bank) is seen by all of them.

        Examples:
            >>> class Embedder(CAMMixin, nn.Module):
            ...     cam_task = "embedding"
            >>> model = Embedder()
            >>> model.cam_target_task() is model.cam_target_task(), model.cam_target_task().kind
            (True, 'embedding')
        """
        spec = self.cam_task
        cached = self.__dict__.get("_cam_target_task")
        if cached is None or cached[0] is not spec:
            cached = (spec, check_task(spec))
            self.__dict__["_cam_target_task"] = cached
        return cached[1]

    def cam_model(self) -> nn.Module:
        """The module whose ``forward(images)`` returns ``(B, num_classes)`` logits."""
        return self  # type: ignore[return-value]

    def cam_layer(self) -> TargetLayer:
        """The target layer: `cam_target_layer`; ``None`` lets each method choose it by the rule of
        `lightning_cam.methods.choose` at its first call (the same layer for all: the choice is cached per
        model)."""
        target = self.cam_target_layer
        if target is None:  # a module registered by nn.Module.__setattr__ (mixin listed after nn.Module)
            target = self.__dict__.get("_modules", {}).get("cam_target_layer")
        return target

    def cam_method_kwargs(self) -> dict[str, Any]:
        """Constructor arguments every CAM method gets from this model: ``{"reshape": cam_reshape}``, and
        ``"output": cam_output`` and ``"task": cam_task`` when they are set.

        The callback merges them under its per-method ``method_kwargs`` (which win).

        Examples:
            >>> class Swin(CAMMixin, torch.nn.Module):
            ...     cam_reshape = "nhwc"
            >>> Swin().cam_method_kwargs()
            {'reshape': 'nhwc'}
        """
        kwargs: dict[str, Any] = {"reshape": check_reshape(self.cam_reshape)}
        if self.cam_output is not None:
            kwargs["output"] = check_output(self.cam_output)
        task = self.cam_target_task()
        if task != Task():
            kwargs["task"] = task
        return kwargs

    def cam_inputs(self, batch: Any) -> CAMBatch:
        """Unpack ``batch`` into images, labels and optional masks/boxes.

        Accepts a [`CAMBatch`][lightning_cam.mixin.CAMBatch], a tensor of images, an ``(images, labels, ...)``
        tuple/list, or a
        mapping with keys such as ``image``/``label``/``mask``/``box``. In a tuple, the third and fourth
        items are taken as ground truth only when their shape says so: a mask is ``(B, H, W)`` or
        ``(B, 1, H, W)`` like the images, a box ``(B, 4)``; anything else (sample indices, file names,
        metadata) is ignored. Labels go through `as_class_indices` under `cam_task` (one-hot and
        soft labels become the argmax class; multi-hot labels stay multi-hot for ``multilabel`` and are an
        error otherwise; under ``segmentation`` the ``(B, H, W)`` label masks are the labels and the ground
        truth). Override for any other layout, and to pass extra model inputs (``CAMBatch(images, labels,
        extra=(meta,))`` for ``forward(images, meta)``).
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
            labels = as_class_indices(_first(batch, _LABEL_KEYS), self.cam_task)
            masks = _first(batch, _MASK_KEYS)
            return CAMBatch(images, labels, self._label_masks(masks, labels), _first(batch, _BOX_KEYS))
        if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
            images = batch[0]
            labels = as_class_indices(batch[1], self.cam_task) if len(batch) > 1 else None
            found: dict[str, Tensor] = {}
            for part in batch[2:4]:
                kind = _ground_truth_kind(part, images)
                if kind is not None and kind not in found:
                    found[kind] = part
            return CAMBatch(images, labels, self._label_masks(found.get("mask"), labels), found.get("box"))
        raise TypeError(
            f"cannot unpack a batch of type {type(batch).__name__} into images and labels; expected "
            f"(images, labels) or a dict with an 'image' key, or override `cam_inputs(batch)` on "
            f"{type(self).__name__}."
        )

    def _label_masks(self, masks: Tensor | None, labels: Tensor | None) -> Tensor | None:
        """The batch's masks, else those its labels are under `cam_task` (a segmenter's label masks)."""
        return masks if masks is not None else check_task(self.cam_task).target.label_masks(labels)

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

    def cam_display(self, images: Tensor) -> Tensor:
        """What the grids and the gallery show of ``(B, C, H, W)`` model inputs:
        [`cam_denormalize`][lightning_cam.mixin.CAMMixin.cam_denormalize], then
        `as_rgb` (any channel count as ``(B, 3, H, W)``: grey for one or two
        channels, the first three of four or more). Override it to show other bands."""
        return as_rgb(self.cam_denormalize(images))
