"""Quantus's localization family: equal to Quantus 0.6 on the same maps and masks, ties included; the documented
edges (empty mask 0, full mask AUC NaN, NaN map NaN)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lightning_cam.functional import (
    attribution_localisation,
    energy_pointing_game,
    localization_auc,
    relevance_rank_accuracy,
    top_k_intersection,
)

quantus = pytest.importorskip("quantus")


def _data(ties: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    maps = torch.rand(6, 20, 20, generator=g)
    if ties:  # a CAM's ReLU and normalisation leave many equal values
        maps = (maps * 4).round() / 4
    masks = torch.zeros(6, 20, 20, dtype=torch.bool)
    for i in range(6):
        masks[i, i : i + 7, 2 * i : 2 * i + 5 + i] = True
    return maps, masks


def _quantus(metric: object, maps: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    x = np.zeros((maps.shape[0], 3, *maps.shape[1:]), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(metric(model=None, x_batch=x, y_batch=np.zeros(maps.shape[0], int),  # type: ignore[operator]
                                 a_batch=maps[:, None].numpy(), s_batch=masks[:, None].numpy().astype(np.float32)))


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_each_equals_quantus(ties: bool) -> None:
    maps, masks = _data(ties)
    cases = [
        (quantus.RelevanceMassAccuracy(disable_warnings=True), energy_pointing_game(maps, masks)),
        (quantus.AttributionLocalisation(disable_warnings=True), attribution_localisation(maps, masks)),
        (quantus.AUC(disable_warnings=True), localization_auc(maps, masks)),
    ]
    if not ties:  # Quantus ranks ties in numpy's unstable quicksort order: the rank metrics agree on distinct values
        cases += [
            (quantus.RelevanceRankAccuracy(disable_warnings=True), relevance_rank_accuracy(maps, masks)),
            (quantus.TopKIntersection(k=40, disable_warnings=True), top_k_intersection(maps, masks, k=40)),
            (quantus.TopKIntersection(k=40, concept_influence=True, disable_warnings=True),
             top_k_intersection(maps, masks, k=40, concept_influence=True)),
        ]
    for metric, ours in cases:
        np.testing.assert_allclose(ours.numpy(), _quantus(metric, maps, masks), atol=1e-6,
                                   err_msg=type(metric).__name__)


def test_the_rank_metrics_count_ties_in_raster_order() -> None:
    maps = torch.tensor([[[0.5, 0.5], [0.5, 0.0]]])
    masks = torch.tensor([[[False, True], [False, False]]])
    assert relevance_rank_accuracy(maps, masks).tolist() == [0.0]  # K = 1: the first of the tied maxima
    assert top_k_intersection(maps, masks, k=2).tolist() == [0.5]


def test_the_edges() -> None:
    maps = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(0))
    maps[2, 0, 0] = float("nan")
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[1] = True  # the whole image: no negatives for the AUC
    masks[2, :2] = True
    for fn in (relevance_rank_accuracy, top_k_intersection, attribution_localisation, localization_auc):
        out = fn(maps, masks)
        assert out[0].item() == 0.0, fn.__name__  # empty mask
        assert torch.isnan(out[2]), fn.__name__  # NaN map
    assert torch.isnan(localization_auc(maps, masks)[1])
    assert top_k_intersection(maps, masks, k=10_000)[1].item() == 1.0  # k beyond the image: every pixel
    with pytest.raises(ValueError, match="k .* must be an int >= 1"):
        top_k_intersection(maps, masks, k=0)


def test_weighted_attribution_localisation_is_the_papers() -> None:
    maps = torch.tensor([[[1.0, 3.0], [0.0, 0.0]]])
    masks = torch.tensor([[[False, True], [False, False]]])
    torch.testing.assert_close(attribution_localisation(maps, masks, weighted=True), torch.tensor([0.75 / 4]))
