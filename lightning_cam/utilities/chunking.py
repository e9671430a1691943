"""How many images one forward takes when a method or metric runs many derived images: the one rule.

Smooth Grad-CAM++ (``B * n`` noisy copies), Insertion/Deletion (``B * (2 * steps - 1)`` perturbed images)
and Score-CAM (``B * C`` masked images) all run far more images than the batch ``B`` the user forwards.
With ``batch_size=None`` their chunk size comes from `chunk_size`:

$$
\\text{chunk} = \\max\\Big(1,\\ \\min\\big(\\lfloor \\text{factor} \\cdot B \\rfloor,\\
\\lfloor P / (H W) \\rfloor\\big)\\Big)
$$

* the **memory budget**: at most ``factor`` times the user's own batch ``B`` per forward, so the derived
  forwards never hold more activations than ``factor`` of the forwards the user already runs (``factor``
  is 1: peak memory within 2x a forward of the batch, the clean data included);
* the **pixel budget** ``P`` (`PIXELS_PER_FORWARD`): input pixels per forward where a forward is
  efficient. Measured on CPU (ResNet-18, 2 threads): throughput peaks near 300-500k input pixels per
  forward and falls beyond (cache), so 224 px images go 10 per forward, 64 px images 128 (then capped by
  the memory budget). On CUDA larger batches keep paying off, so there the memory budget alone decides.

An explicit ``batch_size`` always wins. `run_chunks` runs the chunks and halves the chunk after an
out-of-memory error (down to one image, then re-raises). Distributed strategies that need every rank to
use the same chunk can wrap `chunk_size` (it is the only place the decision is made).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lightning_cam.utilities.lockstep import chunk_plan

__all__ = ["OOM_ERRORS", "PIXELS_PER_FORWARD", "ChunkMemory", "chunk_size", "run_chunks"]

#: input pixels (H * W, all channels) per forward at which a CPU forward is efficient; see the module doc.
PIXELS_PER_FORWARD = 2**19

#: the exceptions that mean "this chunk did not fit in memory".
OOM_ERRORS: tuple[type[BaseException], ...] = tuple(
    {getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError}
)


def chunk_size(
    batch: int,
    image_pixels: int,
    *,
    requested: int | None = None,
    memory_factor: float = 1.0,
    device: torch.device | str | None = None,
) -> int:
    """Images per forward for derived images of a batch of ``batch`` images of ``image_pixels`` = ``H * W``.

    Args:
        batch: the user's batch size ``B`` (the forward whose memory is the budget's unit).
        image_pixels: ``H * W`` of one image.
        requested: an explicit ``batch_size``; returned unchanged when given.
        memory_factor: images per forward at most ``memory_factor * batch``.
        device: on ``cuda`` the pixel budget is not applied (larger batches stay efficient on a GPU).

    Examples:
        >>> chunk_size(32, 224 * 224), chunk_size(32, 64 * 64), chunk_size(4, 64 * 64), chunk_size(32, 1, requested=7)
        (10, 32, 4, 7)
    """
    if requested is not None:
        return int(requested)
    by_memory = int(memory_factor * max(1, int(batch)))
    if torch.device(device).type == "cuda" if device is not None else False:
        return max(1, by_memory)
    by_pixels = PIXELS_PER_FORWARD // max(1, int(image_pixels))
    return max(1, min(by_memory, by_pixels))


def run_chunks(
    total: int,
    chunk: int,
    step: Callable[[int, int], None],
    device: torch.device | None = None,
    pad: Callable[[], None] | None = None,
) -> int:
    """Call ``step(start, stop)`` over ``range(total)`` in chunks of ``chunk``; after an out-of-memory error the
    chunk is halved and the same range retried (``step`` must write its results only once it succeeded).
    Re-raises the error at a chunk of one. Returns the chunk size that was used last.

    Inside a lock-step (sharded CAM work, `chunk_plan`) every rank
    starts from the same agreed chunk size and pads its loop with ``pad()`` (a throw-away forward) up to the
    agreed number of chunks; a local back-off adds forwards that the lock-step protocol pays for.

    Examples:
        >>> seen = []
        >>> run_chunks(5, 2, lambda a, b: seen.append((a, b)))
        2
        >>> seen
        [(0, 2), (2, 4), (4, 5)]
    """
    chunk, planned = chunk_plan(total, chunk)
    chunk, start, runs = max(1, min(int(chunk), max(int(total), 1))), 0, 0
    while start < total:
        stop = min(start + chunk, total)
        try:
            step(start, stop)
        except OOM_ERRORS:
            if chunk == 1:
                raise
            chunk = max(1, chunk // 2)
            if device is not None and torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
            continue
        start, runs = stop, runs + 1
    while pad is not None and runs < planned:
        pad()
        runs += 1
    return chunk


class ChunkMemory:
    """The chunk size an out-of-memory back-off of `run_chunks` came down to, remembered for the later
    calls of the same method (per image size): a method that ran out of memory once does not start every
    batch at the full size again (and pay the same errors).

    Examples:
        >>> memory = ChunkMemory()
        >>> def step(start, stop):
        ...     if stop - start > 2:
        ...         raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        >>> memory.run(8, 8, step, key=64), memory.run(8, 8, step, key=64), memory.caps
        (2, 2, {64: 2})
    """

    def __init__(self) -> None:
        self.caps: dict[int, int] = {}

    def run(self, total: int, chunk: int, step: Callable[[int, int], None], device: torch.device | None = None,
            pad: Callable[[], None] | None = None, key: int = 0) -> int:
        """`run_chunks` starting from ``chunk`` or the size remembered for ``key`` (the smaller); a
        smaller size reached by a back-off is remembered."""
        proposed = min(int(chunk), self.caps.get(key, int(chunk)))
        used = run_chunks(total, proposed, step, device, pad)
        if used < proposed:
            self.caps[key] = used
        return used
