r"""``CentroidBank``: the class centroids an embedding model is explained against, kept by the callback.

Under ``task="embedding"`` a pair is (image, concept) and the concepts are the rows of the target kind's bank
([`EmbeddingTarget`][lightning_cam.targets.embedding.EmbeddingTarget]). The callback keeps that bank for you: the
class centroids $v_c = \mathrm{normalize}(\sum_{i: y_i = c} e_i / \lVert e_i \rVert)$ of the *scored samples*
of each CAM run (their embeddings are the output of the run's own passes, no extra forward), summed over ranks
(so 2 processes give the bank of 1), and set on the kind at the start of the next run:

* the first CAM run of a stage has no bank yet: it only builds one (one forward per scored sample, no maps,
  no metrics; its progress line says so), and the maps start at the next run;
* ``target="label"`` explains each image against its class's centroid, ``target="pred"`` against the nearest
  one (a nearest-centroid prediction, what the captions show);
* a class without a sample in the last run has no centroid: its pairs are left out, a counted fault;
* the bank is in the callback's checkpoint: a resumed run explains against it from its first run;
* the bank is one run old: ``cam/bank/shift`` logs how far it moved between two runs (the mean over classes of
  $1 - \cos(v_c^{\text{old}}, v_c^{\text{new}})$); near 0 the bank a run explains against is the model's own.

The bank's samples need labels (``cam_inputs(batch).labels``, class indices); without them nothing is explained
and one warning says so. Nothing here draws random numbers; the only collectives are the two reduces at the end of
each run, on every rank.

Examples:
    >>> bank = CentroidBank()
    >>> bank.add(torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]]), torch.tensor([0, 1, 1]))
    >>> shift = bank.end(lambda t, op: t, torch.device("cpu"))
    >>> bank.centroids, shift is None
    (tensor([[1.0000, 0.0000],
            [0.3827, 0.9239]]), True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cam.functional.embedding import EPS, centroid_sums
from lightning_cam.methods import BaseCAM
from lightning_cam.targets.embedding import EmbeddingTarget

__all__ = ["BANK_BUILT", "NO_LABELS", "SHARDED_BANK", "CentroidBank", "Reduce"]

#: ``reduce(tensor, op)`` over ranks, ``op`` ``"sum"`` or ``"max"`` (``trainer.strategy.reduce``)
Reduce = Callable[[Tensor, str], Tensor]

NO_LABELS = ("task='embedding': the scored batches have no labels, and the callback explains an embedding against "
             "the class centroids of labelled samples. Return the labels (class indices) from `cam_inputs(batch)`, "
             "or set your own concepts with `module.cam_target_task().target.set_bank(concepts)`.")

BANK_BUILT = ("task='embedding': the first CAM run built the class centroids the pairs are explained against (from its "
              "scored samples); its grids already use them, and the metrics start at the next CAM run.")

SHARDED_BANK = ("task='embedding' under a strategy that shards the parameters (FSDP2): the class-centroid bank is not "
                "built in lock-step yet, so this run explains nothing. Validate with DDP or one device for the CAM "
                "work of an embedding model.")


class CentroidBank:
    """The class centroids of the scored samples of each CAM run, the bank of the next (see the module
    docstring)."""

    def __init__(self) -> None:
        #: ``(K, D)`` the bank the current run explains against (``None`` before the first run ended)
        self.centroids: Tensor | None = None
        self._units: list[Tensor] = []
        self._labels: list[Tensor] = []
        self.dim: int | None = None

    @staticmethod
    def kinds(cams: Mapping[str, BaseCAM]) -> list[EmbeddingTarget]:
        """The embedding target kinds of ``cams`` (one object when they share the module's task)."""
        kinds = [cam.task.target for cam in cams.values() if isinstance(cam.task.target, EmbeddingTarget)]
        return list({id(k): k for k in kinds}.values())

    def start(self, cams: Mapping[str, BaseCAM]) -> bool:
        """A CAM run starts: the bank on every embedding kind of ``cams`` (on their model's device); whether the run
        explains embeddings."""
        self._units, self._labels = [], []
        kinds = self.kinds(cams)
        if kinds and self.centroids is not None:
            param = next(next(iter(cams.values())).model.parameters(), None)
            if param is not None and param.device != self.centroids.device:  # a bank read from a checkpoint
                self.centroids = self.centroids.to(param.device)
        for kind in kinds:
            kind.set_bank(self.centroids)
        return bool(kinds)

    def state_dict(self) -> dict[str, Tensor | None]:
        """The bank, kept in the callback's checkpoint (a resumed run explains against it from its first run)."""
        return {"centroids": None if self.centroids is None else self.centroids.detach().cpu()}

    def load_state_dict(self, state: Mapping[str, Tensor | None]) -> None:
        self.centroids = state.get("centroids")

    @property
    def building(self) -> bool:
        """The run only builds the bank (there is none yet to explain against)."""
        return self.centroids is None

    def add(self, embeddings: Tensor, labels: Tensor | None) -> None:
        """The embeddings ``(B, D)`` of scored samples and their ``(B,)`` class labels (no host sync)."""
        if labels is None or labels.ndim != 1 or embeddings.ndim != 2:
            return
        self.dim = int(embeddings.shape[1])
        self._units.append(F.normalize(embeddings.detach().float(), dim=1, eps=EPS))
        self._labels.append(labels.detach().to(embeddings.device).long())

    def end(self, reduce: Reduce, device: torch.device) -> float | None:
        """The run ends (every rank, with or without samples): the new bank from every rank's samples; returns
        ``cam/bank/shift`` (``None`` without an old bank or a class in both)."""
        units, labels = self._units, self._labels
        self._units, self._labels = [], []
        with torch.inference_mode(False):
            local = torch.cat(labels).to(device) if labels else torch.empty(0, dtype=torch.long, device=device)
            top = torch.tensor([float(local.max()) if local.numel() else -1.0, float(self.dim or 0)], device=device)
            top = reduce(top, "max")  # the classes and the embedding size every rank agrees on (one host read)
            k, d = int(top[0].item()) + 1, int(top[1].item())
            if k <= 0 or d <= 0:  # no labelled sample on any rank
                return None
            e = torch.cat([u.to(device) for u in units]) if units else torch.zeros(0, d, device=device)
            sums, counts = centroid_sums(e, local, k)
            total = reduce(torch.cat([sums.flatten(), counts]), "sum")
            new = F.normalize(total[: k * d].view(k, d), dim=1, eps=EPS)
            shift = self._shift(new, total[k * d:])
            self.centroids = new
            return shift

    def _shift(self, new: Tensor, counts: Tensor) -> float | None:
        old = self.centroids
        if old is None:
            return None
        k = min(int(old.shape[0]), int(new.shape[0]))
        both = (counts[:k] > 0) & (old[:k].norm(dim=1) > 0)
        if not bool(both.any()):
            return None
        cos = (old[:k].to(new.device) * new[:k]).sum(dim=1)
        return float((1.0 - cos)[both].mean())
