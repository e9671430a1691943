"""Ablation-CAM: each channel weighted by how much the target score drops when the channel is zeroed."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_cam.functional.cam import weighted_sum
from lightning_cam.functional.cam_variants import ablation_weights
from lightning_cam.methods.base import BaseCAM
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.layers import Reshape
from lightning_cam.methods.registry import register_method
from lightning_cam.targets.base import rows_of
from lightning_cam.targets.task import Task
from lightning_cam.utilities.checks import check_batch_size
from lightning_cam.utilities.chunking import ChunkMemory, chunk_size
from lightning_cam.utilities.outputs import Output

__all__ = ["AblationCAM"]


@register_method
class AblationCAM(BaseCAM):
    r"""Ablation-CAM (Desai & Ramaswamy, WACV 2020), gradient-free, batched over samples x channels.

    $$
    w_k = \frac{y^c - y^c_k}{y^c},\qquad L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)
    $$

    $y^c_k$: the target score (the output kind's, as the gradient methods explain it) with channel $k$ of the target
    layer's output set to 0 (`ablation_weights`). The ``B * C`` ablated forwards run in chunks of ``batch_size``
    (``None``: the size `chunk_size` picks, halved on out-of-memory): the floor, one image forward per (sample,
    channel), as pytorch-grad-cam's ``AblationCAM`` with ``ratio_channels_to_ablate=1``. The channel is zeroed in the
    layer's own layout (``nchw``: dim 1; ``nhwc``, tokens: the last dim, every token). Where the layer's output can be
    negative, pytorch-grad-cam sets the channel to $\min A - 10^7$ instead of 0 (its deviation from the paper, stated
    in its source); we keep the paper's 0, so the two agree on non-negative layers (after a ReLU), as tested.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> AblationCAM(net, "1", batch_size=4)(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "ablationcam"
    aliases = ("ablation-cam",)
    needs_grad = False

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | None = None, reshape: Reshape = None,
                 batch_size: int | None = None, *, output: Output = None, task: Task | str = "multiclass") -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)
        self.batch_size = check_batch_size(batch_size, allow_none=True)
        self.chunks = ChunkMemory()  # an out-of-memory back-off is remembered for the later calls

    def derive(self, cap: Capture, x: Tensor, extra: ExtraInputs) -> Tensor:
        acts, targets = cap.activations, cap.targets
        b, c = acts.shape[:2]
        reference = self.reference_of(cap)
        with torch.no_grad():
            clean = self.score(cap.logits.float(), targets, reference).float()
        layer = self.target_layer
        assert layer is not None  # needs an activation: the layer was resolved by the clean pass
        sample = torch.arange(b, device=x.device).repeat_interleave(c)
        channel = torch.arange(c, device=x.device).repeat(b)
        ablated = torch.empty(b * c, device=x.device, dtype=torch.float32)
        rows: list[Tensor] = []
        size = (x.shape[-2], x.shape[-1])

        def zero_channel(module: nn.Module, args: object, out: Tensor) -> Tensor:
            keep = torch.ones(out.shape[0], c, device=out.device, dtype=out.dtype)
            keep[torch.arange(out.shape[0], device=out.device), rows[0]] = 0
            layout = self._layout(out, size)
            if layout == "nchw" or (layout is None and out.ndim == 4 and out.shape[1] == c):
                return out * keep.view(out.shape[0], c, *([1] * (out.ndim - 2)))
            return out * keep.view(out.shape[0], *([1] * (out.ndim - 2)), c)

        def step(start: int, stop: int) -> None:
            idx = torch.arange(start, stop, device=x.device)
            rows[:] = [channel[idx]]
            more = extra.take(sample[idx], b)
            handle = layer.register_forward_hook(zero_channel)
            try:
                with torch.no_grad():
                    logits = self.forward_logits(x[sample[idx]], more) if more else self.forward_logits(x[sample[idx]])
            finally:
                handle.remove()
            ablated[idx] = self.score(logits.float(), targets[sample[idx]], rows_of(reference, sample[idx])).float()

        def pad() -> None:  # a padding forward of a sharded run (every rank the same forwards), result unused
            more = extra.take(sample[:1], b)
            self.forward_logits(torch.zeros_like(x[:1]), more) if more else self.forward_logits(torch.zeros_like(x[:1]))

        proposed = chunk_size(max(b, 64), size[0] * size[1], requested=self.batch_size, device=x.device)
        self.chunks.run(b * c, proposed, step, x.device, pad=pad, key=size[0] * size[1])
        with torch.autocast(device_type=x.device.type, enabled=False):
            return weighted_sum(ablation_weights(clean, ablated.view(b, c)), acts)
