"""Ablation-CAM: each channel weighted by how much the target score drops when the channel is zeroed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
    (``None``: the size `chunk_size` picks, halved on out-of-memory), each with the target layer's output given (its
    own computation skipped, as pytorch-grad-cam's ``AblationCAM`` with ``ratio_channels_to_ablate=1`` does): the
    floor, one forward of the rest of the model per (sample, channel), plus one forward of the batch for the layer's
    output. The channel is zeroed in the
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
    floor = "1 forward + B·C forwards of the layers after the target"
    leave_on = False
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
        size = (x.shape[-2], x.shape[-1])
        raw = self._raw_output(layer, x, extra)  # the layer's own output (its layout, its dtype), once per batch
        channels_first = self._layout(raw, size) == "nchw" or (self._layout(raw, size) is None and raw.ndim == 4
                                                                and raw.shape[1] == c)
        sample = torch.arange(b, device=x.device).repeat_interleave(c)
        channel = torch.arange(c, device=x.device).repeat(b)
        ablated = torch.empty(b * c, device=x.device, dtype=torch.float32)

        def step(start: int, stop: int) -> None:
            idx = torch.arange(start, stop, device=x.device)
            keep = torch.ones(len(idx), c, device=raw.device, dtype=raw.dtype)
            keep[torch.arange(len(idx), device=raw.device), channel[idx]] = 0
            shape = (len(idx), c, *([1] * (raw.ndim - 2))) if channels_first else (len(idx), *([1] * (raw.ndim - 2)), c)
            out = raw[sample[idx]] * keep.view(shape)
            more = extra.take(sample[idx], b)
            with torch.no_grad(), _replaced(layer, out):  # the layer's own work skipped: its output is known
                logits = self.forward_logits(x[sample[idx]], more) if more else self.forward_logits(x[sample[idx]])
            ablated[idx] = self.score(logits.float(), targets[sample[idx]], rows_of(reference, sample[idx])).float()

        proposed = chunk_size(max(b, 64), size[0] * size[1], requested=self.batch_size, device=x.device)
        self.chunks.run(b * c, proposed, step, x.device, pad=self.padding(x, extra, b), key=size[0] * size[1])
        with torch.autocast(device_type=x.device.type, enabled=False):
            return weighted_sum(ablation_weights(clean, ablated.view(b, c)), acts)

    def _raw_output(self, layer: nn.Module, x: Tensor, extra: ExtraInputs) -> Tensor:
        """The target layer's output for ``x`` as the model produces it (one forward of the batch)."""
        seen: list[Tensor] = []
        handle = layer.register_forward_hook(lambda module, args, out: seen.append(out.detach()))
        try:
            with torch.no_grad():
                self.forward_logits(x, extra) if extra else self.forward_logits(x)
        finally:
            handle.remove()
        return seen[0]


@contextmanager
def _replaced(layer: nn.Module, output: Tensor) -> Iterator[None]:
    """``layer`` returns ``output`` instead of computing it (its ``forward`` shadowed on the instance), as
    pytorch-grad-cam's ablation layer does by swapping the module: the layers after it see the ablated channels and
    the layer's own cost is not paid. The instance's own ``forward`` (if it had one) is restored."""
    own = layer.__dict__.get("forward")
    layer.forward = lambda *args, **kwargs: output
    try:
        yield
    finally:
        if own is None:
            del layer.forward
        else:
            layer.forward = own
