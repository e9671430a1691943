"""callbacks/bank.py: the bank of two ranks' samples is the bank of one process holding them all; the shift."""

from __future__ import annotations

import threading

import pytest
import torch

from lightning_cam.callbacks.bank import CentroidBank
from lightning_cam.functional.embedding import class_centroids


def _two_ranks(parts: list[tuple[torch.Tensor, torch.Tensor | None]]) -> list[CentroidBank]:
    """Each part on a bank of its own, ended together with a reduce that combines them as the ranks' would."""
    banks = [CentroidBank() for _ in parts]
    for bank, (e, y) in zip(banks, parts):
        bank.add(e, y)
    calls: list[list[torch.Tensor]] = [[] for _ in parts]
    # run the ends in lock-step: each reduce sees every bank's tensor of that call (as a collective does)
    barrier = threading.Barrier(len(parts))
    results: list[float | None] = [None] * len(parts)

    def end(i: int) -> None:
        def reduce(t: torch.Tensor, op: str) -> torch.Tensor:
            calls[i].append(t)
            barrier.wait()
            stacked = torch.stack([c[len(calls[i]) - 1] for c in calls])
            barrier.wait()
            return stacked.sum(0) if op == "sum" else stacked.max(0).values
        results[i] = banks[i].end(reduce, torch.device("cpu"))

    threads = [threading.Thread(target=end, args=(i,)) for i in range(len(parts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return banks


def test_two_ranks_give_the_bank_of_one_process() -> None:
    g = torch.Generator().manual_seed(0)
    e = torch.randn(10, 6, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 3])
    one = CentroidBank()
    one.add(e, y)
    assert one.end(lambda t, op: t, torch.device("cpu")) is None  # no old bank: no shift
    torch.testing.assert_close(one.centroids, class_centroids(e, y, 4))
    # the ranks see different classes (rank 1 no class 1... all but the largest label agree only after the max)
    banks = _two_ranks([(e[:6], y[:6]), (e[6:], y[6:])])
    for bank in banks:
        torch.testing.assert_close(bank.centroids, one.centroids)


def test_a_rank_without_samples_still_joins_and_gets_the_bank() -> None:
    e, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 2])
    banks = _two_ranks([(e, y), (torch.zeros(0, 3), None)])
    torch.testing.assert_close(banks[1].centroids, class_centroids(e, y, 3))


def test_the_shift_is_how_far_the_centroids_moved() -> None:
    bank = CentroidBank()
    bank.add(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    bank.end(lambda t, op: t, torch.device("cpu"))
    bank.add(torch.tensor([[1.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    shift = bank.end(lambda t, op: t, torch.device("cpu"))
    assert shift == pytest.approx((1 - 2**-0.5 + 0.0) / 2)
