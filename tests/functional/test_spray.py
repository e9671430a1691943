"""SpRAy's pieces against references nobody here wrote: scipy's normalised Laplacian, scikit-learn's k-NN graph
and spectral clustering; focus and sameness by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import laplacian as scipy_laplacian
from sklearn.cluster import SpectralClustering
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import kneighbors_graph

from lightning_cam.functional.spray import (
    focus,
    kmeans,
    knn_affinity,
    sameness,
    spectral_clusters,
    symmetric_laplacian,
)


def _groups(sizes: list[int], size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps of ``len(sizes)`` strategies: each looks at its own blob, with per-map jitter and noise."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size.__float__()), torch.arange(size.__float__()), indexing="ij")
    maps, labels = [], []
    centres = [(1.5, 1.5), (6.0, 6.0), (1.5, 6.0), (6.0, 1.5)]
    for k, n in enumerate(sizes):
        cy, cx = centres[k]
        for _ in range(n):
            jy, jx = (torch.rand(2, generator=g) - 0.5).tolist()
            m = torch.exp(-((ys - cy - jy) ** 2 + (xs - cx - jx) ** 2) / 3.0)
            maps.append(m + 0.05 * torch.rand(size, size, generator=g))
            labels.append(k)
    return torch.stack(maps), torch.tensor(labels)


def test_knn_affinity_is_scikit_learns_symmetric_connectivity_graph() -> None:
    x = torch.rand(30, 5, generator=torch.Generator().manual_seed(1))
    ours = knn_affinity(x, 4).numpy()
    ref = kneighbors_graph(x.numpy(), n_neighbors=4, mode="connectivity").toarray()
    np.testing.assert_array_equal(ours, np.maximum(ref, ref.T))


def test_laplacian_is_scipys_normalised_laplacian() -> None:
    a = knn_affinity(torch.rand(20, 3, generator=torch.Generator().manual_seed(2)), 3)
    np.testing.assert_allclose(symmetric_laplacian(a).numpy(), scipy_laplacian(a.numpy(), normed=True), atol=1e-12)


@pytest.mark.parametrize("sizes", [[12, 12], [10, 14, 9], [8, 8, 8, 8]])
def test_spectral_clusters_find_the_strategies_like_scikit_learn(sizes: list[int]) -> None:
    maps, truth = _groups(sizes)
    labels, count, vals = spectral_clusters(maps, neighbors=5, max_clusters=6)
    assert count == len(sizes)  # the eigengap
    assert adjusted_rand_score(truth.numpy(), labels.numpy()) == 1.0
    x = maps.flatten(1)
    x = x / x.norm(dim=1, keepdim=True)
    ref = SpectralClustering(n_clusters=len(sizes), affinity="precomputed", random_state=0).fit_predict(
        knn_affinity(x, 5).numpy())
    assert adjusted_rand_score(ref, labels.numpy()) == 1.0
    assert vals.shape == (7,) and float(vals[0]) == pytest.approx(0.0, abs=1e-9)


def test_clusters_do_not_depend_on_the_order_of_the_maps() -> None:
    maps, _ = _groups([10, 7, 9], seed=3)
    labels, _, _ = spectral_clusters(maps, neighbors=5)
    perm = torch.randperm(maps.shape[0], generator=torch.Generator().manual_seed(4))
    shuffled, _, _ = spectral_clusters(maps[perm], neighbors=5)
    assert adjusted_rand_score(labels[perm].numpy(), shuffled.numpy()) == 1.0


def test_kmeans_is_deterministic_and_numbers_clusters_by_first_member() -> None:
    x = torch.tensor([[5.0], [0.0], [5.1], [0.1], [9.0]])
    assert kmeans(x, 3).tolist() == [0, 1, 0, 1, 2]
    assert kmeans(x, 1).tolist() == [0] * 5


def test_focus_by_hand() -> None:
    one = torch.zeros(3, 2, 2)
    one[:, 0, 0] = 1.0
    assert float(focus(one)) == pytest.approx(1.0)
    spread = torch.eye(4).view(4, 2, 2)
    assert float(focus(spread)) == pytest.approx(0.25)
    # two maps half on the same pixel: p1 = (.5, .5, 0), p2 = (.5, 0, .5): mean (.5, .25, .25)
    half = torch.tensor([[[0.5, 0.5, 0.0]], [[0.5, 0.0, 0.5]]])
    assert float(focus(half)) == pytest.approx((0.25 + 0.0625 * 2) / 0.5)


def test_sameness_of_a_fixed_patch_and_of_moving_objects() -> None:
    g = torch.Generator().manual_seed(5)
    ref = torch.rand(60, 3, 16, 16, generator=g)
    w = torch.zeros(16, 16)
    w[12:, :4] = 1.0
    tagged = ref[:20].clone()
    tagged[:, :, 12:, :4] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert float(sameness(tagged, ref, w)) == pytest.approx(1.0)
    assert float(sameness(ref[:20], ref, w)) < 0.2  # pixels that vary like any image's
    assert float(sameness(tagged, ref, torch.zeros(16, 16))) == 0.0  # no peak, no claim
