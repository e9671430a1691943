"""MethodGroup: one shared pass gives the same maps as separate calls, for every combination of methods."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from torch import nn

from lightning_cam.methods import (
    BaseCAM,
    CAMResult,
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    MethodGroup,
    get_method,
)
from lightning_cam.methods.extra import ExtraInputs
from tests.helpers import MethodOptions, cnn_methods

SMALL = MethodOptions({"scorecam": {"batch_size": 7}, "smoothgradcam_pp": {"num_samples": 3, "batch_size": 4}})


class MetaNet(nn.Module):
    """A GAP classifier with an extra per-sample input that shifts the image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Sequential(nn.Conv2d(6, 5, 3, padding=1), nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        if meta is not None:  # per-sample: it must follow its sample into every derived forward
            x = x + meta[:, None, None, None]
        return self.fc(self.pool(self.conv2(torch.relu(self.conv1(x)))))


def build(model: nn.Module) -> dict[str, BaseCAM]:
    torch.manual_seed(0)
    return {cls.name: cls(model, "conv2", **SMALL.of(cls.name)) for cls in map(get_method, cnn_methods())}  # type: ignore[arg-type]


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 8, 8, generator=g)
    return x, torch.tensor([0.5, -1.0, 2.0, 0.0])


def dead_model() -> MetaNet:
    """Sample 3 of `inputs()` gets an all-zero activation at conv2 (a blank map for every method but Fake-CAM)."""
    torch.manual_seed(0)
    net = MetaNet().eval()
    with torch.no_grad():
        net.conv2[0].bias.fill_(-1e3)  # type: ignore[index,union-attr]
    return net


def same(a: CAMResult, b: CAMResult, name: str) -> None:
    torch.testing.assert_close(a.maps, b.maps, atol=1e-5, rtol=1e-4, msg=lambda m: f"{name} maps: {m}")
    torch.testing.assert_close(a.low_res, b.low_res, atol=1e-5, rtol=1e-4, msg=lambda m: f"{name} low_res: {m}")
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=1e-5)
    assert torch.equal(a.targets, b.targets), name
    assert torch.equal(a.blank, b.blank), name  # type: ignore[arg-type]
    assert a.blank_reason == b.blank_reason, name


@pytest.mark.parametrize("model_fn", [lambda: MetaNet().eval(), dead_model], ids=["random", "blank"])
@pytest.mark.parametrize("targets", [None, torch.tensor([2, 0, 1, 1])], ids=["pred", "given"])
def test_group_equals_separate_calls_for_every_pair_and_random_subsets(model_fn, targets) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = model_fn()
    x, meta = inputs()
    extra = ExtraInputs(kwargs={"meta": meta})
    cams = build(model)
    alone = {name: cam.explain(x, targets, extra=extra) for name, cam in cams.items()}
    names = list(cams)
    rng = random.Random(0)
    subsets = [list(p) for p in itertools.combinations(names, 2)]
    subsets += [rng.sample(names, rng.randint(3, len(names))) for _ in range(6)] + [names]
    for subset in subsets:
        together = MethodGroup({n: cams[n] for n in subset}).explain(x, targets, extra=extra)
        assert list(together) == subset
        for n in subset:
            same(together[n], alone[n], f"{n} in {subset}")
    if model_fn is dead_model:  # the blank flags really are exercised
        assert bool(alone["gradcam"].blank[3]) and not bool(alone["fakecam"].blank.any())


def test_group_shares_one_pass_per_target_layer() -> None:
    model = MetaNet().eval()
    calls: list[str] = []
    for name in ("conv1", "conv2"):
        getattr(model, name).register_forward_hook(lambda *_, n=name: calls.append(n))
    x, meta = inputs()
    cams = {"g2": GradCAM(model, "conv2"), "pp2": GradCAMPlusPlus(model, "conv2"), "eig2": EigenCAM(model, "conv2"),
            "g1": GradCAM(model, "conv1")}
    out = MethodGroup(cams).explain(x, extra={"meta": meta})
    assert calls == ["conv1", "conv2", "conv1", "conv2"]  # two forwards for four methods on two layers
    for n, cam in cams.items():
        same(out[n], cam.explain(x, out[n].targets, extra={"meta": meta}), n)


def test_group_calls_a_method_with_its_own_explain_alone() -> None:
    model = MetaNet().eval()

    class Custom(GradCAM):  # overrides explain: a group never bypasses it (no flag needed)
        def explain(self, images, targets=None, extra=None):  # type: ignore[no-untyped-def,override]
            r = super().explain(images, targets, extra=extra)
            return CAMResult(1 - r.maps, r.low_res, r.logits, r.targets)

    x, _ = inputs()
    out = MethodGroup({"custom": Custom(model, "conv2"), "gradcam": GradCAM(model, "conv2")}).explain(x)
    torch.testing.assert_close(out["custom"].maps, 1 - out["gradcam"].maps, atol=1e-5, rtol=1e-4)
    assert Custom.shares_capture and GradCAM.shares_capture  # the rule reads the override, not the flag


def test_group_rejects_mixed_models_and_duplicate_names() -> None:
    a, b = MetaNet(), MetaNet()
    with pytest.raises(ValueError, match="same model"):
        MethodGroup({"x": GradCAM(a, "conv2"), "y": GradCAM(b, "conv2")})
    with pytest.raises(ValueError, match="two methods are named 'gradcam'"):
        MethodGroup([GradCAM(a, "conv2"), GradCAM(a, "conv1")])
