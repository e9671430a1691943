r"""``embedding``: an embedding model (metric learning, retrieval, a self-supervised backbone), ``(B, D)`` output.

A pair is (image, concept $c$): row $c$ of the kind's *bank* of concept vectors ``(K, D)``, set with
`EmbeddingTarget.set_bank` (reference vectors of your own, or class centroids,
`lightning_cam.functional.embedding.class_centroids`; under `CAMCallback` the bank is the class centroids of
the previous CAM run's scored samples, kept by the callback). Its score is the cosine similarity of the image's
embedding to the concept (pytorch-grad-cam's ``SimilarityToConceptTarget``), its probability that similarity where
it is positive (`lightning_cam.functional.embedding`), read again on every changed image against the same concept.

| targets | the concept |
|---|---|
| ``None`` | the bank's row most similar to the image's embedding (a nearest-centroid prediction) |
| ``(B,)`` indices, an int | those rows of the bank (the labels, for a bank of class centroids) |

A pair whose image has no positive similarity to its concept (or whose concept is empty: a class without a
centroid) is left out of the metrics, a counted fault.

Examples:
    >>> from lightning_cam.targets.task import Task
    >>> kind = Task("embedding").target
    >>> kind.set_bank(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    >>> e = torch.tensor([[3.0, 4.0], [4.0, -3.0]])
    >>> kind.predicted(e).tolist(), kind.score(e, torch.tensor([1, 1])), kind.probability(e, torch.tensor([1, 1]))
    ([1, 0], tensor([ 0.8000, -0.6000]), tensor([0.8000, 0.0000]))
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cam.functional.embedding import EPS, concept_similarity, nearest_concept, similarity_probability
from lightning_cam.targets.base import TargetKind, register_target
from lightning_cam.targets.task import Task

__all__ = ["EmbeddingTarget"]

_NO_BANK = ("task='embedding' explains an image's embedding against concept vectors, and none are set: give them "
            "with `task.target.set_bank(concepts)` ((K, D), one row per concept: your reference vectors, or "
            "`lightning_cam.functional.embedding.class_centroids(embeddings, labels, K)`) and pass (B,) row indices "
            "as targets. Under CAMCallback the bank is kept for you (the class centroids of the scored samples).")


@register_target
class EmbeddingTarget(TargetKind):
    """Cosine similarity of an embedding to a concept of the bank (see the module docstring)."""

    name = "embedding"
    has_reference = True

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self._bank: Tensor | None = None

    @property
    def bank(self) -> Tensor | None:
        """``(K, D)`` float32 unit concept vectors (a zero row: no concept), or ``None`` before `set_bank`."""
        return self._bank

    def set_bank(self, concepts: Tensor | None) -> None:
        """The concepts pairs name from now on: ``(K, D)`` vectors (normalised here; ``None`` clears the bank).

        Examples:
            >>> from lightning_cam.targets.task import Task
            >>> kind = Task("embedding").target
            >>> kind.set_bank(torch.tensor([[0.0, 5.0]]))
            >>> kind.bank.tolist()
            [[0.0, 1.0]]
        """
        if concepts is None:
            self._bank = None
            return
        if not isinstance(concepts, Tensor) or concepts.ndim != 2 or not concepts.is_floating_point():
            raise ValueError(f"the concept bank must be a (K, D) float tensor (one concept per row), got "
                             f"{getattr(concepts, 'shape', type(concepts).__name__)}.")
        if not bool(torch.isfinite(concepts).all()):
            raise ValueError("the concept bank has non-finite values; give finite (K, D) vectors.")
        self._bank = F.normalize(concepts.detach().float(), dim=1, eps=EPS)

    def _concepts(self, targets: Tensor, like: Tensor) -> Tensor:
        """``(B, D)`` the bank's rows ``targets``, on ``like``'s device and in its dtype; a row past the bank's end
        (a class no sample of the bank had) is a zero vector, a pair without a concept (`defined`: none)."""
        if self._bank is None:
            raise ValueError(_NO_BANK)
        if self._bank.shape[1] != like.shape[-1]:
            raise ValueError(f"the concept bank has {self._bank.shape[1]}-dimensional concepts but the model returns "
                             f"{like.shape[-1]}-dimensional embeddings; set a bank of the model's embedding size.")
        bank = self._bank.to(like.device, like.dtype)
        rows = targets.to(like.device).long()
        known = rows < bank.shape[0]  # no host sync: the rows past the end are masked, not checked
        return bank[rows.clamp(max=bank.shape[0] - 1)] * known.unsqueeze(1).to(bank.dtype)

    def check_output(self, logits: Tensor) -> Tensor:
        if logits.ndim != 2 or int(logits.shape[1]) < 2:
            raise ValueError(
                f"task='embedding' explains (B, D) embeddings (D >= 2), got {tuple(logits.shape)}. For another "
                "output layout set `output=` (on CAMMixin: `cam_output`) to the function that returns the embedding."
            )
        return logits

    #: the largest row index a pair may name (any class label: a row past the bank's end has no concept)
    MAX_CONCEPTS: ClassVar[int] = 2**31 - 1

    def num_classes(self, logits: Tensor) -> int:
        """Any non-negative row: a class the bank has no centroid for yet is a pair without a concept, left out
        and counted (`defined`), not an error that would lose the batch."""
        if self._bank is None:
            raise ValueError(_NO_BANK)
        return self.MAX_CONCEPTS

    def predicted(self, logits: Tensor) -> Tensor:
        """The most similar concept of the bank (for class centroids: the nearest-centroid class)."""
        if self._bank is None:
            raise ValueError(_NO_BANK)
        return nearest_concept(logits, self._bank)

    def reference(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Each pair's concept vector, fixed when the pair is made (a later `set_bank` does not change it)."""
        return self._concepts(targets, logits.detach())

    undefined = ("the image's embedding has no positive cosine similarity to the pair's concept (or the concept is "
                 "empty: a class without a centroid yet), so there is no similarity for a changed image to lose")

    def defined(self, logits: Tensor, targets: Tensor, reference: Tensor) -> Tensor:
        """A pair has a probability where its original similarity is positive."""
        return self.probability(logits, targets, reference) > 0

    def score(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        concepts = self._concepts(targets, logits) if reference is None else reference
        return concept_similarity(logits, concepts)

    def probability(self, logits: Tensor, targets: Tensor, reference: Tensor | None = None) -> Tensor:
        concepts = self._concepts(targets, logits) if reference is None else reference
        return similarity_probability(logits, concepts)

    def predicted_for(self, logits: Tensor, targets: Tensor) -> Tensor:
        return self.predicted(logits)

    def head_weights(self, fc_weight: Tensor, targets: Tensor) -> Tensor:
        raise ValueError(
            "CAM reads the linear head after global average pooling of a classifier; a cosine similarity to a concept "
            "has no such head. Use a gradient method (gradcam, hirescam, layercam, ...) or eigencam."
        )
