"""functional/embedding.py: the cosine score, its probability and the class centroids, against torch's own."""

from __future__ import annotations

import torch

from lightning_cam.functional.embedding import (
    centroid_sums,
    class_centroids,
    concept_similarity,
    nearest_concept,
    similarity_probability,
)


def test_the_score_is_torchs_cosine_similarity_and_differentiable() -> None:
    g = torch.Generator().manual_seed(0)
    e = torch.randn(5, 8, generator=g, requires_grad=True)
    v = torch.randn(5, 8, generator=g)
    score = concept_similarity(e, v)
    torch.testing.assert_close(score, torch.nn.CosineSimilarity(dim=1)(e, v))
    score.sum().backward()
    assert e.grad is not None and bool(e.grad.abs().sum() > 0)
    torch.testing.assert_close(similarity_probability(e.detach(), v), score.detach().clamp(min=0))


def test_centroids_are_the_mean_unit_embedding_of_each_class_and_sum_over_parts() -> None:
    """Summing the parts' sums (as the ranks do) gives the centroids of the whole: the bank is DDP-exact."""
    g = torch.Generator().manual_seed(1)
    e = torch.randn(12, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, -1, 0, 1, 2])
    whole = class_centroids(e, labels, 4)
    parts = [centroid_sums(e[i::2], labels[i::2], 4) for i in range(2)]
    sums, counts = parts[0][0] + parts[1][0], parts[0][1] + parts[1][1]
    torch.testing.assert_close(torch.nn.functional.normalize(sums, dim=1), whole)
    assert counts.tolist() == [4.0, 4.0, 3.0, 0.0]  # the unlabelled sample counts nowhere; class 3 has none
    unit = torch.nn.functional.normalize(e, dim=1)
    torch.testing.assert_close(whole[0], torch.nn.functional.normalize(unit[labels == 0].mean(0), dim=0))
    assert whole[3].abs().sum() == 0  # no sample: a zero row, which no pair may name
    assert nearest_concept(unit[:3], whole[:3]).shape == (3,)
