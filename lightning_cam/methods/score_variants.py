"""torchcam's Score-CAM variants: SS-CAM (noisy masks) and IS-CAM (integrated masks), weighted by score
differences softmaxed over channels."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_cam.functional.cam import weighted_sum
from lightning_cam.functional.score_variants import channel_masks, integration_coefficients, softmax_over_channels
from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.layers import Reshape, TargetLayer
from lightning_cam.methods.registry import register_method
from lightning_cam.targets.base import rows_of
from lightning_cam.targets.task import Task
from lightning_cam.utilities.checks import check_batch_size
from lightning_cam.utilities.chunking import ChunkMemory, chunk_size
from lightning_cam.utilities.outputs import Output

__all__ = ["ISCAM", "SSCAM"]


class _ScoreDifferenceCAM(BaseCAM):
    """The shared engine of SS-CAM and IS-CAM: ``steps`` rounds of one masked copy per (sample, channel), each
    scored by the target score's difference with the clean image's; the mean difference softmaxed over channels
    weighs the raw activations. A subclass says how step ``i`` masks an image (`masked`), given what it drew for that
    step (`draw`)."""

    needs_grad = False

    def __init__(self, model: nn.Module, target_layer: TargetLayer, reshape: Reshape, batch_size: int | None,
                 steps: int, seed: int, *, output: Output, task: Task | str) -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)
        if int(steps) < 1:
            raise ValueError(f"{type(self).__name__}: num_samples must be >= 1, got {steps}.")
        self.steps, self.seed = int(steps), int(seed)
        self.batch_size = check_batch_size(batch_size, allow_none=True)
        self.chunks = ChunkMemory()

    def draw(self, channels: int, size: tuple[int, int], generator: torch.Generator, device: torch.device
             ) -> Tensor | None:
        """What step ``i`` draws, shared by every sample (a sample's map never depends on its batch); ``None``."""
        return None

    def masked(self, masks: Tensor, images: Tensor, step: int, drawn: Tensor | None) -> Tensor:
        """The model's input for step ``step`` from the ``(n, 1, H, W)`` masks of ``images`` ``(n, C, H, W)`` and
        ``drawn`` (what `draw` gave for this step, indexed by the rows' channels)."""
        raise NotImplementedError

    def derive(self, cap: Capture, x: Tensor, extra: ExtraInputs) -> Tensor:
        acts, targets = cap.activations, cap.targets
        b, c = int(acts.shape[0]), int(acts.shape[1])
        size = (int(x.shape[-2]), int(x.shape[-1]))
        reference = self.reference_of(cap)
        clean = self.score(cap.logits, targets, reference).float()  # (B,)
        flat = acts.flatten(0, 1)[:, None]  # (B*C, 1, h, w)
        sample = torch.arange(b, device=x.device).repeat_interleave(c)
        total = torch.zeros(b * c, device=x.device, dtype=torch.float32)
        channel = torch.arange(c, device=x.device).repeat(b)
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        proposed = chunk_size(max(b, 64), size[0] * size[1], requested=self.batch_size, device=x.device)

        for step_index in range(self.steps):
            drawn = self.draw(c, size, generator, x.device)

            def step(start: int, stop: int, i: int = step_index, drawn: Tensor | None = drawn) -> None:
                rows = sample[start:stop]
                with torch.autocast(device_type=x.device.type, enabled=False):
                    masks = channel_masks(flat[start:stop], size)
                    picked = None if drawn is None else drawn[channel[start:stop]]
                    inputs = self.masked(masks, x[rows].float(), i, picked).to(x.dtype)
                logits = self.forward_logits(inputs, extra.take(rows, b) or None)
                total[start:stop] += self.score(logits, targets[rows], rows_of(reference, rows)).float() - clean[rows]

            self.chunks.run(b * c, proposed, step, x.device, pad=self.padding(x, extra, b), key=size[0] * size[1])
        weights = softmax_over_channels((total / self.steps).view(b, c))
        with torch.autocast(device_type=x.device.type, enabled=False):
            return weighted_sum(weights, acts)


@register_method
class SSCAM(_ScoreDifferenceCAM):
    r"""SS-CAM, Smoothed Score-CAM (Wang et al., 2020), as torchcam 0.5 defines it.

    $$
    M_k = U\Big(\frac{A^k - \min A^k}{\max A^k - \min A^k}\Big),\quad
    w_k = \operatorname{softmax}_k\Big(\frac1N \sum_{i=1}^N
          \big(y^c\big(x \odot (M_k + \delta_i)\big) - y^c(x)\big)\Big),\quad L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)
    $$

    $\delta_i \sim \mathcal N(0, \sigma^2)$ at the input's resolution (``std`` $\sigma$, default 2), $N$ =
    ``num_samples`` (default 35), $y^c$ the target kind's score (the logit of a classifier). Normalised at the
    activation's resolution, then upsampled (`channel_masks`); softmax over *channels* of score differences
    (torchcam's definition, which differs from this library's Score-CAM, whose softmax runs over classes as in the
    paper's code). The noise comes from a private generator seeded with ``seed`` at every call (the training's
    random stream is never touched; the same map at every call), one ``(C, H, W)`` draw per step shared by every
    sample, so a sample's map does not depend on its batch. torchcam draws ``(B, C, H, W)`` from the global
    generator: for one image the same draw as here after ``torch.manual_seed(seed)``, hence the same map.

    Cost: $N \cdot B \cdot C$ forwards (35 x 512 per image at a ResNet's ``layer4``), in memory-capped chunks of
    ``batch_size`` images: a method to run on few samples, not one to leave on.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> SSCAM(net, "1", num_samples=2)(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "sscam"
    floor = "1 + num_samples·B·C forwards (35 by default)"
    leave_on = False
    aliases = ("ss-cam",)

    def __init__(self, model: nn.Module, target_layer: TargetLayer = None, reshape: Reshape = None,
                 batch_size: int | None = None, num_samples: int = 35, std: float = 2.0, seed: int = 0, *,
                 output: Output = None, task: Task | str = "multiclass") -> None:
        super().__init__(model, target_layer, reshape, batch_size, num_samples, seed, output=output, task=task)
        if not std >= 0:
            raise ValueError(f"SSCAM: std (the noise's standard deviation) must be >= 0, got {std}.")
        self.std = float(std)

    def draw(self, channels: int, size: tuple[int, int], generator: torch.Generator, device: torch.device
             ) -> Tensor | None:
        return torch.randn((channels, 1, *size), generator=generator, device=device)

    def masked(self, masks: Tensor, images: Tensor, step: int, drawn: Tensor | None) -> Tensor:
        assert drawn is not None
        return (masks + self.std * drawn) * images


@register_method
class ISCAM(_ScoreDifferenceCAM):
    r"""IS-CAM, Integrated Score-CAM (Naidu et al., 2020), as torchcam 0.5 defines it.

    $$
    w_k = \operatorname{softmax}_k\Big(\frac1N \sum_{i=1}^N \big(y^c(c_i\, M_k \odot x) - y^c(x)\big)\Big),\quad
    c_i = \sum_{j=1}^{i} \frac{j}{N},\quad L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)
    $$

    $M_k$ as in `SSCAM`, $N$ = ``num_samples`` (default 10), $c_i$ torchcam's cumulative scales
    (`integration_coefficients`; they exceed 1 from $i \approx N/\sqrt2$ on, where the paper's integral would stop at
    1). Deterministic. Cost: $N \cdot B \cdot C$ forwards in chunks of ``batch_size``: not one to leave on.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> ISCAM(net, "1", num_samples=2)(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "iscam"
    floor = "1 + num_samples·B·C forwards (10 by default)"
    leave_on = False
    aliases = ("is-cam",)

    def __init__(self, model: nn.Module, target_layer: TargetLayer = None, reshape: Reshape = None,
                 batch_size: int | None = None, num_samples: int = 10, *, output: Output = None,
                 task: Task | str = "multiclass") -> None:
        super().__init__(model, target_layer, reshape, batch_size, num_samples, 0, output=output, task=task)
        self.coefficients = integration_coefficients(self.steps)

    def masked(self, masks: Tensor, images: Tensor, step: int, drawn: Tensor | None) -> Tensor:
        return self.coefficients[step] * masks * images
