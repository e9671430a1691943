"""Chunk sizes from the input size and a memory budget: the defaults keep peak memory within 2x a forward.

Peak memory is measured by tensor accounting (a ``TorchDispatchMode`` that tracks the bytes of every live
tensor storage created by an operator), not by wall clock, so it is exact and load-independent.
"""

from __future__ import annotations

import weakref
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from lightning_cam import evaluate_batch
from lightning_cam.functional.perturbation import insertion_deletion
from lightning_cam.methods import GradCAM, SmoothGradCAMPlusPlus
from lightning_cam.targets.task import target_probability
from lightning_cam.utilities.chunking import PIXELS_PER_FORWARD, chunk_size, run_chunks


class PeakMemory(TorchDispatchMode):
    """Peak bytes of the tensor storages created inside the mode and still alive."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage pointer -> [bytes, tensors alive]
        self.now = self.peak = 0

    def _release(self, ptr: int) -> None:
        entry = self.live[ptr]
        entry[1] -= 1
        if entry[1] == 0:
            self.now -= entry[0]
            del self.live[ptr]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                ptr, size = storage.data_ptr(), storage.nbytes()
                if ptr == 0:
                    continue
                if ptr not in self.live:
                    self.live[ptr] = [size, 0]
                    self.now += size
                    self.peak = max(self.peak, self.now)
                self.live[ptr][1] += 1
                weakref.finalize(t, self._release, ptr)
        return out


def peak(fn: Any) -> int:
    with PeakMemory() as mode:
        fn()
    return mode.peak


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5),
    ).eval()


def test_chunk_size_rule() -> None:
    assert chunk_size(32, 224 * 224) == PIXELS_PER_FORWARD // (224 * 224)  # the pixel budget
    assert chunk_size(4, 32 * 32) == 4  # the memory budget: at most the batch itself
    assert chunk_size(4, 32 * 32, memory_factor=2.0) == 8 and chunk_size(4, 10**7) == 1
    assert chunk_size(4, 32 * 32, requested=50) == 50  # an explicit batch_size wins
    assert chunk_size(64, 224 * 224, device="cuda") == 64  # on a GPU only the memory budget


def test_run_chunks_halves_after_out_of_memory() -> None:
    done: list[tuple[int, int]] = []

    def step(a: int, b: int) -> None:
        if b - a > 3:
            raise torch.OutOfMemoryError("simulated")
        done.append((a, b))

    assert run_chunks(10, 8, step) == 2 and done == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    with pytest.raises(torch.OutOfMemoryError):
        run_chunks(3, 1, lambda a, b: (_ for _ in ()).throw(torch.OutOfMemoryError("none fits")))


def test_smooth_gradcampp_default_peak_memory_within_two_forwards() -> None:
    model, x = net(), torch.randn(4, 3, 48, 48)
    forward = peak(lambda: GradCAM(model, "6")(x))  # one forward + the CAM backward of the batch
    default = peak(lambda: SmoothGradCAMPlusPlus(model, "6", num_samples=8)(x))
    all_at_once = peak(lambda: SmoothGradCAMPlusPlus(model, "6", num_samples=8, batch_size=32)(x))
    assert default <= 2 * forward, (default, forward)
    assert all_at_once > 4 * forward  # what the former default (all n * B copies at once) cost
    torch.testing.assert_close(SmoothGradCAMPlusPlus(model, "6", num_samples=8)(x),
                               SmoothGradCAMPlusPlus(model, "6", num_samples=8, batch_size=32)(x))


def test_insertion_deletion_default_peak_memory_within_two_forwards() -> None:
    model, x = net(), torch.randn(4, 3, 48, 48)
    maps = torch.rand(4, 48, 48)
    with torch.no_grad():
        logits = model(x)
        t = logits.argmax(1)
        probs = target_probability(logits, t)
        forward = peak(lambda: model(x))
        default = peak(lambda: insertion_deletion(model, x, maps, t, probs, steps=20))
        big = peak(lambda: insertion_deletion(model, x, maps, t, probs, steps=20, batch_size=32))
        same = insertion_deletion(model, x, maps, t, probs, steps=20, batch_size=32)
        ours = insertion_deletion(model, x, maps, t, probs, steps=20)
    assert default <= 2 * forward, (default, forward)
    assert big > 3 * forward
    for k in ours:
        torch.testing.assert_close(ours[k], same[k])
    values = evaluate_batch(GradCAM(model, "6"), x, metrics=("insertion", "deletion"))  # the default path
    assert set(values) == {"insertion", "deletion"}
