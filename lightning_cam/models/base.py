"""``ImageClassifier``: the training/validation logic shared by the bundled classifiers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cam.functional.pairs import predicted_positives
from lightning_cam.mixin import CAMMixin
from lightning_cam.targets.task import check_task, predicted_class

__all__ = ["ImageClassifier", "as_list"]


def as_list(values: Sequence[Any] | None) -> list[Any] | None:
    """``None`` or a plain list: hparams recorded by a model and a datamodule must compare equal
    (Lightning refuses to merge ``mean=(0.5,)`` with ``mean=[0.5]``), and YAML gives lists.

    Examples:
        >>> as_list((0.5, 0.25)), as_list(None)
        ([0.5, 0.25], None)
    """
    return None if values is None else list(values)


class ImageClassifier(CAMMixin, pl.LightningModule):
    """Classifier base for the three output kinds: subclasses build the network (with `num_outputs`
    logits) and implement ``forward``.

    The loss follows ``task`` ([`lightning_cam.targets.task`][lightning_cam.targets.task]): cross-entropy for
    ``multiclass`` (per pixel for ``segmentation``, whose accuracy is the pixel accuracy),
    binary cross-entropy with logits for ``multilabel`` (a sigmoid per class, multi-hot labels) and
    ``binary`` (one logit, 0/1 labels). Accuracy is the share of correct predictions: the argmax, the
    ``z > 0`` decision, or for ``multilabel`` every label's decision (sigmoid > 0.5) against the truth.

    Batches are unpacked with [`cam_inputs`][lightning_cam.mixin.CAMMixin.cam_inputs], so both dict batches
    (``{"image", "label", ...}``) and ``(images, labels)`` tuples work. Logs ``train_loss`` per step,
    and per epoch ``train_acc``, ``val_loss``, ``val_acc``, ``test_loss``, ``test_acc`` (synced across
    DDP ranks). Optimiser: Adam with ``lr`` and ``weight_decay``, optionally with a per-step cosine
    learning-rate decay (``cosine``).

    Args:
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        cosine: decay the learning rate to 0 along a cosine over the run (needs a Trainer).
        class_names: optional names shown in CAM grid captions (``cam_class_names``).
        mean: per-channel normalisation mean of the inputs, used by ``cam_denormalize`` to show the images;
            ``None`` means the inputs are shown as they are (clamped to ``[0, 1]``).
        std: per-channel normalisation standard deviation, likewise.
        task: the output kind, ``"multiclass"``, ``"multilabel"`` or ``"binary"``; also the module's
            ``cam_task``, which the CAM callback follows.

    Examples:
        >>> from torch import nn
        >>> class Tiny(ImageClassifier):
        ...     def __init__(self) -> None:
        ...         super().__init__(lr=0.01)
        ...         self.conv = nn.Conv2d(3, 4, 3)
        ...         self.fc = nn.Linear(4, 2)
        ...     def forward(self, x):
        ...         return self.fc(self.conv(x).mean((2, 3)))
        >>> model = Tiny()
        >>> loss = model.training_step({"image": torch.zeros(2, 3, 8, 8), "label": torch.tensor([0, 1])}, 0)
        >>> loss.shape, model.cam_layer()  # None: chosen by the rule at the first CAM batch
        (torch.Size([]), None)
    """

    def __init__(
        self,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        cosine: bool = False,
        class_names: Sequence[str] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        task: str = "multiclass",
    ) -> None:
        super().__init__()
        self.cam_task = check_task(task)
        if (mean is None) != (std is None):
            raise ValueError("pass both `mean` and `std` (the input normalisation) or neither")
        self.lr = lr
        self.weight_decay = weight_decay
        self.cosine = cosine
        self.cam_class_names = list(class_names) if class_names is not None else None
        self.cam_mean = tuple(float(m) for m in mean) if mean is not None else None
        self.cam_std = tuple(float(s) for s in std) if std is not None else None

    def _step(self, batch: Any, stage: str) -> Tensor:
        parts = self.cam_inputs(batch)
        if parts.labels is None:
            raise TypeError(f"{stage} batches need labels; got a batch without any ({type(batch).__name__})")
        logits = self(parts.images)
        loss, acc = self._loss_and_accuracy(logits, parts.labels)
        sync = stage != "train"
        bs = parts.labels.shape[0]
        self.log(f"{stage}_loss", loss, prog_bar=stage != "test", sync_dist=sync, batch_size=bs)
        # Accuracy is logged per epoch only, so syncing it costs one reduction per epoch.
        self.log(f"{stage}_acc", acc, prog_bar=stage != "train", sync_dist=True, batch_size=bs,
                 on_step=False, on_epoch=True)
        self.log_more(stage, logits, parts.labels)
        return loss

    def log_more(self, stage: str, logits: Tensor, labels: Tensor) -> None:
        """Further metrics of a ``stage`` (``"train"``, ``"val"``, ``"test"``) batch after the loss and accuracy
        (default: none)."""

    def _loss_and_accuracy(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        task = check_task(self.cam_task)
        if task.kind == "segmentation":  # per pixel: the cross-entropy and the pixel accuracy
            loss = F.cross_entropy(logits, labels.long(), weight=self.class_weights())
            return loss, (logits.argmax(dim=1) == labels).float().mean()
        if task.kind == "multiclass":
            return F.cross_entropy(logits, labels), (predicted_class(logits) == labels).float().mean()
        if task.kind == "binary":
            truth = labels.view(-1).float()
            return (F.binary_cross_entropy_with_logits(logits[:, 0], truth),
                    (predicted_class(logits, task) == labels.view(-1)).float().mean())
        truth = labels.float() if labels.ndim == 2 else F.one_hot(labels, logits.shape[1]).float()
        loss = F.binary_cross_entropy_with_logits(logits, truth)
        return loss, (predicted_positives(logits, task.threshold) == truth.bool()).float().mean()

    def class_weights(self) -> Tensor | None:
        """``(K,)`` per-class weights of a segmenter's cross-entropy (default: none, every class alike)."""
        return None

    def num_outputs(self, num_classes: int) -> int:
        """The logits the network needs: ``num_classes``, or one for ``binary`` (whose two classes are 0 and 1)."""
        if check_task(self.cam_task).kind != "binary":
            return num_classes
        if num_classes != 2:
            raise ValueError(
                f"task='binary' is one logit for two classes (0 and 1): pass num_classes=2, got {num_classes}"
            )
        return 1

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        logits = self(self.cam_inputs(batch).images)
        kind = check_task(self.cam_task).kind
        if kind == "embedding":
            return logits
        return logits.softmax(1) if kind == "multiclass" else logits.sigmoid()

    def configure_optimizers(self) -> Any:
        """Adam(``lr``, ``weight_decay``); with ``cosine=True`` the learning rate follows a per-step
        cosine decay to 0 over the whole run (``trainer.estimated_stepping_batches``)."""
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if not self.cosine:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
