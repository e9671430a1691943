r"""Per-sample similarity of two sets of maps, as Quantus's randomisation checks measure it: Spearman's rank
correlation (model parameter randomisation) and the structural similarity of the raster-ordered maps (random
logit).

Shapes: ``a``, ``b`` ``(B, ...)``, flattened per sample to ``(B, N)`` in raster order; results ``(B,)`` float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SSIM_WINDOW", "average_ranks", "spearman", "ssim_1d"]

#: the window of `ssim_1d` (scikit-image's default, which Quantus keeps)
SSIM_WINDOW = 7


def _flat(name: str, x: Tensor) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"{name} must be (B, ...) per-sample maps, got shape {tuple(x.shape)}")
    return x.detach().flatten(1).double()


def average_ranks(x: Tensor) -> Tensor:
    """Ranks ``1..N`` of each row of ``(B, N)`` values, ties given the mean of their ranks (SciPy's ``rankdata``
    ``"average"``) -> ``(B, N)`` float64. Exact on any device (integer sums in float64).

    Examples:
        >>> average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0]]))
        tensor([[3.5000, 1.0000, 3.5000, 2.0000]], dtype=torch.float64)
    """
    b, n = x.shape
    order = x.argsort(dim=1, stable=True)
    ordered = x.gather(1, order)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = (starts.long().cumsum(dim=1) - 1 + n * torch.arange(b, device=x.device)[:, None]).flatten()
    position = torch.arange(n, device=x.device, dtype=torch.float64).expand(b, n).flatten()
    counts = torch.bincount(group, minlength=b * n).double()
    sums = torch.bincount(group, weights=position, minlength=b * n)
    mean_rank = sums / counts.clamp(min=1) + 1.0
    return torch.empty(b, n, dtype=torch.float64, device=x.device).scatter_(1, order, mean_rank[group].view(b, n))


def spearman(a: Tensor, b: Tensor) -> Tensor:
    r"""Spearman's rank correlation of each pair of maps: the Pearson correlation of their average ranks
    (`average_ranks`), as ``scipy.stats.spearmanr`` computes it; NaN where a map is constant (no order).

    $$ \rho_s = \frac{\operatorname{cov}(R_a, R_b)}{\sigma_{R_a}\,\sigma_{R_b}} $$

    Examples:
        >>> spearman(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[10.0, 20.0, 15.0]]))
        tensor([0.5000])
    """
    ra, rb = average_ranks(_flat("a", a)), average_ranks(_flat("b", b))
    ra, rb = ra - ra.mean(dim=1, keepdim=True), rb - rb.mean(dim=1, keepdim=True)
    den = ra.norm(dim=1) * rb.norm(dim=1)
    rho = (ra * rb).sum(dim=1) / den
    return torch.where(den > 0, rho, torch.full_like(rho, float("nan"))).float()


def ssim_1d(a: Tensor, b: Tensor, window: int = SSIM_WINDOW, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    r"""Structural similarity of each pair of maps read as 1-D signals in raster order, as Quantus's ``ssim`` calls
    scikit-image's ``structural_similarity`` on the flattened maps: means, variances (sample, $\frac{n}{n-1}$) and
    covariance over sliding windows of ``window`` values, $R$ the pair's joint range,

    $$
    \mathrm{SSIM} = \operatorname{mean}_p \frac{(2\mu_a\mu_b + C_1)(2\sigma_{ab} + C_2)}
        {(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)},\quad C_1 = (k_1 R)^2,\ C_2 = (k_2 R)^2
    $$

    over the windows that fit inside the signal (scikit-image crops the border's). NaN for two equal constant
    maps ($R = 0$). A map of fewer than ``window`` values is a ``ValueError``.

    Examples:
        >>> x = torch.rand(2, 64)
        >>> ssim_1d(x, x)
        tensor([1., 1.])
    """
    fa, fb = _flat("a", a), _flat("b", b)
    if fa.shape[1] < window:
        raise ValueError(f"ssim_1d needs maps of at least {window} values (its window), got {fa.shape[1]}.")
    both = torch.cat([fa, fb], dim=1)
    span = (both.amax(dim=1) - both.amin(dim=1))[:, None]
    c1, c2 = (k1 * span) ** 2, (k2 * span) ** 2

    def mean(x: Tensor) -> Tensor:
        return F.avg_pool1d(x[:, None], window, stride=1)[:, 0]

    norm = window / (window - 1)
    ua, ub = mean(fa), mean(fb)
    va, vb = norm * (mean(fa * fa) - ua * ua), norm * (mean(fb * fb) - ub * ub)
    vab = norm * (mean(fa * fb) - ua * ub)
    s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua * ua + ub * ub + c1) * (va + vb + c2))
    return s.mean(dim=1).float()
