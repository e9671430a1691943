r"""Pure tensor maths of the CAM variants pytorch-grad-cam ships beyond the classic ones, batched over samples.

Shapes as in `lightning_cam.functional.cam`: ``activations`` $A$ and ``grads`` $G = \partial y^c/\partial A$ are
``(B, C, h, w)``, channel weights ``(B, C)``, raw maps ``(B, h, w)`` before the ReLU, upsampling and normalisation
of `lightning_cam.functional.postprocess_maps`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lightning_cam.functional.cam import (
    _check_4d,
    _one_cpu_thread,
    eigencam_map,
    first_component_projection,
    orient_like,
)

__all__ = [
    "KERNELS",
    "Kernel",
    "ablation_weights",
    "eigengradcam_map",
    "elementwise_map",
    "fem_weights",
    "finer_comparisons",
    "finer_score",
    "kpca_map",
    "random_weights",
    "segeigencam_map",
    "shapley_gradient",
]

Kernel = Literal["sigmoid", "rbf", "linear", "poly", "cosine"]
#: the kernels of `kpca_map` (scikit-learn's ``KernelPCA`` names and defaults)
KERNELS: tuple[str, ...] = ("sigmoid", "rbf", "linear", "poly", "cosine")


def elementwise_map(activations: Tensor, grads: Tensor) -> Tensor:
    r"""Grad-CAM element-wise (pytorch-grad-cam's ``GradCAMElementWise``): $L = \sum_k \mathrm{ReLU}(G^k \odot A^k)$.

    Examples:
        >>> a = torch.ones(1, 2, 1, 2); g = torch.tensor([[[[1.0, -1.0]], [[2.0, -3.0]]]])
        >>> elementwise_map(a, g)
        tensor([[[3., 0.]]])
    """
    _check_4d("activations", activations)
    _check_4d("grads", grads)
    return torch.relu(grads * activations).sum(dim=1)


def eigengradcam_map(activations: Tensor, grads: Tensor) -> Tensor:
    r"""Eigen-Grad-CAM: `eigencam_map` of the product $G \odot A$ (its first principal component over positions).

    The sign rule is Eigen-CAM's (`orient_like`): the map correlates non-negatively with
    $\frac1C\sum_k G^k \odot A^k$, i.e. with HiRes-CAM's map. pytorch-grad-cam keeps LAPACK's sign.

    Examples:
        >>> a = torch.zeros(1, 2, 2, 2); a[0, :, 0, 0] = 5.0
        >>> (eigengradcam_map(a, torch.ones_like(a)).argmax() == 0).item()
        True
    """
    _check_4d("grads", grads)
    return eigencam_map(grads * activations)


def fem_weights(activations: Tensor, k: float = 2.0) -> Tensor:
    r"""FEM (Fuad et al., IPTA 2020) channel weights: the share of positions above the channel's $k$-sigma threshold.

    $$
    w_k = \frac{1}{hw}\sum_{ij}\big[A^k_{ij} > \mu_k + k\,\sigma_k\big]
    $$

    with $\mu_k$, $\sigma_k$ the mean and the population standard deviation of $A^k$ over positions (as
    pytorch-grad-cam's ``FEM``, ``np.std``). The map is $\sum_k w_k A^k$ (`weighted_sum`).

    Examples:
        >>> a = torch.zeros(1, 1, 1, 10); a[0, 0, 0, 0] = 9.0
        >>> fem_weights(a)
        tensor([[0.1000]])
    """
    _check_4d("activations", activations)
    flat = activations.flatten(2)
    threshold = flat.mean(dim=2, keepdim=True) + k * flat.std(dim=2, correction=0, keepdim=True)
    return (flat > threshold).to(activations.dtype).mean(dim=2)


def _kernel(x: Tensor, kind: str, gamma: float, degree: int, coef0: float) -> Tensor:
    """scikit-learn's pairwise kernels of the rows of ``x`` ``(B, N, C)`` -> ``(B, N, N)``."""
    if kind == "rbf":
        return torch.exp(-gamma * torch.cdist(x, x).square())
    if kind == "cosine":
        unit = x / x.norm(dim=2, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        return unit @ unit.mT
    dot = x @ x.mT
    if kind == "linear":
        return dot
    if kind == "poly":
        return (gamma * dot + coef0).pow(degree)
    return torch.tanh(gamma * dot + coef0)  # sigmoid


def kpca_map(activations: Tensor, kernel: Kernel = "sigmoid", gamma: float | None = None, degree: int = 3,
             coef0: float = 1.0) -> Tensor:
    r"""KPCA-CAM (Karmani et al., 2024): the projection on the first component of a kernel PCA over positions.

    Per sample, the rows $x_i \in \mathbb{R}^C$ of $A^\top$ (one per position) are centred, the kernel matrix
    $K_{ij} = \kappa(x_i, x_j)$ is double-centred ($\tilde K = K - \mathbf 1 K - K \mathbf 1 + \mathbf 1 K \mathbf 1$,
    $\mathbf 1 = \frac1N$), and the map is $\sqrt{\lambda_1}\,v_1$ for the top eigenpair of $\tilde K$: what
    scikit-learn's ``KernelPCA(n_components=1).fit_transform`` returns, as pytorch-grad-cam's ``KPCA_CAM`` uses it,
    with the same kernels and defaults (``gamma=None`` is $1/C$; sigmoid $\tanh(\gamma\,x^\top y + c_0)$, rbf
    $e^{-\gamma\lVert x-y\rVert^2}$, poly $(\gamma\,x^\top y + c_0)^d$, linear, cosine). The sign is Eigen-CAM's
    (`orient_like`: non-negative correlation with the mean activation); scikit-learn makes the largest entry
    positive. Batched ``eigh`` of ``(B, hw, hw)`` matrices in float64 (float32 on MPS): $O((hw)^3)$ per sample.
    Where the top eigenvalue is (nearly) repeated the component is undetermined, here as in scikit-learn: an rbf
    ``gamma`` far too large for the activations' scale makes $K \approx I$; the default $1/C$ does not.

    Examples:
        >>> a = torch.zeros(1, 2, 2, 2); a[0, :, 0, 0] = 5.0
        >>> (kpca_map(a).argmax() == 0).item()
        True
    """
    _check_4d("activations", activations)
    if kernel not in KERNELS:
        raise ValueError(f"kpca_map: unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}.")
    b, c, h, w = activations.shape
    work = torch.float32 if activations.device.type == "mps" else torch.float64
    x = activations.flatten(2).transpose(1, 2).to(work)  # (B, hw, C)
    x = x - x.mean(dim=1, keepdim=True)
    k = _kernel(x, kernel, 1.0 / c if gamma is None else float(gamma), degree, coef0)
    k = k - k.mean(dim=1, keepdim=True) - k.mean(dim=2, keepdim=True) + k.mean(dim=(1, 2), keepdim=True)
    with _one_cpu_thread(activations.device):
        evals, evecs = torch.linalg.eigh(k)  # ascending: the last is the top
    proj = evecs[..., -1] * evals[..., -1:].clamp_min(0).sqrt()
    return orient_like(proj, activations.mean(dim=1).flatten(1).to(work)).to(activations.dtype).view(b, h, w)


def random_weights(batch: int, channels: int, seed: int, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Random-CAM's channel weights: $w_k \sim \mathcal U(-1, 1)$, one draw of ``channels`` weights for every
    sample -> ``(B, C)``.

    Drawn on the CPU from a private generator seeded with ``seed`` (the global RNG is never touched; the same
    weights on every device and rank), then moved to ``device``. Every row is the same draw, so a sample's weights
    do not depend on its place in the batch (pytorch-grad-cam draws a row per sample: each sample's weights have
    the same distribution).

    Examples:
        >>> w = random_weights(2, 3, seed=0)
        >>> w.shape, bool((w.abs() <= 1).all()), torch.equal(w[0], w[1]), torch.equal(w, random_weights(2, 3, 0))
        (torch.Size([2, 3]), True, True, True)
    """
    g = torch.Generator().manual_seed(int(seed))
    row = torch.rand(channels, generator=g, dtype=torch.float64) * 2 - 1
    return row.to(device=device, dtype=dtype).expand(batch, channels)


def finer_comparisons(logits: Tensor, targets: Tensor, count: int = 3) -> Tensor:
    r"""Finer-CAM's comparison classes: per sample, the ``count`` classes whose logits are closest to the target's
    (smallest $|z_j - z_c|$, the target itself excluded), closest first -> ``(B, min(count, K - 1))`` long.

    Examples:
        >>> finer_comparisons(torch.tensor([[5.0, 4.0, 0.0, 4.5]]), torch.tensor([0]), count=2)
        tensor([[3, 1]])
    """
    distance = (logits.detach() - logits.detach().gather(1, targets.view(-1, 1))).abs()
    distance = distance.scatter(1, targets.view(-1, 1), float("inf"))
    k = min(int(count), logits.shape[1] - 1)
    return distance.topk(k, dim=1, largest=False).indices


def finer_score(logits: Tensor, targets: Tensor, comparisons: Tensor, alpha: float = 1.0,
                eps: float = 1e-9) -> Tensor:
    r"""Finer-CAM's score (Zhang et al., CVPR 2025): the target's logit against its closest classes' -> ``(B,)``.

    $$
    s = \frac{\sum_{j \in J} p_j\,(z_c - \alpha z_j)}{\sum_{j \in J} p_j + \epsilon},\qquad p = \mathrm{softmax}(z)
    $$

    over the comparison classes $J$ (`finer_comparisons`); differentiable through $z$ and $p$, as
    pytorch-grad-cam's ``FinerWeightedTarget`` (with its $\epsilon = 10^{-9}$).

    Examples:
        >>> z = torch.tensor([[2.0, 1.0, 0.0]])
        >>> round(float(finer_score(z, torch.tensor([0]), torch.tensor([[1]]))), 4)
        1.0
    """
    p = torch.softmax(logits, dim=1).gather(1, comparisons)
    z_c = logits.gather(1, targets.view(-1, 1))
    z_j = logits.gather(1, comparisons)
    return (p * (z_c - alpha * z_j)).sum(dim=1) / (p.sum(dim=1) + eps)


def segeigencam_map(activations: Tensor, grads: Tensor) -> Tensor:
    r"""Seg-Eigen-CAM (Chung & Ying, Appl. Sci. 2025): the first principal component of $|G| \odot A$, sign-corrected.

    Per sample, the ``(hw, C)`` matrix of $|G| \odot A$ (Eq. 10) is centred over positions and projected on its
    first right singular vector (`first_component_projection`); the projection $p$ is negated where
    $|\min p| > |\max p|$ (Eq. 13), so the salient region is positive. This sign rule is the paper's and
    pytorch-grad-cam's ``SegEigenCAM``'s, kept here (not Eigen-CAM's `orient_like`), so the two agree exactly.

    Examples:
        >>> a = torch.zeros(1, 2, 2, 2); a[0, :, 0, 0] = 5.0
        >>> (segeigencam_map(a, torch.ones_like(a)).argmax() == 0).item()
        True
    """
    _check_4d("activations", activations)
    _check_4d("grads", grads)
    b, c, h, w = activations.shape
    m = (grads.abs() * activations).flatten(2).transpose(1, 2)  # (B, hw, C)
    proj = first_component_projection(m - m.mean(dim=1, keepdim=True))
    flip = proj.amin(dim=1, keepdim=True).abs() > proj.amax(dim=1, keepdim=True).abs()
    return torch.where(flip, -proj, proj).view(b, h, w)


def ablation_weights(score: Tensor, ablated: Tensor) -> Tensor:
    r"""Ablation-CAM (Desai & Ramaswamy, WACV 2020) channel weights: the target score's relative drop when the
    channel is zeroed.

    $$
    w_k = \frac{y^c - y^c_k}{y^c}
    $$

    ``score``: ``(B,)`` the target score $y^c$ of the clean pass; ``ablated``: ``(B, C)`` the scores $y^c_k$ with
    channel $k$ of the target layer set to 0 -> ``(B, C)``. A score of 0 gives non-finite weights (the map is then
    a counted non-finite fault, never a silent value).

    Examples:
        >>> ablation_weights(torch.tensor([2.0]), torch.tensor([[1.0, 2.0, 3.0]]))
        tensor([[ 0.5000,  0.0000, -0.5000]])
    """
    return (score[:, None] - ablated) / score[:, None]


def shapley_gradient(score: Tensor, activations: Tensor) -> Tensor | None:
    r"""Shapley-CAM's gradient (Cai et al., 2025): the gradient corrected by half the Hessian-vector product with
    the activation itself, a second-order estimate of each unit's Shapley value.

    $$
    \tilde G = \frac{\partial s}{\partial A} - \frac{1}{2}\, \frac{\partial^2 s}{\partial A^2} A
    $$

    ``score``: a scalar (the batch's summed target scores, samples independent) computed from ``activations``
    (a tensor that requires grad) -> ``(B, ...)`` like ``activations``, detached; ``None`` when ``score`` does not
    depend on it. Where the score is linear in $A$ (a GAP-then-Linear head after the layer), the Hessian term
    is 0 and $\tilde G$ is the gradient (Shapley-CAM is then Grad-CAM). One backward with its graph kept and one
    double backward.

    Examples:
        >>> a = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> shapley_gradient((a ** 2).sum(), a)  # 2a - 0.5 * 2a
        tensor([1., 2.])
    """
    grad = torch.autograd.grad(score, activations, create_graph=True, allow_unused=True)[0]
    if grad is None:
        return None
    if not grad.requires_grad:  # linear in A: no second-order term
        return grad.detach()
    hvp = torch.autograd.grad(grad, activations, grad_outputs=activations.detach(), allow_unused=True)[0]
    return grad.detach() if hvp is None else (grad - 0.5 * hvp).detach()
