"""views/gallery.py: the worst-case gallery's slots, its gather across ranks and its score fall-back."""

from __future__ import annotations

import warnings

import torch

from lightning_cam.callbacks.views.gallery import WorstCases, gallery_image
from lightning_cam.methods.result import CAMResult
from lightning_cam.record import CAMBatch


def _batch(n: int, seed: int) -> tuple[CAMBatch, CAMResult, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 12, 12, generator=g)
    maps = torch.rand(n, 12, 12, generator=g)
    logits = torch.randn(n, 4, generator=g)
    labels = torch.randint(0, 4, (n,), generator=g)
    values = {"pointing_game": (torch.rand(n, generator=g) > 0.5).float(),  # many ties: content breaks them
              "complexity": torch.rand(n, generator=g)}
    return CAMBatch(images, labels), CAMResult(maps, maps, logits, logits.argmax(1)), values


def _gallery(batches: list[tuple[CAMBatch, CAMResult, dict[str, torch.Tensor]]], k: int) -> WorstCases:
    wc = WorstCases(["gradcam"], k=k, tile_size=16)
    wc.start(torch.device("cpu"), denormalize=lambda x: x)
    for parts, result, values in batches:
        wc.update("gradcam", parts, result, values)
    return wc


def test_gallery_of_two_ranks_equals_one_rank_over_the_same_samples() -> None:
    batches = [_batch(6, s) for s in range(4)]
    (single,) = _gallery(batches, k=5).gather(lambda t: t)
    rank0, rank1 = _gallery(batches[0::2], k=5), _gallery(batches[1::2], k=5)
    # what all_gather does: every rank's packed slots, concatenated
    packed: list[torch.Tensor] = []
    rank1.gather(lambda t: packed.append(t) or t)
    (both,) = rank0.gather(lambda t: torch.cat([t, packed[0]]))
    assert [s.value for s in single[1]] == [s.value for s in both[1]] == [0.0] * 5
    assert all(torch.equal(a.image, b.image) and torch.equal(a.cam, b.cam) for a, b in zip(single[1], both[1]))
    # the worst are the global worst: no pointing-game hit in the gallery while misses remain elsewhere
    misses = sum(int((v["pointing_game"] == 0).sum()) for _, _, v in batches)
    assert misses >= 5


def test_gallery_falls_back_to_average_drop_and_skips_missing_values() -> None:
    parts, result, _ = _batch(4, 0)
    wc = WorstCases(["gradcam"], k=3, tile_size=16)
    wc.start(torch.device("cpu"), denormalize=lambda x: x)
    wc.update("gradcam", parts, result, {"average_drop": torch.tensor([10.0, float("nan"), 90.0, 50.0])})
    ((_, samples),) = wc.gather(lambda t: t)
    assert [(s.score_name, s.value) for s in samples] == [("drop %", 90.0), ("drop %", 50.0), ("drop %", 10.0)]


def test_a_segmentation_pairs_region_is_kept_with_its_sample_and_outlined() -> None:
    from lightning_cam.render import OUTLINE_COLOR
    from lightning_cam.targets.task import Task

    wc = WorstCases(["gradcam"], k=2, tile_size=16)
    wc.task = Task("segmentation")
    wc.start(torch.device("cpu"), denormalize=lambda x: x.clamp(0, 1))
    logits = torch.zeros(2, 3, 8, 8)
    logits[0, 1, :4] = 5.0  # pair 0 (class 1): the top half
    logits[1, 2, :, :4] = 5.0  # pair 1 (class 2): the left half
    images = torch.full((2, 3, 8, 8), 0.2)
    images[1] += 0.1  # distinct contents
    result = CAMResult(torch.zeros(2, 8, 8), torch.zeros(2, 2, 2), logits, torch.tensor([1, 2]))
    wc.update("gradcam", CAMBatch(images), result, {"pointing_game": torch.tensor([0.0, 1.0])})
    ((_, samples),) = wc.gather(lambda t: t)
    first = samples[0].region  # the worst, pair 0: its region followed it through the packing
    assert first is not None and bool(first[:8].all()) and not bool(first[8:].any())
    image = gallery_image(samples, None, "jet", 0.0)  # alpha 0: the overlay is the input, but for the outline
    white = (image == torch.tensor(OUTLINE_COLOR).view(3, 1, 1)).all(0)
    assert int(white.sum()) > 0


def test_adcc_alone_ranks_the_gallery_and_no_ranking_metric_is_said_when_the_callback_is_built() -> None:
    """metrics=("adcc",): ranked by 1 - ADCC (average_drop is computed for it, but only the requested metrics'
    values reach the views); metrics with none of the scores: a warning at construction, not a silent absence."""
    import pytest

    from lightning_cam import CAMCallback

    parts, result, _ = _batch(6, seed=4)
    adcc = torch.tensor([0.9, 0.1, 0.5, 0.8, 0.3, 0.7])
    gathered = _gallery([(parts, result, {"adcc": adcc, "complexity": torch.rand(6)})], k=2).gather(lambda t: t)
    ((_, worst),) = gathered
    assert [s.score_name for s in worst] == ["ADCC", "ADCC"]
    assert [round(float(s.value), 2) for s in worst] == [0.1, 0.3]
    with pytest.warns(UserWarning, match=r"ranks the samples by one of .*none is among metrics=\['complexity'\]"):
        CAMCallback(metrics=("complexity",))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        CAMCallback(metrics=("complexity",), views=("drift",))  # no gallery: nothing to say
        CAMCallback(metrics=("adcc",))
    assert not [w for w in said if "worst-case gallery" in str(w.message)]
