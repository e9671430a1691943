"""Gradient-based methods: Grad-CAM, Grad-CAM++, Smooth Grad-CAM++, XGrad-CAM, Layer-CAM, HiRes-CAM."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_cam.functional.cam import (
    gradcam_weights,
    gradcampp_weights,
    hirescam_map,
    layercam_map,
    weighted_sum,
    xgradcam_weights,
)
from lightning_cam.methods.base import BaseCAM, Need
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.layers import Reshape
from lightning_cam.methods.registry import register_method
from lightning_cam.methods.targets import is_checked, mark_checked
from lightning_cam.targets.base import rows_of
from lightning_cam.targets.task import Task
from lightning_cam.utilities.checks import check_batch_size, check_target_range
from lightning_cam.utilities.chunking import ChunkMemory, chunk_size
from lightning_cam.utilities.outputs import Output

__all__ = ["GradCAM", "GradCAMPlusPlus", "HiResCAM", "LayerCAM", "SmoothGradCAMPlusPlus", "XGradCAM"]


@register_method
class GradCAM(BaseCAM):
    r"""Grad-CAM (Selvaraju et al., ICCV 2017).

    $$
    \alpha_k = \frac{1}{hw}\sum_{ij}\frac{\partial y^c}{\partial A^k_{ij}},\qquad
    L = \mathrm{ReLU}\Big(\sum_k \alpha_k A^k\Big)
    $$

    Same definition as pytorch-grad-cam's and torchcam's ``GradCAM``. For a GAP->Linear head it equals
    [`CAM`][lightning_cam.methods.cam.CAM] up to a positive factor.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> res = GradCAM(net, "1").explain(torch.randn(2, 3, 8, 8), targets=torch.tensor([0, 1]))
        >>> res.maps.shape, res.low_res.shape, res.logits.shape, res.targets.tolist()
        (torch.Size([2, 8, 8]), torch.Size([2, 8, 8]), torch.Size([2, 2]), [0, 1])
    """

    name = "gradcam"
    aliases = ("grad-cam",)

    def weights(self, cap: Capture) -> Tensor:
        return gradcam_weights(cap.gradient)


@register_method
class GradCAMPlusPlus(BaseCAM):
    r"""Grad-CAM++ (Chattopadhay et al., WACV 2018), exponential-score closed form.

    $$
    \alpha^{kc}_{ij} = \frac{g_{ij}^2}{2g_{ij}^2 + \sum_{ab}A^k_{ab}\,g_{ij}^3},\quad
    w_k = \sum_{ij}\alpha^{kc}_{ij}\,\mathrm{ReLU}(g_{ij}),\quad L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)
    $$

    with $g = \partial y^c/\partial A^k$ (see `lightning_cam.functional.gradcampp_weights`).
    ``eps`` is added to the denominator of $\alpha$. The default ``eps=0`` keeps $\alpha$
    meaningful however small the gradients are; pytorch-grad-cam's ``GradCAMPlusPlus`` uses ``eps=1e-6``, which zeroes
    $\alpha$ wherever $g^2 \lesssim 10^{-6}$ -- pass ``eps=1e-6`` to reproduce it exactly.
    torchcam's ``GradCAMpp`` uses a different denominator ($\sum_{ab} A_{ab} g^3_{ab}$) and, through an
    in-place division on a copy, effectively $\alpha = g^2$.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> GradCAMPlusPlus(net, "1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "gradcam_pp"
    aliases = ("gradcam++", "gradcampp", "gradcamplusplus", "grad-cam++")

    def __init__(
        self, model: nn.Module, target_layer: str | nn.Module | None = None, reshape: Reshape = None, eps: float = 0.0,
        *, output: Output = None, task: Task | str = "multiclass",
    ) -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}.")
        self.eps = float(eps)

    def weights(self, cap: Capture) -> Tensor:
        return gradcampp_weights(cap.activations, cap.gradient, self.eps)


@register_method
class SmoothGradCAMPlusPlus(BaseCAM):
    r"""Smooth Grad-CAM++ (Omeiza et al., 2019): Grad-CAM++ averaged over ``num_samples`` noisy copies.

    $$
    L = \mathrm{ReLU}\Big(\frac1n\sum_{m=1}^{n} \sum_k w_k(x + \varepsilon_m)\,A^k(x + \varepsilon_m)\Big),
    \qquad \varepsilon_m \sim \mathcal N(0, (\sigma \cdot (\max x - \min x))^2)
    $$

    i.e. the mean of the raw Grad-CAM++ maps of the noisy copies (``std`` $\sigma$ is a fraction of each
    sample's value range), all explaining the class chosen on the clean input, or the given ``targets``. The logits
    returned are those of the clean input. The maps need no clean pass: with given targets the clean forward runs
    only when the result's ``logits`` are read (``explain(x, targets)`` costs ``num_samples`` forwards and
    backwards); without targets it runs first, to pick the predicted class. The noise comes from a private
    ``torch.Generator`` seeded with ``seed`` at every call (the global RNG is never touched), and the same ``n``
    noise patterns are used for every sample, so a sample's map does not depend on the rest of the batch and
    repeated calls agree. The ``B * n`` noisy images are made and run chunk by chunk: ``batch_size`` per forward, or
    with ``None`` (the default) the size `chunk_size` picks from the batch
    and image size (at most ``B`` images per forward: peak memory within 2x a forward); an out-of-memory chunk is
    halved.

    Definition differences: torchcam's ``SmoothGradCAMpp`` averages $g^2, g^3$ over the copies and keeps
    the clean activations (and its last copy's gradient); pytorch-grad-cam has no Smooth Grad-CAM++.
    With ``std=0`` this is exactly [`GradCAMPlusPlus`][lightning_cam.methods.gradient.GradCAMPlusPlus].

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> SmoothGradCAMPlusPlus(net, "1", num_samples=4)(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "smoothgradcam_pp"
    floor = "1 + num_samples forwards and backwards (8 by default)"
    leave_on = False
    aliases = ("smoothgradcam++", "smoothgradcampp", "smoothgradcamplusplus", "smooth-grad-cam++")

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | nn.Module | None = None,
        reshape: Reshape = None,
        num_samples: int = 8,
        std: float = 0.15,
        seed: int = 0,
        batch_size: int | None = None,
        *,
        output: Output = None,
        task: Task | str = "multiclass",
    ) -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        if not std >= 0:
            raise ValueError(f"std must be >= 0 (a fraction of the input range), got {std}.")
        self.num_samples = int(num_samples)
        self.std = float(std)
        self.seed = int(seed)
        self.batch_size = check_batch_size(batch_size, allow_none=True)
        self.chunks = ChunkMemory()  # an out-of-memory back-off is remembered for the later calls

    def noise(self, x: Tensor) -> Tensor:
        """The ``(n, C, H, W)`` standard-normal noise patterns of one call (before scaling)."""
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        return torch.randn((self.num_samples, *x.shape[1:]), generator=gen, device=x.device, dtype=torch.float32)

    def needs(self) -> Need:
        return "targets"  # the clean pass only picks the targets (or gives the logits, when read)

    def derive(self, cap: Capture, x: Tensor, extra: ExtraInputs) -> Tensor:
        """Mean raw Grad-CAM++ map over the noisy copies, explaining ``cap.targets``.

        Job ``j`` of the ``n * B`` is copy ``m = j // B`` of sample ``b = j % B``; each chunk's noisy images are
        made when the chunk runs, so memory holds one chunk (`chunk_size`
        when ``batch_size`` is None), never all ``n * B`` copies."""
        targets = cap.targets
        reference = self.reference_of(cap)  # the noisy copies are scored against the clean image's (a region)
        b, n = x.shape[0], self.num_samples
        flat = x.detach().float().flatten(1)
        scale = (flat.amax(dim=1) - flat.amin(dim=1)) * self.std  # (B,)
        noise = self.noise(x)
        jobs = n * b
        total: list[Tensor | None] = [None]
        unchecked = [not is_checked(targets)]  # given targets, no clean pass: range-checked at the first chunk
        chunk = chunk_size(b, x.shape[-2] * x.shape[-1], requested=self.batch_size, device=x.device)

        def step(start: int, stop: int) -> None:
            j = torch.arange(start, stop, device=x.device)
            copy, sample = j // b, j % b
            noisy = (x.float()[sample] + scale[sample].view(-1, 1, 1, 1) * noise[copy]).to(x.dtype)
            # cap.targets are valid indices (checked or an argmax by the clean pass): no range check per chunk; given
            # targets without a clean pass: the first chunk checks its own before its gradient, then all of them
            cap_n = self.capture(noisy, targets[sample], "grad", extra=extra.take(sample, b),
                                  trusted=not unchecked[0], reference=rows_of(reference, sample))
            if unchecked[0]:
                check_target_range(targets, self.task.num_classes(cap_n.logits))
                mark_checked(targets)
                unchecked[0] = False
            with torch.autocast(device_type=x.device.type, enabled=False):
                part = weighted_sum(gradcampp_weights(cap_n.activations, cap_n.gradient), cap_n.activations)
            acc = total[0] if total[0] is not None else part.new_zeros((b, *part.shape[1:]))
            total[0] = acc.index_add(0, sample, part)

        def pad() -> None:  # a padding forward of a sharded run (every rank the same forwards), result unused
            self.capture(x[:1], targets[:1], "grad", extra=extra.take(targets.new_zeros(1), b), trusted=True,
                         reference=None if reference is None else reference[:1])

        self.chunks.run(jobs, chunk, step, x.device, pad=pad, key=x.shape[-2] * x.shape[-1])
        assert total[0] is not None
        return total[0] / n


@register_method
class XGradCAM(BaseCAM):
    r"""XGrad-CAM (Fu et al., BMVC 2020).

    $$
    w_k = \sum_{ij}\frac{A^k_{ij}}{\sum_{ab}A^k_{ab}}\frac{\partial y^c}{\partial A^k_{ij}},\qquad
    L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)
    $$

    Matches pytorch-grad-cam's and torchcam's ``XGradCAM`` (channels summing to 0 get weight 0 here,
    where the peers add a small epsilon).

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> XGradCAM(net, "1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "xgradcam"
    aliases = ("xgrad-cam", "axiomcam")

    def weights(self, cap: Capture) -> Tensor:
        return xgradcam_weights(cap.activations, cap.gradient)


@register_method
class LayerCAM(BaseCAM):
    r"""Layer-CAM (Jiang et al., TIP 2021).

    $$
    L = \mathrm{ReLU}\Big(\sum_k \mathrm{ReLU}(\partial y^c/\partial A^k)\odot A^k\Big)
    $$

    Matches pytorch-grad-cam's and torchcam's ``LayerCAM``.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> LayerCAM(net, "1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "layercam"
    aliases = ("layer-cam",)

    def raw_map(self, cap: Capture) -> Tensor:
        return layercam_map(cap.activations, cap.gradient)


@register_method
class HiResCAM(BaseCAM):
    r"""HiRes-CAM (Draelos & Carin, 2020).

    $$
    L = \mathrm{ReLU}\Big(\sum_k \partial y^c/\partial A^k \odot A^k\Big)
    $$

    Matches pytorch-grad-cam's ``HiResCAM``.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> HiResCAM(net, "1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "hirescam"
    aliases = ("hires-cam",)

    def raw_map(self, cap: Capture) -> Tensor:
        return hirescam_map(cap.activations, cap.gradient)
