r"""Spectral relevance analysis (SpRAy; Lapuschkin et al., "Unmasking Clever Hans predictors and assessing what
machines really learn", Nature Communications 2019): the strategies of one class, found by clustering its
explanation maps, and a mask-free measure of how much a group of maps looks at one place.

Pipeline (as in the paper and its CoRelAy implementation, in torch, deterministic):

1. each map is downscaled (done by the caller) and flattened to a vector $x_i$, scaled to unit norm
   (the *shape* of the attention, not its strength);
2. affinity $A$: the symmetric ``k``-nearest-neighbour graph of the Euclidean distances
   ($A_{ij} = 1$ when ``j`` is among the ``k`` nearest of ``i`` or ``i`` among those of ``j``);
3. the symmetric normalised Laplacian $L = I - D^{-1/2} A D^{-1/2}$ and its smallest eigenvalues
   $\lambda_0 \le \lambda_1 \le \dots$;
4. the number of clusters $c = \arg\max_{1 \le i \le c_{max}} (\lambda_i - \lambda_{i-1})$ (the eigengap);
5. k-means with $c$ centres on the rows of the first $c$ eigenvectors, each row scaled to unit norm
   (Ng, Jordan and Weiss, 2001), started from the farthest-point sequence (no random draw).

[`focus`][lightning_cam.functional.spray.focus] measures, for a group of maps seen as distributions $p_i$ over the
pixels, how much they
look at the same place: $\lVert \bar p \rVert_2^2 / \overline{\lVert p_i \rVert_2^2}$ with
$\bar p$ their mean. It is 1 when every map is the same and falls towards $1/n$ as ``n`` maps of
the same sharpness spread over different places: a strategy that looks at a fixed place in every image (a
watermark, a tag in a corner) has a focus near 1, one that follows the object where it is has a lower one.

Examples:
    >>> maps = torch.zeros(12, 4, 4)
    >>> maps[:6, 0, 0] = 1.0                      # six maps on the top-left pixel
    >>> maps[6:, 3, 3] = 1.0                      # six on the bottom-right one
    >>> maps += 0.01 * torch.arange(12.0).view(12, 1, 1) / 12
    >>> labels, count, _ = spectral_clusters(maps, neighbors=3)
    >>> count, labels.tolist()
    (2, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    >>> round(float(focus(maps[:6])), 3), round(float(focus(maps)), 3)
    (1.0, 0.504)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["focus", "kmeans", "knn_affinity", "sameness", "spectral_clusters", "symmetric_laplacian"]


def knn_affinity(x: Tensor, neighbors: int) -> Tensor:
    """``(n, n)`` float 0/1: the symmetric ``neighbors``-nearest-neighbour graph of the rows of ``x`` ``(n, d)``
    (Euclidean; a row is not its own neighbour; ties broken by row order).

    Examples:
        >>> knn_affinity(torch.tensor([[0.0], [1.0], [5.0]]), 1).int().tolist()
        [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    """
    n = x.shape[0]
    k = max(1, min(int(neighbors), n - 1))
    d = torch.cdist(x.double(), x.double())
    d.fill_diagonal_(float("inf"))
    idx = d.topk(k, dim=1, largest=False, sorted=True).indices
    a = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    a.scatter_(1, idx, 1.0)
    return torch.maximum(a, a.T)


def symmetric_laplacian(a: Tensor) -> Tensor:
    """$I - D^{-1/2} A D^{-1/2}$ of an ``(n, n)`` affinity (an isolated row keeps a 1 on the diagonal)."""
    deg = a.sum(dim=1)
    inv = torch.where(deg > 0, deg.clamp(min=1e-12).rsqrt(), torch.zeros_like(deg))
    return torch.eye(a.shape[0], dtype=a.dtype, device=a.device) - inv[:, None] * a * inv[None, :]


def kmeans(x: Tensor, c: int, iters: int = 50) -> Tensor:
    """``(n,)`` long cluster of each row of ``x`` ``(n, d)``, Lloyd's algorithm from the farthest-point sequence
    (the first row, then each time the row farthest from the centres so far): deterministic, no RNG.

    Examples:
        >>> kmeans(torch.tensor([[0.0], [0.1], [5.0], [5.2]]), 2).tolist()
        [0, 0, 1, 1]
    """
    n = x.shape[0]
    c = max(1, min(int(c), n))
    x = x.double()
    picks = [0]
    dist = ((x - x[0]) ** 2).sum(dim=1)
    for _ in range(1, c):
        nxt = int(dist.argmax())
        picks.append(nxt)
        dist = torch.minimum(dist, ((x - x[nxt]) ** 2).sum(dim=1))
    centres = x[picks].clone()
    labels = torch.cdist(x, centres).argmin(dim=1)
    for _ in range(iters):
        for j in range(c):
            members = labels == j
            if bool(members.any()):
                centres[j] = x[members].mean(dim=0)
        new = torch.cdist(x, centres).argmin(dim=1)
        if torch.equal(new, labels):
            break
        labels = new
    # number the clusters by their first member, so the result does not depend on the centres' order
    first = torch.full((c,), n, dtype=torch.long, device=x.device).scatter_reduce(
        0, labels, torch.arange(n, device=x.device), reduce="amin")
    rank = torch.empty_like(first)
    rank[first.argsort()] = torch.arange(c, device=x.device)
    return rank[labels]


def spectral_clusters(maps: Tensor, neighbors: int = 10, max_clusters: int = 6) -> tuple[Tensor, int, Tensor]:
    """SpRAy on the maps of one class (the module's pipeline).

    Args:
        maps: ``(n, h, w)`` non-negative maps (downscaled), ``n >= 2``.
        neighbors: ``k`` of the nearest-neighbour affinity.
        max_clusters: the largest number of clusters the eigengap may choose.

    Returns:
        ``(labels (n,) long, number of clusters, the smallest eigenvalues (max_clusters + 1,) float64)``.
    """
    n = maps.shape[0]
    if n < 2:
        return torch.zeros(n, dtype=torch.long, device=maps.device), 1, torch.zeros(1, dtype=torch.float64)
    x = maps.flatten(1).double()
    x = x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
    lap = symmetric_laplacian(knn_affinity(x, neighbors))
    vals, vecs = torch.linalg.eigh(lap)
    top = max(1, min(int(max_clusters), n - 1))
    gaps = vals[1 : top + 1] - vals[:top]
    count = int(gaps.argmax()) + 1
    emb = vecs[:, :count]
    emb = emb / emb.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return kmeans(emb, count), count, vals[: top + 1]


def focus(maps: Tensor) -> Tensor:
    r"""How much a group of ``(n, h, w)`` maps looks at the same place: $\lVert \bar p \rVert^2 /
    \overline{\lVert p_i \rVert^2}$ for the maps as distributions (see the module docstring), in ``(0, 1]``.

    Examples:
        >>> focus(torch.eye(4).view(4, 2, 2)).item()  # four maps, four different pixels
        0.25
    """
    p = maps.flatten(1).double().clamp(min=0)
    p = p / p.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return (p.mean(dim=0).square().sum() / p.square().sum(dim=1).mean().clamp(min=1e-24)).clamp(max=1.0)


def sameness(members: Tensor, reference: Tensor, weight: Tensor, peak: float = 0.9) -> Tensor:
    r"""How much the pixels a group of maps looks at are the same in every member image: one minus the spread of
    the members' pixels at the peak of ``weight`` over the spread of the ``reference`` images' pixels there.

    $$
    S = 1 - \frac{\operatorname{mean}_{i \in C} \lVert v_i - \bar v_C \rVert^2}
    {\operatorname{mean}_{j \in R} \lVert v_j - \bar v_R \rVert^2},
    \qquad v_i = x_i|_P,\quad P = \{\text{pixels where } w \ge \text{peak} \cdot \max w\}
    $$

    with $w$ the group's mean map. A fixed artefact (a watermark, a tag, a marker of one colour) is the
    same pixels in every member: $S$ near 1; an object, whose colour, size and place vary from image to
    image, spreads like the reference: $S$ near 0. Only the peak counts: a low-resolution map spreads
    around what it looks at, over pixels that vary in every image whatever the strategy. Clamped to ``[0, 1]``.

    Args:
        members: ``(n, C, H, W)`` the group's images (any range, e.g. thumbnails in ``[0, 1]``).
        reference: ``(m, C, H, W)`` the images to compare with (e.g. every scored image of every class).
        weight: ``(h, w)`` non-negative map, resized to ``(H, W)``.
        peak: the share of the map's maximum that makes a pixel part of the peak.

    Examples:
        >>> ref = torch.rand(50, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> tagged = ref[:10].clone(); tagged[:, :, :2, :2] = 1.0   # the same patch in every member
        >>> w = torch.zeros(8, 8); w[:2, :2] = 1.0
        >>> round(float(sameness(tagged, ref, w)), 2), round(float(sameness(ref[:10], ref, w)), 1)  # a random ten
        (1.0, 0.1)
    """
    size = tuple(members.shape[-2:])
    w = torch.nn.functional.interpolate(weight.double()[None, None], size=size, mode="bilinear",
                                        align_corners=False)[0, 0]
    region = (w >= float(peak) * w.max()) & (w > 0)
    if not bool(region.any()):
        return torch.zeros((), dtype=torch.float64)

    def spread(x: Tensor) -> Tensor:  # unbiased: a small group's spread is not smaller by its size alone
        v = x.double()[..., region].flatten(1)
        return (v - v.mean(dim=0)).square().sum(dim=1).sum() / max(v.shape[0] - 1, 1)

    ref = spread(reference)
    if not ref > 0:
        return torch.zeros((), dtype=torch.float64)
    return (1.0 - spread(members) / ref).clamp(0.0, 1.0)
