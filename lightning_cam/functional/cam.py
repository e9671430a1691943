r"""Pure tensor maths of the CAM family: channel weights and raw maps, batched over samples.

Shapes: ``activations`` $A$ and ``grads`` $G = \partial y^c / \partial A$ are ``(B, C, h, w)``;
channel weights are ``(B, C)``; raw maps are ``(B, h, w)`` *before* the ReLU, upsampling and
normalisation that `lightning_cam.functional.postprocess_maps` applies. Everything is computed
in the dtype it is given (the methods pass float32).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cam.functional.probability import Probability, read_probability, softmax_probability

__all__ = [
    "eigencam_map",
    "fakecam_map",
    "first_component_projection",
    "gradcam_weights",
    "gradcampp_weights",
    "hirescam_map",
    "layercam_map",
    "orient_like",
    "scorecam_masks",
    "scorecam_weights",
    "weighted_sum",
    "xgradcam_weights",
]


def _check_4d(name: str, x: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must be (B, C, h, w), got shape {tuple(x.shape)}")


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den != 0``, else 0 (no NaN, no inf)."""
    nz = den != 0
    return torch.where(nz, num / torch.where(nz, den, torch.ones_like(den)), torch.zeros_like(num))


def weighted_sum(weights: Tensor, activations: Tensor) -> Tensor:
    r"""The map $\sum_k w_k A^k$ for ``(B, C)`` weights and ``(B, C, h, w)`` activations -> ``(B, h, w)``.

    Examples:
        >>> weighted_sum(torch.tensor([[1.0, -1.0]]), torch.ones(1, 2, 3, 3)).abs().sum()
        tensor(0.)
    """
    _check_4d("activations", activations)
    return torch.einsum("bc,bchw->bhw", weights, activations)


def gradcam_weights(grads: Tensor) -> Tensor:
    r"""Grad-CAM (Selvaraju et al., 2017): $\alpha_k = \frac{1}{hw}\sum_{ij} \partial y^c/\partial A^k_{ij}$.

    Examples:
        >>> gradcam_weights(torch.arange(8.0).view(1, 2, 2, 2))
        tensor([[1.5000, 5.5000]])
    """
    _check_4d("grads", grads)
    return grads.mean(dim=(2, 3))


def gradcampp_weights(activations: Tensor, grads: Tensor, eps: float = 0.0) -> Tensor:
    r"""Grad-CAM++ (Chattopadhay et al., 2018), closed form for an exponential score.

    $$
    \alpha^{kc}_{ij} = \frac{g_{ij}^2}{2 g_{ij}^2 + \sum_{ab} A^k_{ab}\, g_{ij}^3},\qquad
    w_k = \sum_{ij} \alpha^{kc}_{ij}\, \mathrm{ReLU}(g_{ij})
    $$

    with $g = \partial y^c / \partial A^k$; $\alpha = 0$ where the denominator is 0. This is
    pytorch-grad-cam's definition, except that it adds ``eps=1e-6`` to the denominator. We default to
    ``eps=0``: for $g \ne 0$, $\alpha = 1/(2 + g\sum_{ab}A_{ab})$ stays meaningful however small the
    gradients are, whereas an absolute epsilon zeroes $\alpha$ wherever $g^2 \lesssim 10^{-6}$
    (common for small or untrained networks, or small logits), so the two maps can differ; with ``eps=1e-6``
    they agree. torchcam's ``GradCAMpp`` differs: it uses
    $\sum_{ab} A_{ab} g^3_{ab}$ in the denominator and its in-place division on a masked copy leaves
    $\alpha = g^2$.

    Examples:
        >>> a = torch.ones(1, 1, 2, 2); g = torch.full((1, 1, 2, 2), 0.5)
        >>> gradcampp_weights(a, g)  # alpha = 0.25 / (0.5 + 4 * 0.125) = 0.25; w = 4 * 0.25 * 0.5
        tensor([[0.5000]])
    """
    _check_4d("activations", activations)
    _check_4d("grads", grads)
    g2 = grads * grads
    g3 = g2 * grads
    denom = 2 * g2 + activations.sum(dim=(2, 3), keepdim=True) * g3 + eps
    alpha = torch.where(grads != 0, _safe_div(g2, denom), torch.zeros_like(g2))
    return (alpha * torch.relu(grads)).sum(dim=(2, 3))


def xgradcam_weights(activations: Tensor, grads: Tensor) -> Tensor:
    r"""XGrad-CAM (Fu et al., 2020) channel weights -> ``(B, C)``.

    $$
    w_k = \sum_{ij} \frac{A^k_{ij}}{\sum_{ab} A^k_{ab}} \frac{\partial y^c}{\partial A^k_{ij}}
    $$

    Channels whose activations sum to 0 get weight 0 (pytorch-grad-cam adds ``1e-7`` instead).

    Examples:
        >>> xgradcam_weights(torch.tensor([[[[1.0, 3.0]]]]), torch.tensor([[[[4.0, 8.0]]]]))
        tensor([[7.]])
    """
    _check_4d("activations", activations)
    _check_4d("grads", grads)
    num = (activations * grads).sum(dim=(2, 3))
    return _safe_div(num, activations.sum(dim=(2, 3)))


def layercam_map(activations: Tensor, grads: Tensor) -> Tensor:
    r"""Layer-CAM (Jiang et al., 2021) raw map -> ``(B, h, w)``.

    $$
    \sum_k \mathrm{ReLU}(\partial y^c/\partial A^k) \odot A^k
    $$

    Examples:
        >>> layercam_map(torch.ones(1, 2, 1, 1), torch.tensor([1.0, -1.0]).view(1, 2, 1, 1))
        tensor([[[1.]]])
    """
    _check_4d("activations", activations)
    _check_4d("grads", grads)
    return (torch.relu(grads) * activations).sum(dim=1)


def hirescam_map(activations: Tensor, grads: Tensor) -> Tensor:
    r"""HiRes-CAM (Draelos & Carin, 2020): $\sum_k \partial y^c/\partial A^k \odot A^k$ -> ``(B, h, w)``.

    Examples:
        >>> hirescam_map(torch.ones(1, 2, 1, 1), torch.tensor([1.0, -3.0]).view(1, 2, 1, 1))
        tensor([[[-2.]]])
    """
    _check_4d("activations", activations)
    _check_4d("grads", grads)
    return (grads * activations).sum(dim=1)


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run small batched LAPACK calls single-threaded on the CPU.

    MKL's threaded eigen-solvers are latency bound on these tiny matrices and, when the cores are busy
    (a training job with data-loader workers), slow down by two orders of magnitude (measured here: 5 s
    instead of 25 ms for 64 matrices of 64 x 64). The intra-op thread count is restored afterwards.
    """
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def first_component_projection(m: Tensor) -> Tensor:
    r"""Projection of each row of ``m`` on its first right singular vector, up to sign -> ``(B, N)``.

    For $M = U S V^\top$ (``m``: ``(B, N, C)``) returns $\pm M v_1 = \pm s_1 u_1$, computed from
    the smaller Gram matrix ($M M^\top$ when $N \le C$, else $M^\top M$) with a batched
    ``torch.linalg.eigh`` in float64 (float32 on devices without float64), which is several times cheaper
    than a full SVD and gives the same vector.

    Examples:
        >>> m = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])
        >>> first_component_projection(m).abs()
        tensor([[3., 0.]])
    """
    work = torch.float32 if m.device.type == "mps" else torch.float64
    md = m.to(work)
    with _one_cpu_thread(m.device):
        if md.shape[1] <= md.shape[2]:
            evals, evecs = torch.linalg.eigh(md @ md.mT)  # ascending eigenvalues: the last is s_1^2
            proj = evecs[..., -1] * evals[..., -1:].clamp_min(0).sqrt()
        else:
            _, evecs = torch.linalg.eigh(md.mT @ md)
            proj = (md @ evecs[..., -1:]).squeeze(-1)
    return proj.to(m.dtype)


def eigencam_map(activations: Tensor) -> Tensor:
    r"""Eigen-CAM (Muhammad & Yeasin, 2020): projection on the first principal component, batched.

    Per sample, $M = A^\top \in \mathbb{R}^{hw \times C}$ is centred over positions
    ($M - \bar M$, as pytorch-grad-cam does), $M = U S V^\top$, and the map is
    $s \cdot M v_1$ reshaped to ``(h, w)`` (see `first_component_projection`). The sign of
    $v_1$ is arbitrary; pytorch-grad-cam keeps whatever LAPACK returns, we choose $s = \pm 1$ so
    that the map correlates non-negatively with the mean activation $\frac1C \sum_k A^k$ (ties:
    $s = 1$). Hence ``eigencam_map(A) == ±pytorch_grad_cam.utils.svd_on_activations.get_2d_projection(A)``.

    Examples:
        >>> a = torch.zeros(1, 2, 2, 2); a[0, :, 0, 0] = 5.0
        >>> (eigencam_map(a).argmax() == 0).item()
        True
    """
    _check_4d("activations", activations)
    b, c, h, w = activations.shape
    m = activations.flatten(2).transpose(1, 2)  # (B, hw, C)
    m = m - m.mean(dim=1, keepdim=True)
    proj = first_component_projection(m)  # (B, hw)
    return orient_like(proj, activations.mean(dim=1).flatten(1)).view(b, h, w)


def orient_like(proj: Tensor, reference: Tensor) -> Tensor:
    r"""``proj`` times the sign $s = \pm 1$ per row that makes it correlate non-negatively with ``reference``.

    A principal component's sign is arbitrary; the projection methods (Eigen-CAM, Eigen-Grad-CAM, KPCA-CAM) fix it
    here, once: $s = -1$ where $\sum_i p_i (r_i - \bar r) < 0$, else $1$ (ties: $1$). ``proj`` and ``reference``
    are ``(B, N)``.

    Examples:
        >>> orient_like(torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, 5.0]]))
        tensor([[-1.,  2.]])
    """
    agree = (proj * (reference - reference.mean(dim=1, keepdim=True))).sum(dim=1, keepdim=True)
    return proj * torch.where(agree < 0, -torch.ones_like(agree), torch.ones_like(agree))


def fakecam_map(batch: int, size: tuple[int, int], device: torch.device | str | None = None) -> Tensor:
    """Fake-CAM (Poppi et al., 2021): all ones except the top-left pixel, which is 0 -> ``(B, H, W)``.

    The sanity baseline: it keeps almost the whole image, so Average Drop/Increase score it as excellent.

    Examples:
        >>> fakecam_map(1, (2, 2))
        tensor([[[0., 1.],
                 [1., 1.]]])
    """
    out = torch.ones(batch, *size, device=device)
    out[:, 0, 0] = 0.0
    return out


def scorecam_masks(activations: Tensor, size: tuple[int, int]) -> Tensor:
    r"""Score-CAM masks: bilinearly upsample each channel to ``size`` (``align_corners=False``) and min-max
    normalise it per (sample, channel): $H^k = (U(A^k) - \min) / (\max - \min)$; constant channels
    give all-zero masks.

    Returns:
        ``(B, C, H, W)`` masks in ``[0, 1]``.

    Examples:
        >>> scorecam_masks(torch.tensor([[[[0.0, 2.0]], [[1.0, 1.0]]]]), (1, 2))
        tensor([[[[0., 1.]],
        <BLANKLINE>
                 [[0., 0.]]]])
    """
    _check_4d("activations", activations)
    up = activations
    if tuple(activations.shape[-2:]) != tuple(size):
        up = F.interpolate(activations, size=tuple(size), mode="bilinear", align_corners=False)
    flat = up.flatten(2)
    lo = flat.amin(dim=2, keepdim=True)
    span = flat.amax(dim=2, keepdim=True) - lo
    return _safe_div(flat - lo, span).view_as(up)


def scorecam_weights(masked_logits: Tensor, targets: Tensor, probability: Probability = softmax_probability,
                     reference: Tensor | None = None) -> Tensor:
    r"""Score-CAM weights from the logits of the masked inputs: $w_k = P(c \mid x \odot H^k)$, the target
    probability of the target kind (``probability``, `lightning_cam.functional.probability`: the softmax over
    classes by default, or the class's sigmoid).

    This is the paper's (and its official code's) definition: the softmax runs over *classes*, and no
    baseline is subtracted. pytorch-grad-cam and torchcam instead take the target *logit* of every masked
    input and softmax it over *channels* (torchcam subtracts the clean input's logit first, which the softmax
    cancels): $w_k = \mathrm{softmax}_k(f(x \odot H^k)_c)$.

    Args:
        masked_logits: ``(B, C, K, ...)`` logits of the ``C`` masked copies of each sample (a segmenter's
            ``(B, C, K, H, W)``).
        targets: ``(B,)`` long target classes.
        probability: ``probability(logits, targets) -> (B,)``, the target kind's rule.
        reference: ``(B, ...)`` what each sample's target is scored against (a segmentation pair's region), for a
            kind that has one; ``None``: none.

    Returns:
        ``(B, C)`` weights in ``[0, 1]``.

    Examples:
        >>> scorecam_weights(torch.zeros(1, 3, 4), torch.tensor([1]))
        tensor([[0.2500, 0.2500, 0.2500]])
        >>> from lightning_cam.functional.probability import sigmoid_probability
        >>> scorecam_weights(torch.zeros(1, 3, 4), torch.tensor([1]), sigmoid_probability)
        tensor([[0.5000, 0.5000, 0.5000]])
    """
    b, c = int(masked_logits.shape[0]), int(masked_logits.shape[1])
    rows = None if reference is None else reference.repeat_interleave(c, dim=0)
    flat = read_probability(probability, masked_logits.flatten(0, 1), targets.long().repeat_interleave(c), rows)
    return flat.view(b, c)
