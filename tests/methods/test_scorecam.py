"""Score-CAM: batching over samples x channels, the memory cap, OOM back-off and the top-k fast mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_cam.data.shapes import ShapesDataset
from lightning_cam.methods import ScoreCAM
from lightning_cam.models import GAPClassifier

from .conftest import make_vgg, pearson, structured_images

LAYER = "features.9"
MEAN_FILL_SAFE = 0.95


def _inputs() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.cat([structured_images(3, 64, seed=11), torch.randn(2, 3, 64, 64, generator=g)])


def _live_channels(model: nn.Module, x: torch.Tensor) -> int:
    """How many (sample, channel) activation maps at LAYER are not constant (their masks are not all zero)."""
    out: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
        out["a"] = output.detach().clone()

    handle = dict(model.named_modules())[LAYER].register_forward_hook(hook)
    with torch.no_grad():
        model(x)
    handle.remove()
    flat = out["a"].flatten(2)
    return int((flat.amax(2) > flat.amin(2)).sum())


def test_chunking_does_not_change_the_maps() -> None:
    model = make_vgg()
    x = structured_images(2, 32, seed=11)
    ref = ScoreCAM(model, LAYER, batch_size=1000).explain(x)
    for bs in (7, 32):
        torch.testing.assert_close(ScoreCAM(model, LAYER, batch_size=bs).explain(x).low_res, ref.low_res)
    torch.testing.assert_close(ScoreCAM(model, LAYER, batch_size=1).explain(x[1:]).low_res, ref.low_res[1:])


def test_memory_cap_is_respected_and_oom_halves_the_chunk() -> None:
    model = make_vgg()
    x = structured_images(2, 32, seed=11)
    ref = ScoreCAM(model, LAYER, batch_size=64).explain(x)
    sizes: list[int] = []

    def cap(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        sizes.append(args[0].shape[0])
        if args[0].shape[0] > 5:
            raise torch.OutOfMemoryError("simulated: chunk too large")

    handle = model.register_forward_pre_hook(cap)
    try:
        sizes.clear()
        res = ScoreCAM(model, LAYER, batch_size=24).explain(x)
    finally:
        handle.remove()
    torch.testing.assert_close(res.low_res, ref.low_res)
    live = _live_channels(model, x)
    dead = 2 * 32 - live
    masked = sizes[1 + (dead > 0) :]  # the hooked clean pass, then the all-zero image if a channel is dead
    assert sum(s for s in masked if s <= 5) == live
    assert masked[:3] == [24, 12, 6]  # 24 -> 12 -> 6 -> 3 after simulated OOMs

    seen = {"calls": 0}

    def always(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen["calls"] += 1
        if seen["calls"] > 1:  # everything after the hooked clean pass
            raise torch.OutOfMemoryError("simulated: nothing fits")

    handle = model.register_forward_pre_hook(always)
    try:
        with pytest.raises(torch.OutOfMemoryError):
            ScoreCAM(model, LAYER, batch_size=4).explain(x)
    finally:
        handle.remove()
    # with a dead channel the single all-zero image fails first (nothing to halve); else chunks of 4, 2, 1
    assert seen["calls"] == (2 if _live_channels(model, x) < 64 else 1 + 3)


def test_an_out_of_memory_back_off_is_remembered_for_the_later_calls() -> None:
    model = make_vgg()
    x = structured_images(2, 32, seed=11)
    sizes: list[int] = []

    def cap(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        sizes.append(args[0].shape[0])
        if args[0].shape[0] > 5:
            raise torch.OutOfMemoryError("simulated: chunk too large")

    cam = ScoreCAM(model, LAYER, batch_size=24)
    handle = model.register_forward_pre_hook(cap)
    try:
        first = cam.explain(x)
        failed_first = sum(s > 5 for s in sizes[1:])
        sizes.clear()
        second = cam.explain(x)
    finally:
        handle.remove()
    torch.testing.assert_close(first.low_res, second.low_res)
    assert failed_first == 3 and max(sizes[1:]) <= 5  # 24, 12, 6 failed once; the second call starts at 3
    assert cam.chunks.caps == {32 * 32: 3}


def test_top_k_fast_mode_stays_close_to_exact() -> None:
    """The docstring's claim on the VGG test model: top_k = C/2 keeps per-sample Pearson >= 0.95."""
    model = make_vgg()
    x = _inputs()
    exact = ScoreCAM(model, LAYER, batch_size=256).explain(x)
    fast = ScoreCAM(model, LAYER, batch_size=256, top_k=16).explain(x)
    assert float(pearson(fast.maps, exact.maps).min()) >= 0.95
    assert torch.equal(fast.targets, exact.targets)
    # k >= C is the exact method
    torch.testing.assert_close(ScoreCAM(model, LAYER, top_k=32).explain(x).low_res, exact.low_res)
    torch.testing.assert_close(ScoreCAM(model, LAYER, top_k=99).explain(x).low_res, exact.low_res)


def test_mean_fill_gives_unscored_channels_the_mean_scored_weight() -> None:
    """fill="mean": L = ReLU(sum_S w_k A^k + mean_S(w) sum_{not S} A^k), the scored weights being the exact ones."""
    model = make_vgg()
    x = _inputs()
    cam = ScoreCAM(model, LAYER, batch_size=256, top_k=4)
    with torch.inference_mode(False):
        cap = cam.capture(x, None, "activation")
        exact_w = cam._score(x, cap.activations, cap.targets)  # (B, C), every channel
    idx = cap.activations.mean((2, 3)).topk(4, dim=1).indices
    scored = exact_w.gather(1, idx)
    expected_w = scored.mean(1, keepdim=True).expand_as(exact_w).scatter(1, idx, scored)
    expected = torch.einsum("bc,bchw->bhw", expected_w, cap.activations).relu()
    torch.testing.assert_close(cam.explain(x).low_res, expected, rtol=1e-4, atol=1e-6)
    zero = ScoreCAM(model, LAYER, batch_size=256, top_k=4, fill="zero").explain(x).low_res
    acts = cap.activations
    kept = torch.einsum("bk,bkhw->bhw", scored, acts.gather(1, idx[:, :, None, None].expand(-1, -1, *acts.shape[2:])))
    torch.testing.assert_close(zero, kept.relu(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="fill must be 'mean'"):
        ScoreCAM(model, LAYER, top_k=4, fill="median")


def _trained_gap() -> nn.Module:
    """A small GAPClassifier trained a few epochs on 32 px Shapes: structured features, seeded, a few seconds."""
    torch.manual_seed(0)
    data = ShapesDataset(256, image_size=32, seed=0)
    x, y = data.normalize(data.images), data.labels
    model = GAPClassifier(num_classes=5, channels=(8, 16, 32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(3):
        for i in range(0, len(y), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    return model.eval()


def test_fast_mode_on_a_trained_model_stays_close_at_an_eighth_of_the_forwards() -> None:
    """The docstring's trade-off on structured features: top_k = C/8 with the mean fill keeps Pearson high."""
    model = _trained_gap()
    val = ShapesDataset(6, image_size=32, seed=123)
    x = val.normalize(val.images)
    exact = ScoreCAM(model, "features.2", batch_size=256).explain(x)
    mean_fill = ScoreCAM(model, "features.2", batch_size=256, top_k=4).explain(x)
    zero_fill = ScoreCAM(model, "features.2", batch_size=256, top_k=4, fill="zero").explain(x)
    r_mean = pearson(mean_fill.maps, exact.maps)
    r_zero = pearson(zero_fill.maps, exact.maps)
    assert float(r_mean.min()) >= MEAN_FILL_SAFE, r_mean
    assert float(r_mean.min()) >= float(r_zero.min()), (r_mean, r_zero)


def test_top_k_scores_only_the_channels_with_the_largest_mean_activation() -> None:
    model = make_vgg()
    x = _inputs()[:2]
    calls: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        ScoreCAM(model, LAYER, batch_size=1000, top_k=5).explain(x)
    finally:
        handle.remove()
    assert calls == [2, 2 * 5]


def test_dead_channels_are_scored_once_and_exactly() -> None:
    model = make_vgg()
    x = structured_images(2, 32, seed=4)
    ref = ScoreCAM(model, LAYER, batch_size=1000).explain(x)
    with torch.no_grad():  # kill 10 of the 32 channels of the target conv
        w, bias = model.features[8].weight, model.features[8].bias
        saved = (w.clone(), bias.clone())
        w[:10] = 0.0
        bias[:10] = -1.0
    calls: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        res = ScoreCAM(model, LAYER, batch_size=1000).explain(x)
    finally:
        handle.remove()
    live = _live_channels(model, x)
    assert live <= 2 * 22
    assert calls == [2, 1, live]  # clean pass, one all-zero image, the live channels
    # the same maps as scoring every masked image (x * 0 for the dead channels)
    acts = {}
    hook = model.features[9].register_forward_hook(lambda m, i, o: acts.update(a=o.detach().clone()) or None)
    with torch.no_grad():
        targets = model(x).argmax(1)
    hook.remove()
    from lightning_cam.functional import scorecam_masks, scorecam_weights, weighted_sum

    a = acts["a"]
    masks = scorecam_masks(a, (32, 32))
    with torch.no_grad():
        logits = torch.stack([model(x[i] * masks[i][:, None]) for i in range(2)])
    expected = torch.relu(weighted_sum(scorecam_weights(logits, targets), a))
    torch.testing.assert_close(res.low_res, expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        w.copy_(saved[0])
        bias.copy_(saved[1])
    del ref
