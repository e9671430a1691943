"""views/strategies.py: a fixed-place strategy is found and named without masks, objects that move are not, the
result does not depend on the order the ranks deliver the maps in, and the options are checked."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lightning_cam.callbacks.faults import Faults
from lightning_cam.callbacks.sinks import PNGDirectorySink
from lightning_cam.callbacks.views.base import ViewContext
from lightning_cam.callbacks.views.strategies import StrategiesView, strategy_tag
from lightning_cam.methods import CAMResult
from lightning_cam.record import CAMBatch
from tests.helpers import record_of

SIZE = 32


def _blob(cy: float, cx: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(float(SIZE)), torch.arange(float(SIZE)), indexing="ij")
    return torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / 18.0)


def _batch(seed: int = 0) -> tuple[CAMBatch, CAMResult]:
    """Class 0: 16 images tagged in the bottom-left corner whose maps look at the tag, 16 whose maps follow their
    object; class 1: 30 images whose maps follow their object (random places and colours)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(62, 3, SIZE, SIZE, generator=g) * 0.6
    maps, labels = [], []
    for i in range(62):
        cy, cx = (4 + 24 * torch.rand(2, generator=g)).tolist()
        colour = torch.rand(3, 1, 1, generator=g)
        obj = _blob(cy, cx) > 0.5
        images[i] = torch.where(obj, colour.expand(3, SIZE, SIZE), images[i])
        if i < 16:  # the tag: the same pixels in every tagged image, and the map looks there
            images[i, :, 26:31, 1:6] = torch.tensor([1.0, 1.0, 1.0]).view(3, 1, 1)
            images[i, :, 27:30, 2:5] = 0.0
            maps.append(_blob(28.0, 3.0))
        else:
            maps.append(_blob(cy, cx))
        labels.append(0 if i < 32 else 1)
    m = torch.stack(maps)
    m = m / m.flatten(1).amax(1).view(-1, 1, 1)
    t = torch.tensor(labels)
    return CAMBatch(images, t), CAMResult(m, m, torch.zeros(62, 2), t)


def _trainer() -> SimpleNamespace:
    strategy = SimpleNamespace(all_gather=lambda t: t, root_device=torch.device("cpu"))
    return SimpleNamespace(strategy=strategy, world_size=1, is_global_zero=True, datamodule=None)


def _run(view: StrategiesView, parts: CAMBatch, result: CAMResult, sinks: list, chunks: int = 1) -> dict[str, float]:
    module = SimpleNamespace(cam_class_names=["square", "circle"], device=torch.device("cpu"))
    view.start(_trainer(), module, lambda x: x)
    for idx in torch.arange(parts.images.shape[0]).chunk(chunks):
        view.observe(record_of("gradcam", parts.take(idx), result.take(idx)))
    logged: dict[str, float] = {}
    view.epoch_end(_trainer(), lambda key, value, **_: logged.update({key: float(value)}), 3, sinks,
                   ["square", "circle"], "cam")
    return logged


def _view(**options: object) -> StrategiesView:
    return StrategiesView(ViewContext(("gradcam",), ("adcc",), 64, "jet", 0.5, Faults("raise")), **options)


def test_a_fixed_place_strategy_is_found_named_and_shown(tmp_path: Path) -> None:
    parts, result = _batch()
    view = _view()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logged = _run(view, parts, result, [PNGDirectorySink(str(tmp_path))])
    assert logged[strategy_tag("gradcam", "alarm")] == 1.0
    assert logged[strategy_tag("gradcam", "fixed", "square")] == pytest.approx(0.5)
    assert logged[strategy_tag("gradcam", "same", "square")] > 0.9
    assert logged[strategy_tag("gradcam", "fixed", "circle")] == 0.0
    assert logged[strategy_tag("gradcam", "same", "circle")] < 0.5  # objects: focused clusters, varying pixels
    assert logged[strategy_tag("gradcam", "count", "square")] >= 2
    (message,) = [str(w.message) for w in caught if "fixed place" in str(w.message)]
    assert "class 'square': 50 % of its 32 scored maps look at one fixed place" in message
    assert "cam/gradcam/strategies" in message
    assert os.path.exists(tmp_path / "cam_gradcam_strategies_step3.png")
    # the same classes keep their strategy at the next run: no second warning (a class *gaining* one warns)
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        _run(view, parts, result, [])
    assert not [w for w in again if "fixed place" in str(w.message)]
    assert view.state_dict() == {"alarmed": {"gradcam": [0]}}


def test_the_result_does_not_depend_on_the_order_the_maps_arrive_in() -> None:
    parts, result = _batch(seed=1)
    first = _run(_view(alarm=False), parts, result, [], chunks=1)
    perm = torch.randperm(62, generator=torch.Generator().manual_seed(2))
    second = _run(_view(alarm=False), parts.take(perm), result.take(perm), [], chunks=3)
    assert first == second


def test_left_out_samples_and_small_classes_are_not_clustered() -> None:
    parts, result = _batch(seed=2)
    maps = result.maps.clone()
    maps[32:] = float("nan")  # every circle left out by the callback
    logged = _run(_view(), parts, CAMResult(maps, maps, result.logits, result.targets), [])
    assert not [k for k in logged if k.endswith("/circle")]
    assert strategy_tag("gradcam", "count", "square") in logged


@pytest.mark.parametrize("options,match", [({"size": 1}, "size"), ({"focus": 0.0}, "focus"), ({"same": 2}, "same"),
                                           ({"min_maps": True}, "min_maps"), ({"min_share": -1}, "min_share")])
def test_options_are_checked(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _view(**options)


def test_keys_are_no_prefix_of_any_other_key() -> None:
    keys = _view().keys(["square", "circle"], with_probe=True)
    keys += ["cam/gradcam/adcc", "cam/gradcam/drift", "cam/gradcam/per_class/adcc/square", "cam/gradcam/strategies"]
    assert not [a for a in keys for b in keys if a != b and b.startswith(a + "/")]


def test_a_method_without_any_map_logs_nothing_not_even_an_alarm_of_zero() -> None:
    view = _view()
    module = SimpleNamespace(cam_class_names=["square", "circle"], device=torch.device("cpu"))
    view.start(_trainer(), module, lambda x: x)
    logged: dict[str, float] = {}
    view.epoch_end(_trainer(), lambda key, value, **_: logged.update({key: float(value)}), 0, [], None, "cam")
    assert logged == {}  # no class analysed: an alarm count of 0 would reassure falsely


def test_max_maps_keeps_the_first_maps_scored() -> None:
    parts, result = _batch(seed=3)
    capped = _run(_view(alarm=False, max_maps=32), parts, result, [], chunks=4)  # the 32 square maps only
    first = _run(_view(alarm=False), parts.take(torch.arange(32)), result.take(torch.arange(32)), [])
    assert capped == first and not [k for k in capped if k.endswith("/circle")]


def test_the_strategies_image_carries_its_legend(tmp_path: Path) -> None:
    """The image written for the user ends with a legend band saying what rows, captions (f, s) and red frames
    mean, with the view's own thresholds."""
    import numpy as np
    from PIL import Image

    from lightning_cam.callbacks.views.strategies import strategies_legend

    parts, result = _batch()
    _run(_view(alarm=False), parts, result, [PNGDirectorySink(str(tmp_path))])
    image = torch.from_numpy(np.asarray(Image.open(tmp_path / "cam_gradcam_strategies_step3.png")).copy())
    legend = strategies_legend(0.8, 0.4)
    assert "f >= 0.80, s >= 0.40" in legend and "f: focus" in legend and "s: sameness" in legend
    band = 13 * (legend.count("\n") + 1) + 4
    text = image[-band:].float()
    assert bool((text.amax(dim=-1) > 200).any())  # white text in the band under the rows


@pytest.mark.parametrize("second_class_strategies", [1, 2])
def test_the_strategies_image_is_as_wide_as_its_widest_row(second_class_strategies: int) -> None:
    """A strategy takes 1 + (at most 2) member columns; columns no row uses are not drawn (they were: 9 columns
    for 5 classes of one strategy each, two thirds of the image blank)."""
    from lightning_cam.callbacks.views.strategies import (
        ClassStrategies,
        Strategy,
        strategies_image,
        strategies_legend,
    )
    from lightning_cam.render import PADDING, text_width

    maps, thumbs = torch.rand(12, 8, 8), torch.randint(0, 255, (12, 3, 32, 32), dtype=torch.uint8)

    def strategy(rows: list[int]) -> Strategy:
        return Strategy(torch.tensor(rows), share=0.5, focus=0.5, same=0.1, mean=maps[rows].mean(0))

    found = [ClassStrategies(0, 6, [strategy([0, 1, 2, 3])]),  # 1 + 2 columns
             ClassStrategies(1, 6, [strategy([6, 7, 8]), strategy([9])][:second_class_strategies])]  # 3, or 3 + 2
    tile = 40
    image = strategies_image(found, maps, thumbs, None, "jet", 0.5, tile=tile)
    columns = 3 if second_class_strategies == 1 else 5
    assert image.shape[-1] == columns * (tile + PADDING) + PADDING
    # with its legend: widened (with background) to the legend's longest line, which is never cut
    legend = strategies_legend(0.8, 0.4)
    framed = strategies_image(found, maps, thumbs, None, "jet", 0.5, tile=tile, legend=legend)
    assert framed.shape[-1] == max(image.shape[-1], text_width(legend, 7.0)) > image.shape[-1]
    assert torch.equal(framed[:, : image.shape[-2], : image.shape[-1]], image)
