"""``SplitDataModule``: the train/val/test loaders every datamodule of the package shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

__all__ = ["SplitDataModule"]


class SplitDataModule(pl.LightningDataModule):
    """A ``LightningDataModule`` whose ``setup`` fills ``train_set``/``val_set``/``test_set``.

    Subclasses set ``batch_size`` and ``num_workers`` and, if their samples need it, ``collate_fn``. The
    training loader shuffles; validation, test and predict (which reads the test split) keep their order,
    so the callback's probe set is the same images every epoch.
    """

    collate_fn: ClassVar[Callable[[list[Any]], Any] | None] = None
    #: the output kind the labels are for ([`lightning_cam.targets.task`][lightning_cam.targets.task]), linked to the
    #: model by the CLI
    task: str = "multiclass"
    batch_size: int
    num_workers: int
    train_set: Dataset | None = None
    val_set: Dataset | None = None
    test_set: Dataset | None = None

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call `setup()` first (the Trainer does this for you)")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=type(self).collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
