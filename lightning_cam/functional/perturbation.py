"""Pure tensor maths of the Insertion / Deletion metrics (Petsiuk et al., RISE, BMVC 2018).

Pixels are ranked from the most to the least salient (stable order, ties in raster order). With ``N``
pixels and ``steps`` steps the curve is sampled at the pixel counts ``0, s, 2s, …, N`` with
``s = ceil(N / steps)`` (the schedule torchcam's ``DeletionInsertionMetric`` uses). At count ``k``:

* deletion: the ``k`` most salient pixels are replaced by the baseline, the rest is the image;
* insertion: the ``k`` most salient pixels are the image, the rest is the baseline.

The score is the area under the target-probability curve against the perturbed fraction ``k / N``
(trapezoidal rule), which lies in ``[0, 1]``. Deletion's first point and insertion's last point are the
unperturbed image; deletion's last and insertion's first are the full baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_cam.functional.probability import Probability, read_probability, softmax_probability
from lightning_cam.utilities.checks import BASELINES, check_baseline, check_batch_size, check_sigma, check_steps
from lightning_cam.utilities.chunking import chunk_size, run_chunks

__all__ = [
    "BASELINES",
    "curve_auc",
    "insertion_deletion",
    "make_baseline",
    "perturb",
    "perturbation_counts",
    "rank_positions",
]

def perturbation_counts(num_positions: int, steps: int) -> list[int]:
    """Pixel counts at which the curves are sampled: ``0, s, 2s, …`` and ``num_positions``.

    Examples:
        >>> perturbation_counts(10, 4)
        [0, 3, 6, 9, 10]
        >>> perturbation_counts(4, 4)
        [0, 1, 2, 3, 4]
    """
    check_steps(steps)
    if num_positions < 1:
        raise ValueError(f"maps must have at least one pixel, got {num_positions}.")
    step = (num_positions + steps - 1) // steps
    return [*range(0, num_positions, step), num_positions]


def rank_positions(maps: Tensor) -> Tensor:
    """Rank of every pixel, 0 for the most salient; ties keep raster order.

    Args:
        maps: ``(B, H, W)`` maps.

    Returns:
        ``(B, H*W)`` long ranks.

    Examples:
        >>> rank_positions(torch.tensor([[[0.2, 0.9], [0.2, 0.5]]]))
        tensor([[2, 0, 3, 1]])
    """
    order = torch.argsort(maps.flatten(1), dim=1, descending=True, stable=True)
    return torch.argsort(order, dim=1)


def _gaussian_blur(images: Tensor, kernel_size: int, sigma: float) -> Tensor:
    half = kernel_size // 2
    x = torch.arange(kernel_size, device=images.device, dtype=images.dtype) - half
    k = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    k = k / k.sum()
    c = images.shape[1]
    padded = F.pad(images, (half, half, half, half), mode="replicate")
    out = F.conv2d(padded, k.view(1, 1, 1, -1).expand(c, 1, 1, kernel_size), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, kernel_size, 1), groups=c)


def make_baseline(images: Tensor, baseline: str | Tensor = "zeros", sigma: float = 5.0) -> Tensor:
    """The image that pixels are removed into (deletion) or revealed from (insertion).

    * ``"zeros"``: all zeros in the model's input space (the dataset mean when inputs are standardised);
    * ``"blur"``: a Gaussian blur of each image (``sigma`` pixels, kernel ``2·ceil(2σ)+1``, replicate
      padding), as RISE uses for insertion;
    * ``"mean"``: each image's per-channel mean colour;
    * a tensor broadcastable to ``images``.

    Examples:
        >>> make_baseline(torch.arange(4.0).view(1, 1, 2, 2), "mean").flatten()
        tensor([1.5000, 1.5000, 1.5000, 1.5000])
    """
    baseline = check_baseline(baseline)
    if isinstance(baseline, Tensor):
        try:
            return torch.broadcast_to(baseline.to(images), images.shape)
        except RuntimeError as err:
            raise ValueError(
                f"a baseline tensor must broadcast to the images' shape {tuple(images.shape)}, "
                f"got {tuple(baseline.shape)}."
            ) from err
    if baseline == "zeros":
        return torch.zeros_like(images)
    if baseline == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    sigma = check_sigma(sigma)  # baseline == "blur"
    return _gaussian_blur(images, 2 * math.ceil(2 * sigma) + 1, sigma)


def perturb(
    images: Tensor, baseline: Tensor, ranks: Tensor, samples: Tensor, counts: Tensor, insertion: Tensor
) -> Tensor:
    """Build a batch of perturbed inputs, one per (sample, count, curve) job.

    Args:
        images: ``(B, C, H, W)`` images.
        baseline: ``(B, C, H, W)`` baselines (see `make_baseline`).
        ranks: ``(B, H*W)`` from `rank_positions`.
        samples: ``(J,)`` long sample index of each job.
        counts: ``(J,)`` long number of top-ranked pixels perturbed.
        insertion: ``(J,)`` bool, True for the insertion curve (top pixels come from the image).

    Returns:
        ``(J, C, H, W)`` inputs.

    Examples:
        >>> x, base = torch.ones(1, 1, 1, 3), torch.zeros(1, 1, 1, 3)
        >>> r = rank_positions(torch.tensor([[[0.1, 0.9, 0.5]]]))
        >>> perturb(x, base, r, torch.tensor([0, 0]), torch.tensor([1, 1]), torch.tensor([False, True])).flatten(1)
        tensor([[1., 0., 1.],
                [0., 1., 0.]])
    """
    top = ranks[samples] < counts.unsqueeze(1)  # (J, N): the perturbed pixels
    from_image = torch.where(insertion.unsqueeze(1), top, ~top).unsqueeze(1)  # (J, 1, N)
    shape = (samples.shape[0], *images.shape[1:])
    return torch.where(from_image, images.flatten(2)[samples], baseline.flatten(2)[samples]).reshape(shape)


def curve_auc(scores: Tensor, fractions: Tensor) -> Tensor:
    r"""Area under per-sample curves by the trapezoidal rule.

    $$
    \mathrm{AUC} = \sum_t \frac{(s_t + s_{t+1})(f_{t+1} - f_t)}{2}
    $$

    Args:
        scores: ``(B, T)`` curve values (target probabilities).
        fractions: ``(T,)`` increasing abscissae in ``[0, 1]``.

    Examples:
        >>> curve_auc(torch.tensor([[1.0, 0.5, 0.0]]), torch.tensor([0.0, 0.5, 1.0]))
        tensor([0.5000])
    """
    if fractions.numel() == 1:
        return scores[:, 0].float()
    return torch.trapezoid(scores.float(), fractions.float(), dim=1)


def insertion_deletion(
    model: nn.Module,
    images: Tensor,
    maps: Tensor,
    targets: Tensor,
    probs: Tensor,
    which: Collection[str] = ("insertion", "deletion"),
    steps: int = 20,
    baseline: str | Tensor = "zeros",
    sigma: float = 5.0,
    batch_size: int | None = None,
    sample_forward: Callable[[Tensor, Tensor], Tensor] | None = None,
    probability: Probability = softmax_probability,
    reference: Tensor | None = None,
) -> dict[str, Tensor]:
    r"""Insertion and/or deletion AUC of each sample, all perturbed inputs in ``batch_size`` chunks.

    Every (sample, step, curve) job is one perturbed image (`perturb`); the jobs of all samples are
    forwarded ``batch_size`` at a time. Deletion's last and insertion's first point (the full baseline)
    are one shared job; the unperturbed end points are ``probs``, so no forward repeats the clean image.
    Call it under ``torch.no_grad()`` and with the model in eval mode (as ``evaluate_batch`` does).

    Args:
        model: the classifier, ``model(x)`` -> ``(J, K)`` logits.
        images: ``(B, C, H, W)`` inputs in the model's input space.
        maps: ``(B, H, W)`` maps ranking the pixels (finite).
        targets: ``(B,)`` long target classes.
        probs: ``(B,)`` target probabilities ``Y_c`` on the unperturbed images.
        which: the curves to compute, a subset of ``{"insertion", "deletion"}``.
        steps, baseline, sigma: see `perturbation_counts` and `make_baseline`.
        batch_size: perturbed images per forward (memory cap); ``None`` (default): chosen by
            `chunk_size` from ``B`` and ``H * W`` (at most ``B`` images
            per forward, so peak memory stays within 2x a forward of the batch). A chunk that runs out of
            memory is halved and retried.
        sample_forward: called as ``sample_forward(x, sample_indices)`` instead of ``model(x)`` when each
            perturbed image needs inputs of its own sample besides the image (extra model inputs).
        probability: ``probability(logits, targets) -> (B,)``, the target kind's rule the curves follow (the
            softmax by default).
        reference: ``(B, ...)`` what each sample's target is scored against on every step's image, fixed on the
            original (a segmentation pair's region: `TargetKind.reference`), handed to ``probability`` row by row;
            ``None``: none.

    Returns:
        ``{"insertion" / "deletion": (B,) float32 AUC in [0, 1]}`` for the requested curves.

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x, maps = torch.randn(3, 1, 2, 2), torch.rand(3, 2, 2)
        >>> t = torch.zeros(3, dtype=torch.long)
        >>> with torch.no_grad():
        ...     y = softmax_probability(net(x), t)
        ...     out = insertion_deletion(net, x, maps, t, y, steps=2, batch_size=4)
        >>> sorted(out), out["deletion"].shape
        (['deletion', 'insertion'], torch.Size([3]))
    """
    unknown = set(which) - {"insertion", "deletion"}
    if unknown:
        raise ValueError(f"`which` names {sorted(unknown)}; use 'insertion' and/or 'deletion'.")
    b, _, h, w = images.shape
    batch_size = chunk_size(b, h * w, requested=check_batch_size(batch_size, allow_none=True), device=images.device)
    n = h * w
    counts = perturbation_counts(n, steps)
    t = len(counts)
    fractions = torch.tensor(counts, device=images.device, dtype=torch.float32) / n
    # Per-sample job template: (pixel count, insertion?, deletion column, insertion column); -1 = unused.
    template: list[tuple[int, bool, int, int]] = [(n, False, t - 1, 0)]  # the full baseline, shared
    for i in range(1, t - 1):
        if "deletion" in which:
            template.append((counts[i], False, i, -1))
        if "insertion" in which:
            template.append((counts[i], True, -1, i))
    tj = len(template)
    job_counts = torch.tensor([j[0] for j in template], device=images.device).repeat(b)
    job_insert = torch.tensor([j[1] for j in template], device=images.device).repeat(b)
    job_samples = torch.arange(b, device=images.device).repeat_interleave(tj)

    base = make_baseline(images, baseline, sigma=sigma)
    ranks = rank_positions(maps)
    job_probs = torch.empty(b * tj, device=images.device, dtype=torch.float32)

    def step(start: int, stop: int) -> None:
        sl = slice(start, stop)
        batch = perturb(images, base, ranks, job_samples[sl], job_counts[sl], job_insert[sl])
        logits = model(batch) if sample_forward is None else sample_forward(batch, job_samples[sl])
        rows = job_samples[sl]
        job_probs[sl] = read_probability(probability, logits, targets[rows],
                                         None if reference is None else reference[rows])

    def pad() -> None:  # a padding forward of a sharded run (every rank the same forwards), result unused
        model(images[:1]) if sample_forward is None else sample_forward(images[:1], job_samples[:1])

    run_chunks(b * tj, batch_size, step, images.device, pad=pad)
    job_probs = job_probs.view(b, tj)

    out: dict[str, Tensor] = {}
    for name, col, end in (("deletion", 2, 0), ("insertion", 3, t - 1)):
        if name not in which:
            continue
        curve = torch.empty(b, t, device=images.device, dtype=torch.float32)
        curve[:, end] = probs  # the unperturbed image
        jobs = [k for k, job in enumerate(template) if job[col] >= 0]
        curve[:, [template[k][col] for k in jobs]] = job_probs[:, jobs]
        out[name] = curve_auc(curve, fractions)
    return out
