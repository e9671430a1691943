"""Gradient-free methods: Score-CAM, Eigen-CAM and the Fake-CAM sanity baseline."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_cam.functional.cam import (
    eigencam_map,
    fakecam_map,
    scorecam_masks,
    scorecam_weights,
    weighted_sum,
)
from lightning_cam.methods.base import BaseCAM, Need
from lightning_cam.methods.capture import Capture
from lightning_cam.methods.extra import ExtraInputs
from lightning_cam.methods.layers import Reshape
from lightning_cam.methods.registry import register_method
from lightning_cam.targets.base import rows_of
from lightning_cam.targets.task import Task
from lightning_cam.utilities.checks import check_batch_size
from lightning_cam.utilities.chunking import ChunkMemory, chunk_size
from lightning_cam.utilities.outputs import Output

__all__ = ["EigenCAM", "FakeCAM", "ScoreCAM"]


@register_method
class ScoreCAM(BaseCAM):
    r"""Score-CAM (Wang et al., CVPRW 2020), batched over samples x channels.

    $$
    H^k = \frac{U(A^k) - \min U(A^k)}{\max U(A^k) - \min U(A^k)},\quad
    w_k = \mathrm{softmax}\big(f(x \odot H^k)\big)_c,\quad L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)
    $$

    $U$ is bilinear upsampling to the input size (``align_corners=False``), the normalisation is per
    (sample, channel), the softmax runs over the classes (the paper's official code), and no baseline is
    subtracted. pytorch-grad-cam and torchcam instead softmax the target *logit* over the channels
    (``softmax_k f(x ⊙ H^k)_c``; torchcam subtracts the clean logit first, which that softmax cancels), and
    torchcam normalises before upsampling; see `lightning_cam.functional.scorecam_weights`.

    The ``B * C`` masked images (``B * top_k`` in fast mode) run through the model in chunks of at most
    ``batch_size`` images (the memory cap; ``None``, the default, lets
    `chunk_size` pick it from the image size, at most 64); if a chunk
    runs out of memory it is halved and retried.
    Constant (e.g. dead, all-zero) channels all give the same all-zero image, which is scored once.

    Fast mode ``top_k``: only the ``top_k`` channels with the largest mean activation per sample are scored,
    i.e. ``B * top_k`` masked forwards instead of ``B * C``. With ``fill="mean"`` (the default) every channel
    not scored gets the mean weight of the sample's scored channels, so it still contributes its activation
    ($w_k = \frac{1}{|S|}\sum_{j \in S} w_j$ for $k \notin S$); ``fill="zero"`` drops it
    (weight 0, the older fast mode). Measured by ``benchmarks/bench_scorecam.py`` (smallest per-sample
    Pearson correlation of the ``[0, 1]`` maps with the exact ones, 6 Shapes images; the loaded 2-core CPU):
    on a [`GAPClassifier`][lightning_cam.models.GAPClassifier] trained 2 epochs on Shapes (64 channels), the mean fill
    keeps 0.99 from ``top_k=2`` (32x fewer masked forwards) while the zero fill needs ``top_k=8`` for 0.96;
    selecting by variance, max or Grad-CAM contribution instead of the mean changed nothing measurable with the
    mean fill. On ResNet-18 with *random* weights at 96 px (512 channels on a 3x3 grid) no selection
    measured reaches 0.95 at 10x fewer forwards: ``top_k=51`` gives 0.86 (mean fill) / 0.89 (zero fill),
    ``top_k=128`` 0.91 / 0.92. The trade-off: fast mode is safe on trained, structured features; on a
    random or barely trained network use the exact method (``top_k=None``).
    ``top_k >= C`` is the exact method.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> ScoreCAM(net, "1", batch_size=4)(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "scorecam"
    floor = "1 + B·C forwards (B·top_k in fast mode)"
    leave_on = False
    aliases = ("score-cam",)
    needs_grad = False

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | nn.Module | None = None,
        reshape: Reshape = None,
        batch_size: int | None = None,
        top_k: int | None = None,
        fill: str = "mean",
        *,
        output: Output = None,
        task: Task | str = "multiclass",
    ) -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)
        if top_k is not None and int(top_k) < 1:
            raise ValueError(f"top_k must be None (score every channel) or >= 1, got {top_k}.")
        if fill not in ("mean", "zero"):
            raise ValueError(
                f"fill must be 'mean' (unscored channels get the mean scored weight) or 'zero' (they are dropped), "
                f"got {fill!r}."
            )
        self.fill = fill
        self.batch_size = check_batch_size(batch_size, allow_none=True)
        self.top_k = None if top_k is None else int(top_k)
        self.chunks = ChunkMemory()  # an out-of-memory back-off is remembered for the later calls

    def derive(self, cap: Capture, x: Tensor, extra: ExtraInputs) -> Tensor:
        acts, targets = cap.activations, cap.targets
        c = acts.shape[1]
        if self.top_k is not None and self.top_k < c:
            idx = self.select(cap)  # (B, k)
            chosen = acts.gather(1, idx[:, :, None, None].expand(-1, -1, *acts.shape[2:]))
            scored = self._score(x, chosen, targets, extra, self.reference_of(cap))  # (B, k)
            if self.fill == "zero":
                weights, acts = scored, chosen
            else:  # every unscored channel gets the sample's mean scored weight
                weights = scored.mean(dim=1, keepdim=True).expand(-1, c).scatter(1, idx, scored)
        else:
            weights = self._score(x, acts, targets, extra, self.reference_of(cap))
        with torch.autocast(device_type=x.device.type, enabled=False):
            return weighted_sum(weights, acts)

    def select(self, cap: Capture) -> Tensor:
        """``(B, top_k)`` indices of the channels fast mode scores: the largest mean activation per sample."""
        assert self.top_k is not None
        return cap.activations.mean(dim=(2, 3)).topk(self.top_k, dim=1).indices

    def _score(self, x: Tensor, acts: Tensor, targets: Tensor, extra: ExtraInputs | None = None,
               reference: Tensor | None = None) -> Tensor:
        """``(B, k)`` weights: the target-class probability of every masked image, in memory-capped chunks (each
        scored against its sample's ``reference``, for a kind that has one).

        A constant channel gives an all-zero mask, hence the all-zero image whatever the sample: it is
        scored once (once per sample when the model has extra inputs, which can differ per sample), and
        only the other channels' masked images are run (exact, not an approximation). Extra model inputs
        follow each masked image's sample.
        """
        extra = extra or ExtraInputs()
        b, k = acts.shape[:2]
        size = (x.shape[-2], x.shape[-1])
        flat_acts = acts.flatten(0, 1)[:, None]  # (B*k, 1, h, w)
        sample = torch.arange(b, device=x.device).repeat_interleave(k)
        out = torch.empty(b * k, device=x.device, dtype=torch.float32)
        span = flat_acts.flatten(1).amax(dim=1) - flat_acts.flatten(1).amin(dim=1)
        dead = span == 0
        if bool(dead.any()):
            if extra:  # the all-zero image's score can depend on each sample's extra inputs
                rows = sample[dead]
                zero = self.forward_logits(torch.zeros_like(x[rows]), extra.take(rows, b))[:, None]
            else:
                zero_logits = self.forward_logits(torch.zeros_like(x[:1]))  # (1, K, ...)
                zero = zero_logits.expand(int(dead.sum()), *zero_logits.shape[1:])[:, None]
            out[dead] = scorecam_weights(zero, targets[sample[dead]], self.task.target.probability,
                                         rows_of(reference, sample[dead]))[:, 0]
        live = (~dead).nonzero().squeeze(1)
        n = int(live.numel())
        # gradient-free forwards keep no activations: the memory unit is 64 images (the former fixed default)
        proposed = chunk_size(max(b, 64), size[0] * size[1], requested=self.batch_size, device=x.device)

        def step(start: int, stop: int) -> None:
            idx = live[start:stop]
            with torch.autocast(device_type=x.device.type, enabled=False):
                masks = scorecam_masks(flat_acts[idx], size)  # (n, 1, H, W)
            masked = (x[sample[idx]] * masks).to(x.dtype)
            more = extra.take(sample[idx], b)
            logits = self.forward_logits(masked, more) if more else self.forward_logits(masked)
            out[idx] = scorecam_weights(logits[:, None], targets[sample[idx]], self.task.target.probability,
                                        rows_of(reference, sample[idx]))[:, 0]

        self.chunks.run(n, proposed, step, x.device, pad=self.padding(x, extra, b), key=size[0] * size[1])
        return out.view(b, k)


@register_method
class EigenCAM(BaseCAM):
    r"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020): the activation projected on its first principal component.

    Per sample, the ``(hw, C)`` activation matrix is centred over positions; the map is its projection on the
    first right singular vector (from a batched ``eigh`` of the smaller Gram matrix, the same vector as an
    SVD gives), ReLU'd. Class
    independent (no gradients, ``targets`` only pick the logits/targets reported). Same as pytorch-grad-cam's
    ``EigenCAM`` except for the sign: pytorch-grad-cam keeps LAPACK's arbitrary sign (its map can come out
    negated, i.e. ReLU of the wrong half), we choose the sign whose map correlates non-negatively with the
    mean activation $\frac1C\sum_k A^k$ (see `lightning_cam.functional.eigencam_map`).

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> EigenCAM(net, "1")(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """

    name = "eigencam"
    aliases = ("eigen-cam",)
    needs_grad = False

    def raw_map(self, cap: Capture) -> Tensor:
        return eigencam_map(cap.activations)


@register_method
class FakeCAM(BaseCAM):
    """Fake-CAM (Poppi et al., CVPRW 2021): all ones except the top-left pixel, which is 0.

    The sanity baseline that fools Average Drop and Increase in Confidence (it keeps almost the whole
    image). ``maps`` is exactly that pattern at ``(H, W)``; ``low_res`` is the same pattern at the target
    layer's resolution (at ``(H, W)`` without a target layer). One forward is still run for the logits.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> FakeCAM(net)(torch.randn(1, 3, 2, 2))
        tensor([[[0., 1.],
                 [1., 1.]]])
    """

    name = "fakecam"
    aliases = ("fake-cam", "fake")
    needs_grad = False
    can_be_blank = False
    layer_optional = True

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | None = None, reshape: Reshape = None, *,
                 output: Output = None, task: Task | str = "multiclass") -> None:
        super().__init__(model, target_layer, reshape, output=output, task=task)

    def needs(self) -> Need:
        return "logits" if self.target_layer is None else "activation"

    def derive(self, cap: Capture, x: Tensor, extra: ExtraInputs) -> Tensor:
        if self.target_layer is None:
            size = (x.shape[-2], x.shape[-1])
        else:
            size = (cap.activations.shape[-2], cap.activations.shape[-1])
        return fakecam_map(x.shape[0], size, device=x.device)

    def postprocess(self, raw: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        return fakecam_map(raw.shape[0], size, device=raw.device), raw
