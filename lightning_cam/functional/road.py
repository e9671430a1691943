r"""ROAD (Rong et al., ICML 2022): remove the most (or least) relevant pixels and fill them in from their neighbours.

Removing pixels by setting them to a constant leaks the removed shape to the model (the class can be read from the
mask's outline); ROAD fills the removed pixels by *noisy linear imputation* instead: every removed pixel is the
weighted mean of its 8 neighbours (weight $1/6$ on the sides, $1/12$ on the diagonals, only neighbours inside the
image), a sparse linear system per image and channel, plus a little Gaussian noise. pytorch-grad-cam solves it per
image with SciPy's ``spsolve``; here all the images and channels of a batch are solved at once, on their device, by
conjugate gradients on the 3x3 stencil (the system is symmetric positive definite wherever some pixel is kept).

Shapes: ``images`` ``(B, C, H, W)`` in the model's input space, ``maps`` ``(B, H, W)`` in ``[0, 1]``, a ``keep`` mask
``(B, H, W)`` bool (``False``: removed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ROAD_PERCENTILES", "noisy_linear_imputation", "road_keep", "road_scores"]

#: the percentiles ARCC's ROAD averages over (pytorch-grad-cam's ``ARCC``; its ``ROADCombined`` default is 10..90)
ROAD_PERCENTILES: tuple[int, ...] = (20, 40, 60, 80)

#: the imputation's neighbour weights: 1/6 on the four sides, 1/12 on the diagonals (the paper's and the peers')
_SIDE, _CORNER = 1 / 6, 1 / 12


def road_keep(maps: Tensor, percentile: float, most_relevant: bool = True) -> Tensor:
    r"""The pixels ROAD keeps at ``percentile`` -> ``(B, H, W)`` bool: the $k = \lceil (N - 1)\,p / 100 \rceil$ pixels
    ranked lowest by the map (most relevant first: the rest, the most relevant, are removed) or by $1 - $ map (least
    relevant first), $N = HW$.

    For distinct values this is exactly pytorch-grad-cam's rule, ``map < q_p(map)`` with $q_p$ NumPy's linearly
    interpolated percentile (``RemoveMostRelevantFirst``/``RemoveLeastRelevantFirst``). Where values tie across the
    percentile, that rule removes every tied pixel: a ReLU'd map that is 0 on more than ``p`` % of the image keeps
    nothing (pytorch-grad-cam's solve is then singular). Here the ties are ranked in raster order, so ``k`` pixels are
    kept whatever the ties.

    Examples:
        >>> m = torch.tensor([[[0.0, 0.2], [0.6, 1.0]]])
        >>> road_keep(m, 50).int().tolist(), road_keep(m, 50, most_relevant=False).int().tolist()
        ([[[1, 1], [0, 0]]], [[[0, 0], [1, 1]]])
        >>> road_keep(torch.zeros(1, 2, 2), 50).int().tolist()  # all tied: still half kept
        [[[1, 1], [0, 0]]]
    """
    if not 0 <= float(percentile) <= 100:
        raise ValueError(f"ROAD percentile must lie in [0, 100], got {percentile}.")
    ranked = (maps if most_relevant else 1 - maps).flatten(1).double()
    n = ranked.shape[1]
    k = math.ceil(round((n - 1) * float(percentile) / 100, 9))
    order = torch.sort(ranked, dim=1, stable=True).indices
    keep = torch.zeros_like(ranked, dtype=torch.bool)
    keep.scatter_(1, order[:, :k], True)
    return keep.view(maps.shape)


def _stencil(x: Tensor) -> Tensor:
    """The neighbours' weighted sum of every pixel of ``x`` ``(N, 1, H, W)`` (zero outside the image), by shifted
    slices (several times faster than a one-channel ``conv2d`` on a CPU, as fast on a GPU)."""
    p = F.pad(x, (1, 1, 1, 1))
    sides = p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]
    corners = p[..., :-2, :-2] + p[..., :-2, 2:] + p[..., 2:, :-2] + p[..., 2:, 2:]
    return sides * _SIDE + corners * _CORNER


def _impute(x: Tensor, kept: Tensor, tol: float, max_iter: int | None) -> Tensor:
    """The removed pixels' values (``(N, 1, H, W)``, 0 on the kept ones) of the imputation system on ``x``, by
    Jacobi-preconditioned conjugate gradients from 0 (a start from the same problem solved at half resolution,
    tried, saved no time here)."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    removed = 1 - kept
    u = torch.zeros_like(x)
    diag = _stencil(torch.ones_like(x)) * removed + kept  # s_i on the unknowns, 1 elsewhere (unused)

    def operator(v: Tensor) -> Tensor:  # the system's matrix, for a ``v`` that is 0 on the kept pixels (as p is)
        return (diag * v - _stencil(v)) * removed

    rhs = _stencil(x * kept) * removed
    r = rhs.clone()
    z = r / diag
    p = z.clone()
    rz = (r * z).flatten(1).sum(1)
    tiny = torch.finfo(x.dtype).tiny
    scale = rhs.flatten(1).norm(dim=1).clamp_min(tiny)
    for step in range(max_iter if max_iter is not None else 4 * (h + w) + 200):
        if step % 8 == 0 and bool(((r.flatten(1).norm(dim=1) / scale) <= tol).all()):  # a host read every 8 steps
            break
        q = operator(p)
        alpha = rz / (p * q).flatten(1).sum(1).clamp_min(tiny)
        u = u + alpha.view(-1, 1, 1, 1) * p
        r = r - alpha.view(-1, 1, 1, 1) * q
        z = r / diag
        rz_new = (r * z).flatten(1).sum(1)
        p = z + (rz_new / rz.clamp_min(tiny)).view(-1, 1, 1, 1) * p
        rz = rz_new
    return u


def noisy_linear_imputation(images: Tensor, keep: Tensor, noise: float = 0.01, generator: torch.Generator | None = None,
                            tol: float = 1e-6, max_iter: int | None = None) -> Tensor:
    r"""Fill each image's removed pixels (``~keep``) by noisy linear imputation -> ``(B, C, H, W)``.

    For a removed pixel $i$ with in-image neighbours $N(i)$, $s_i u_i - \sum_{j \in N(i)\ \mathrm{removed}} w_{ij}
    u_j = \sum_{j \in N(i)\ \mathrm{kept}} w_{ij} x_j$, $s_i = \sum_{j \in N(i)} w_{ij}$: each removed pixel is the
    weighted mean of its neighbours. Solved by Jacobi-preconditioned conjugate gradients (float32, every image and
    channel at once, the residual read every 8 steps) to a relative residual of ``tol`` (within about 1e-5 of
    SciPy's direct solve at the default); then $\mathcal N(0, \texttt{noise}^2)$ is added to the
    filled pixels, one ``(C, H, W)`` pattern for every image (so an image's result does not depend on its batch;
    pytorch-grad-cam draws per image from the global RNG), from ``generator`` (the global RNG is never touched;
    ``None``: a generator seeded with 0).
    An image that keeps no pixel has nothing to fill from: it comes back NaN (a counted, skipped sample).

    Examples:
        >>> x = torch.tensor([[[[1.0, 5.0, 3.0]]]])
        >>> noisy_linear_imputation(x, torch.tensor([[[True, False, True]]]), noise=0.0)
        tensor([[[[1., 2., 3.]]]])
    """
    b, c, h, w = images.shape
    work = torch.float32  # float64 is no more accurate at this tolerance (tested) and slow on most GPUs
    x = images.to(work).reshape(b * c, 1, h, w)
    kept = keep.to(images.device)[:, None].expand(b, c, h, w).reshape(b * c, 1, h, w).to(work)
    u = _impute(x, kept, tol, max_iter)
    if noise > 0:  # one (C, H, W) pattern for every image: a sample's result does not depend on its batch
        gen = generator if generator is not None else torch.Generator(device="cpu").manual_seed(0)
        pattern = torch.randn((1, c, h, w), generator=gen, dtype=work).to(u.device)
        u = u + noise * pattern.expand(b, c, h, w).reshape(b * c, 1, h, w)
    filled = (x * kept + u * (1 - kept)).reshape(b, c, h, w)
    empty = ~keep.flatten(1).any(dim=1)
    filled = torch.where(empty.view(-1, 1, 1, 1).to(filled.device), torch.full_like(filled, float("nan")), filled)
    return filled.to(images.dtype)


def road_scores(forward: Callable[[Tensor], Tensor], images: Tensor, maps: Tensor, probs: Tensor,
                percentiles: Sequence[float] = ROAD_PERCENTILES, noise: float = 0.01, seed: int = 0, *,
                probability: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
    r"""ROAD's two curves, averaged over ``percentiles``: the change of the target's probability when the most (or
    least) relevant pixels are removed and imputed -> ``{"road_morf", "road_lerf"}`` ``(B,)`` float32.

    $$
    \mathrm{MoRF} = \frac{1}{|P|}\sum_{p \in P} \big(Y_c(\tilde x^{\mathrm{MoRF}}_p) - Y_c(x)\big),\qquad
    \mathrm{LeRF} \text{ likewise}
    $$

    with $\tilde x_p$ the image whose pixels outside `road_keep` are filled by `noisy_linear_imputation`.
    ``forward(x) -> logits`` runs the model on one imputed batch (``B`` images: one forward per percentile and order,
    the floor); ``probability(logits) -> (B,)`` reads the targets' probability (the kind's rule). As
    pytorch-grad-cam's ``ROADMostRelevantFirstAverage`` / ``ROADLeastRelevantFirstAverage`` with a probability
    target (``ClassifierOutputSoftmaxTarget``); its noise is drawn per image from the global RNG, here one pattern
    from a generator seeded with ``seed``, the same at every call.

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> x, maps, t = torch.randn(2, 3, 2, 2), torch.rand(2, 2, 2), torch.tensor([0, 1])
        >>> prob = lambda logits: logits.softmax(1).gather(1, t.view(-1, 1))[:, 0]
        >>> with torch.no_grad():
        ...     out = road_scores(net, x, maps, prob(net(x)), probability=prob)
        >>> sorted(out), out["road_morf"].shape
        (['road_lerf', 'road_morf'], torch.Size([2]))
    """
    if not percentiles:
        raise ValueError("road_scores needs at least one percentile.")
    out: dict[str, Tensor] = {}
    for name, most in (("road_morf", True), ("road_lerf", False)):
        total = torch.zeros_like(probs, dtype=torch.float32)
        for p in percentiles:
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            filled = noisy_linear_imputation(images, road_keep(maps, p, most), noise=noise, generator=gen)
            total = total + (probability(forward(filled)).float() - probs.float())
        out[name] = total / len(percentiles)
    return out
