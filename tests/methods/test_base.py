"""The engine's promises: model left exactly as found, hooks removed, grad modes, batching, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lightning_cam.methods import (
    CAM,
    EigenCAM,
    FakeCAM,
    GradCAM,
    GradCAMPlusPlus,
    ScoreCAM,
    SmoothGradCAMPlusPlus,
    available_methods,
    get_method,
)
from tests.helpers import MethodOptions, cnn_methods

from .conftest import make_vgg, structured_images

KW = MethodOptions({"scorecam": {"batch_size": 64}, "smoothgradcam_pp": {"num_samples": 3}})
LAYER = "features.9"


def _make(name: str, model: nn.Module, layer: str = LAYER, **extra: object):
    return get_method(name)(model, layer, **{**KW.of(name), **extra})


def _snapshot(model: nn.Module) -> dict[str, object]:
    return {
        "training": {n: m.training for n, m in model.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "grad": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "hooks": {
            n: (dict(m._forward_hooks), dict(m._backward_hooks), dict(m._forward_pre_hooks),
                dict(getattr(m, "_forward_hooks_with_kwargs", {})), dict(getattr(m, "_backward_pre_hooks", {})))
            for n, m in model.named_modules()
        },
    }


def _assert_same(before: dict, after: dict) -> None:
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert before["hooks"] == after["hooks"]
    for key in ("grad", "params", "buffers"):
        for n, v in before[key].items():
            w = after[key][n]
            assert (v is None) == (w is None), f"{key} of {n} changed"
            if v is not None:
                assert torch.equal(v, w), f"{key} of {n} changed"


def _dressed_model() -> nn.Module:
    """A VGG in train mode with mixed requires_grad, existing .grad values and user hooks."""
    model = make_vgg().train()
    model.features[0].weight.requires_grad_(False)
    model.fc.weight.grad = torch.full_like(model.fc.weight, 0.5)
    model.features[4].register_forward_hook(lambda m, i, o: None)
    model.features[9].register_forward_pre_hook(lambda m, i: None)
    model.fc.register_full_backward_hook(lambda m, gi, go: None)
    model.features[1].eval()  # a submodule with its own mode
    return model


@pytest.mark.parametrize("name", cnn_methods())
def test_model_left_exactly_as_found(name: str) -> None:
    model = _dressed_model()
    x = structured_images(2, 32, seed=2)
    before = _snapshot(model)
    res = _make(name, model).explain(x)
    _assert_same(before, _snapshot(model))
    assert torch.isfinite(res.maps).all()


@pytest.mark.parametrize("name", ["gradcam", "scorecam", "smoothgradcam++"])
def test_hooks_removed_and_mode_restored_after_exception(name: str) -> None:
    model = _dressed_model()
    before = _snapshot(model)

    class Boom(RuntimeError):
        pass

    calls = {"n": 0}

    def explode(module: nn.Module, args: object, output: torch.Tensor) -> None:
        calls["n"] += 1
        if calls["n"] >= 2:  # let the hooked pass run, fail in a later one for the multi-pass methods
            raise Boom("boom")

    if name == "gradcam":  # a single pass: fail in it
        calls["n"] = 1
    handle = model.fc.register_forward_hook(explode)
    hooks_with_boom = _snapshot(model)["hooks"]
    with pytest.raises(Boom):
        _make(name, model)(structured_images(2, 32))
    assert _snapshot(model)["hooks"] == hooks_with_boom
    handle.remove()
    _assert_same(before, _snapshot(model))
    assert torch.is_grad_enabled()


def test_eval_mode_during_the_call_and_batchnorm_stats_untouched() -> None:
    model = make_vgg().train()
    seen = []
    model.features[1].register_forward_hook(lambda m, i, o: seen.append(m.training))
    stats = model.features[1].running_mean.clone()
    GradCAM(model, LAYER)(structured_images(3, 32))
    assert seen == [False] and model.training and model.features[1].training
    assert torch.equal(stats, model.features[1].running_mean)


@pytest.mark.parametrize("name", cnn_methods())
def test_batch_equals_samples_one_by_one(name: str) -> None:
    model = make_vgg()
    x = structured_images(4, 32, seed=7)
    targets = torch.tensor([0, 3, 1, 4])
    cam = _make(name, model)
    batched = cam.explain(x, targets)
    for i in range(4):
        single = cam.explain(x[i : i + 1], targets[i : i + 1])
        torch.testing.assert_close(single.maps[0], batched.maps[i], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(single.logits[0], batched.logits[i], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["gradcam", "gradcam++", "layercam", "hirescam", "xgradcam", "smoothgradcam++"])
def test_frozen_model_no_grad_and_inference_mode(name: str) -> None:
    model = make_vgg()
    x = structured_images(3, 32, seed=4)
    ref = _make(name, model).explain(x)
    assert ref.maps.amax(dim=(1, 2)).gt(0).all(), "reference maps are degenerate: the test would prove nothing"
    frozen = copy.deepcopy(model).requires_grad_(False)
    torch.testing.assert_close(_make(name, frozen)(x), ref.maps, rtol=1e-5, atol=1e-6)
    assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())
    with torch.no_grad():
        torch.testing.assert_close(_make(name, model)(x), ref.maps, rtol=1e-5, atol=1e-6)
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        xi = x.clone()  # an inference tensor
        out = _make(name, model).explain(xi)
        explicit = _make(name, model).explain(xi, ref.targets.clone())  # inference-mode targets too
        assert torch.is_inference_mode_enabled()
    torch.testing.assert_close(out.maps, ref.maps, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(explicit.maps, ref.maps, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", cnn_methods())
def test_autocast_bfloat16(name: str) -> None:
    model = make_vgg()
    x = structured_images(2, 32, seed=4)
    ref = _make(name, model).explain(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = _make(name, model).explain(x)
    assert res.maps.dtype == torch.float32 and res.low_res.dtype == torch.float32
    assert res.logits.dtype == torch.float32
    assert torch.isfinite(res.maps).all() and res.maps.min() >= 0 and res.maps.max() <= 1
    if name != "scorecam":  # bf16 shifts Score-CAM's probabilities more; its maps still come out valid
        from .conftest import pearson

        informative = ref.maps.flatten(1).std(1) > 0
        assert float(pearson(res.maps[informative], ref.maps[informative]).min()) > 0.9


class ConstantHead(nn.Module):
    """Logits independent of the input: every gradient map is zero."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)) * 0.0)


@pytest.mark.parametrize("name", ["gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "scorecam", "eigencam"])
def test_constant_maps_are_zero_not_nan(name: str) -> None:
    model = ConstantHead()
    with torch.no_grad():
        model.conv.weight.zero_()
        model.conv.bias.fill_(1.0)  # constant activation
    res = _make(name, model, "conv").explain(torch.randn(2, 3, 8, 8))
    assert torch.equal(res.maps, torch.zeros(2, 8, 8))


def test_cam_requires_gap_linear_head() -> None:
    model = make_vgg()
    x = structured_images(2, 32)
    with pytest.raises(ValueError, match="GradCAM"):
        CAM(model, "features.8")(x)  # not the layer that feeds GAP -> Linear
    no_linear = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="no nn.Linear; use GradCAM"):
        CAM(no_linear, "1")
    maxpool_head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="no GAP->Linear head.*Use GradCAM"):
        CAM(maxpool_head, "1")(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="not an nn.Linear"):
        CAM(model, LAYER, fc_layer="features.8")


def test_cam_equals_gradcam_on_gap_linear_head() -> None:
    model = make_vgg()
    x = structured_images(3, 32, seed=9)
    torch.testing.assert_close(CAM(model, LAYER)(x), GradCAM(model, LAYER)(x), rtol=1e-4, atol=1e-5)


def test_unknown_and_ambiguous_layer_names() -> None:
    model = make_vgg()
    with pytest.raises(ValueError, match=r"unknown target_layer 'feature.9'.*'features.9'"):
        GradCAM(model, "feature.9")
    wrapper = nn.Module()
    wrapper.a = make_vgg()
    wrapper.b = make_vgg()
    with pytest.raises(ValueError, match=r"ambiguous.*a.features.9.*b.features.9.*full dotted name"):
        GradCAM(wrapper, "features.9")
    single = nn.Module()
    single.net = make_vgg()
    assert GradCAM(single, "features.9").target_layer_name == "net.features.9"  # unique suffix
    with pytest.raises(ValueError, match="not a submodule"):
        GradCAM(model, nn.Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match="dotted module name"):
        GradCAM(model, 3)  # type: ignore[arg-type]


class TupleLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


class TokenNet(nn.Module):
    """A toy transformer-ish net: patch tokens (+ class token) -> a block -> class-token head."""

    def __init__(self, cls_token: bool = True) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.cls_token = cls_token
        self.block = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8), nn.GELU())
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)  # (B, N, C)
        if self.cls_token:
            t = torch.cat([t.mean(1, keepdim=True), t], dim=1)
        t = self.block(t)
        return self.head(t.mean(1))


def test_unsupported_layer_outputs() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), TupleLayer())
    wrapped = nn.Sequential()
    wrapped.add_module("body", nn.Conv2d(3, 4, 3))
    wrapped.add_module("pair", TupleLayer())

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(3, 4, 3)
            self.pair = TupleLayer()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.pair(self.body(x))[0].mean(dim=(2, 3)))

    with pytest.raises(TypeError, match="returned tuple, not a tensor"):
        GradCAM(Net(), "pair")(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"shape \(2, 5, 8\).*reshape='vit'"):
        GradCAM(TokenNet(), "block")(torch.randn(2, 3, 8, 8))
    del model, wrapped


@pytest.mark.parametrize("cls_token", [True, False])
def test_vit_reshape_and_callable(cls_token: bool) -> None:
    torch.manual_seed(0)
    net = TokenNet(cls_token).eval()
    x = torch.randn(2, 3, 16, 16)
    res = GradCAM(net, "block", reshape="vit").explain(x)
    assert res.low_res.shape == (2, 4, 4) and res.maps.shape == (2, 16, 16)

    def by_hand(t: torch.Tensor) -> torch.Tensor:
        t = t[:, 1:] if cls_token else t
        return t.transpose(1, 2).reshape(t.shape[0], -1, 4, 4)

    torch.testing.assert_close(GradCAM(net, "block", reshape=by_hand).explain(x).low_res, res.low_res)
    with pytest.raises(ValueError, match="reshape must be None, 'vit' or a callable"):
        GradCAM(net, "block", reshape="swin")  # type: ignore[arg-type]


def test_input_errors() -> None:
    model = make_vgg()
    cam = GradCAM(model, LAYER)
    x = structured_images(2, 32)
    with pytest.raises(ValueError, match=r"4-D \(B, C, H, W\).*unsqueeze\(0\)"):
        cam(x[0])
    with pytest.raises(ValueError, match=r"floating-point.*images.float\(\)"):
        cam((x * 100).to(torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        cam(x.numpy())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty batch"):
        cam(x[:0])
    with pytest.raises(ValueError, match=r"out of range for a model with 5 classes: got \[7\].*\[0, 4\]"):
        cam(x, torch.tensor([1, 7]))
    with pytest.raises(ValueError, match=r"out of range.*\[-1\]"):
        cam(x, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="3 entries but the batch has 2 images"):
        cam(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"integer class indices.*float32.*targets.long\(\)"):
        cam(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"1-D \(B,\).*view\(-1\)"):
        cam(x, torch.tensor([[0], [1]]))
    # accepted forms
    assert cam.explain(x, 2).targets.tolist() == [2, 2]
    assert cam.explain(x, [0, 1]).targets.tolist() == [0, 1]
    assert cam.explain(x, torch.tensor([3, 4], dtype=torch.int32)).targets.dtype == torch.long


def test_model_output_and_unused_layer_errors() -> None:
    class TupleOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.conv(x).mean(dim=(2, 3)), x

    with pytest.raises(TypeError, match=r"returned a tuple of 2; CAM methods need .*output=0"):
        GradCAM(TupleOut(), "conv")(torch.randn(1, 3, 8, 8))

    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)
            self.spare = nn.Conv2d(3, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean(dim=(2, 3))

    with pytest.raises(RuntimeError, match="was not called"):
        GradCAM(Unused(), "spare")(torch.randn(1, 3, 8, 8))


def test_registry() -> None:
    assert available_methods() == [
        "cam", "gradcam", "gradcam_pp", "smoothgradcam_pp", "xgradcam",
        "layercam", "hirescam", "scorecam", "eigencam", "fakecam",
        # the modules loaded after the design table's, in name order (ablationcam, elementwise, fem, finercam, ...)
        "ablationcam", "gradcam_elementwise", "eigengradcam", "fem", "finercam", "fullgrad", "kpcacam", "legrad",
        "randomcam", "refinecam", "sscam", "iscam", "segeigencam", "shapleycam",
    ]
    assert get_method("Grad-CAM++") is GradCAMPlusPlus
    assert get_method("grad_cam_pp") is GradCAMPlusPlus
    assert get_method("GRADCAM") is GradCAM
    assert get_method("Smooth Grad-CAM++") is SmoothGradCAMPlusPlus
    assert get_method("score-cam") is ScoreCAM and get_method("EigenCAM") is EigenCAM
    assert get_method(FakeCAM) is FakeCAM
    for name in available_methods():
        assert get_method(name).name == name
    with pytest.raises(ValueError, match=r"unknown CAM method 'gradkam'; valid names: cam, gradcam, gradcam_pp"):
        get_method("gradkam")
    assert [get_method(n).needs_grad for n in ("cam", "eigencam", "scorecam", "fakecam")] == [False] * 4
    grad_methods = ("gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam", "hirescam")
    assert all(get_method(n).needs_grad for n in grad_methods)


def test_fakecam() -> None:
    model = make_vgg()
    x = structured_images(2, 16)
    res = FakeCAM(model).explain(x)
    expected = torch.ones(2, 16, 16)
    expected[:, 0, 0] = 0
    assert torch.equal(res.maps, expected)
    with torch.no_grad():
        assert torch.equal(res.targets, model(x).argmax(1))
    layered = FakeCAM(model, LAYER).explain(x)
    assert torch.equal(layered.maps, expected) and layered.low_res.shape == (2, 4, 4)


def test_smoothgradcampp_rng_is_private_and_reproducible() -> None:
    model = make_vgg()
    x = structured_images(3, 32, seed=8)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    cam = SmoothGradCAMPlusPlus(model, LAYER, num_samples=4, seed=1)
    a = cam(x)
    assert torch.equal(torch.get_rng_state(), state), "the global RNG was used"
    assert torch.equal(cam(x), a)
    assert not torch.equal(SmoothGradCAMPlusPlus(model, LAYER, num_samples=4, seed=2)(x), a)
    # chunking does not change the result
    torch.testing.assert_close(SmoothGradCAMPlusPlus(model, LAYER, num_samples=4, seed=1, batch_size=5)(x), a)
    # std=0: exactly Grad-CAM++
    torch.testing.assert_close(
        SmoothGradCAMPlusPlus(model, LAYER, num_samples=2, std=0.0).explain(x).low_res,
        GradCAMPlusPlus(model, LAYER).explain(x).low_res, rtol=1e-5, atol=1e-7,
    )


def test_smoothgradcampp_is_the_mean_of_gradcampp_over_the_noisy_copies() -> None:
    model = make_vgg()
    x = structured_images(2, 32, seed=8)
    cam = SmoothGradCAMPlusPlus(model, LAYER, num_samples=3, std=0.2, seed=5)
    res = cam.explain(x)
    noise = cam.noise(x)
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    plain = GradCAMPlusPlus(model, LAYER)
    raws = []
    for m in range(3):
        cap = plain.capture(x + 0.2 * span * noise[m], res.targets, "grad")
        raws.append(plain.raw_map(cap))
    torch.testing.assert_close(res.low_res, torch.relu(torch.stack(raws).mean(0)), rtol=1e-5, atol=1e-7)


def test_constructor_argument_errors() -> None:
    model = make_vgg()
    with pytest.raises(ValueError, match="batch_size"):
        ScoreCAM(model, LAYER, batch_size=0)
    with pytest.raises(ValueError, match="top_k"):
        ScoreCAM(model, LAYER, top_k=0)
    with pytest.raises(ValueError, match="num_samples"):
        SmoothGradCAMPlusPlus(model, LAYER, num_samples=0)
    with pytest.raises(TypeError, match="nn.Module"):
        GradCAM("resnet", LAYER)  # type: ignore[arg-type]
