r"""An embedding model's concepts, score and probability: pure maths on ``(B, D)`` embeddings.

A pair is (image, concept $c$), a concept being a row $v_c$ of a bank of unit vectors ``(K, D)`` (reference
vectors, or the class centroids of labelled embeddings, `class_centroids`). Its score is the cosine similarity
of the image's embedding $e$ to the concept (pytorch-grad-cam's embeddings tutorial, ``SimilarityToConceptTarget``):

$$
y^c = \cos(e, v_c) = \frac{e \cdot v_c}{\max(\lVert e \rVert, \epsilon)} \qquad\qquad Y_c = \max(0, \cos(e, v_c))
$$

$Y_c$, what the faithfulness metrics read on the original and on every changed image, is the similarity itself
where it is positive: a changed image whose embedding no longer points towards the concept (cosine 0 or below)
keeps nothing of it. A pair whose original image has no positive similarity has no $Y_c$ to drop from: it is
left out of the metrics (the target kind's ``defined``), never scored 0.

Examples:
    >>> bank = class_centroids(torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0, 1]), 2)
    >>> bank.tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    >>> e = torch.tensor([[1.0, 1.0]])
    >>> concept_similarity(e, bank[[0]]), nearest_concept(e, bank).tolist()
    (tensor([0.7071]), [0])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["EPS", "centroid_sums", "class_centroids", "concept_similarity", "nearest_concept", "similarity_probability"]

#: the smallest norm an embedding or concept is divided by (``torch.nn.functional.cosine_similarity``'s own)
EPS = 1e-8


def concept_similarity(embeddings: Tensor, concepts: Tensor) -> Tensor:
    r"""``(B,)`` $\cos(e_b, v_b)$, differentiable, in the embeddings' dtype.

    Args:
        embeddings: ``(B, D)`` the model's output.
        concepts: ``(B, D)`` each pair's concept (need not be unit vectors).

    Examples:
        >>> concept_similarity(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        tensor([1., 0.])
    """
    if embeddings.ndim != 2 or concepts.shape != embeddings.shape:
        raise ValueError(f"expected embeddings (B, D) and one concept (B, D) per pair, got {tuple(embeddings.shape)} "
                         f"and {tuple(concepts.shape)}.")
    return F.cosine_similarity(embeddings, concepts.to(embeddings.device, embeddings.dtype), dim=1, eps=EPS)


def similarity_probability(embeddings: Tensor, concepts: Tensor) -> Tensor:
    r"""``(B,)`` float32 $Y_c = \max(0, \cos(e_b, v_b))$ (see the module docstring).

    Examples:
        >>> similarity_probability(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
        tensor([0.7071, 0.0000])
    """
    return concept_similarity(embeddings.float(), concepts.float()).clamp(min=0.0)


def nearest_concept(embeddings: Tensor, bank: Tensor) -> Tensor:
    """``(B,)`` long: the row of ``bank`` ``(K, D)`` each embedding is most similar to (cosine).

    Examples:
        >>> nearest_concept(torch.tensor([[0.1, 1.0], [5.0, 0.0]]), torch.eye(2)).tolist()
        [1, 0]
    """
    e = F.normalize(embeddings.detach().float(), dim=1, eps=EPS)
    return (e @ F.normalize(bank.to(e.device).float(), dim=1, eps=EPS).T).argmax(dim=1)


def centroid_sums(embeddings: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """``(K, D)`` the sums of the unit embeddings of each class and ``(K,)`` their counts (float32, on the
    embeddings' device): what a bank accumulates over batches and sums over ranks before `class_centroids`.
    Labels outside ``[0, K)`` (unlabelled samples, ``-1``) count nowhere.

    Examples:
        >>> sums, counts = centroid_sums(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([1, -1]), 2)
        >>> sums.tolist(), counts.tolist()
        ([[0.0, 0.0], [1.0, 0.0]], [0.0, 1.0])
    """
    e = F.normalize(embeddings.detach().float(), dim=1, eps=EPS)
    labels = labels.to(e.device).long()
    valid = (labels >= 0) & (labels < num_classes)
    index = labels.clamp(0, max(num_classes - 1, 0))
    sums = torch.zeros(num_classes, e.shape[1], device=e.device).index_add_(0, index, e * valid.unsqueeze(1))
    counts = torch.zeros(num_classes, device=e.device).index_add_(0, index, valid.float())
    return sums, counts


def class_centroids(embeddings: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``(K, D)`` unit vectors: the direction of the mean unit embedding of each class (a class without a sample:
    a row of zeros, which no pair may name).

    Examples:
        >>> class_centroids(torch.tensor([[0.0, 3.0]]), torch.tensor([0]), 2).tolist()
        [[0.0, 1.0], [0.0, 0.0]]
    """
    sums, _ = centroid_sums(embeddings, labels, num_classes)
    return F.normalize(sums, dim=1, eps=EPS)
