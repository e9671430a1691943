"""Ablation-CAM against pytorch-grad-cam's AblationCAM (on layers after a ReLU, where the ablation values agree)."""

from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam import AblationCAM as PgcAblationCAM

from lightning_cam.functional import ablation_weights
from lightning_cam.methods import MethodGroup, get_method
from lightning_cam.methods.ablationcam import AblationCAM
from lightning_cam.methods.gradient import GradCAM

from .conftest import assert_maps_match, layer_output, make_resnet, parity_batches, parity_model, pgc_low_res


def test_ablationcam_matches_pytorch_grad_cam_on_the_vgg() -> None:
    model = parity_model("vgg")
    informative = 0
    for i, x in enumerate(parity_batches(64)):
        targets = None if i == 0 else [int(t) for t in torch.arange(x.shape[0]) % 5]
        res = AblationCAM(model, "features.9", batch_size=13).explain(x, None if targets is None
                                                                      else torch.tensor(targets))
        peer, used = pgc_low_res(PgcAblationCAM, model, "features.9", x, targets, batch_size=32)
        assert torch.equal(res.targets, used)
        informative += assert_maps_match(res.low_res, peer)
    assert informative >= 3


def test_ablationcam_matches_pytorch_grad_cam_on_a_resnet() -> None:
    model = make_resnet()
    x = parity_batches(64)[0][:1]
    assert float(layer_output(model, "layer4", x).min()) == 0.0  # after a ReLU: both libraries ablate to 0
    res = AblationCAM(model, "layer4", batch_size=128).explain(x)
    peer, _ = pgc_low_res(PgcAblationCAM, model, "layer4", x, None, batch_size=128)
    assert assert_maps_match(res.low_res, peer) == 1


def test_the_weights_are_the_relative_drops_of_the_zeroed_channels() -> None:
    """Checked by hand on the VGG: channel k zeroed after the layer, the logit read, the formula applied."""
    model = parity_model("vgg")
    x = parity_batches(64)[0][:2]
    a = layer_output(model, "features.9", x)
    with torch.no_grad():
        clean = model(x)
        t = clean.argmax(1)
        drops = []
        for k in range(a.shape[1]):
            handle = model.features[9].register_forward_hook(
                lambda m, i, o, k=k: o * (torch.arange(o.shape[1]) != k).view(1, -1, 1, 1))
            drops.append(model(x).gather(1, t.view(-1, 1))[:, 0])
            handle.remove()
    w = ablation_weights(clean.gather(1, t.view(-1, 1))[:, 0], torch.stack(drops, 1))
    expected = torch.relu(torch.einsum("bc,bchw->bhw", w, a))
    torch.testing.assert_close(AblationCAM(model, "features.9").explain(x).low_res, expected, rtol=1e-4, atol=1e-5)


def test_ablationcam_in_a_group_equals_alone_and_in_any_chunking() -> None:
    model = parity_model("vgg")
    x = parity_batches(64)[0]
    alone = AblationCAM(model, "features.9", batch_size=7).explain(x).maps
    torch.testing.assert_close(AblationCAM(model, "features.9", batch_size=64).explain(x).maps, alone)
    group = MethodGroup({"ablationcam": AblationCAM(model, "features.9"), "gradcam": GradCAM(model, "features.9")})
    torch.testing.assert_close(group.explain(x)["ablationcam"].maps, alone)
    assert get_method("Ablation-CAM") is AblationCAM


@pytest.mark.parametrize("layout", ["nhwc"])
def test_the_channel_is_zeroed_in_the_layers_own_layout(layout: str) -> None:
    """A channels-last layer: the ablated channel is the last dim's, so the map equals the channels-first one."""

    class ChannelsLast(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x).permute(0, 2, 3, 1)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.body = ChannelsLast(torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU()))
            self.head = torch.nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x).mean(dim=(1, 2)))

    net = Net().eval()
    x = parity_batches(16)[0]
    last = AblationCAM(net, "body", reshape=layout).explain(x)
    first = AblationCAM(net, "body.inner").explain(x)
    torch.testing.assert_close(last.low_res, first.low_res, rtol=1e-5, atol=1e-6)


def test_the_layers_own_work_is_skipped_in_the_ablated_forwards_and_its_forward_restored() -> None:
    model = parity_model("vgg")
    layer = model.features[9]
    calls = []
    layer.register_forward_pre_hook(lambda m, a: calls.append(1))
    inner = torch.nn.ReLU.forward
    runs = []

    def counted(self: torch.nn.Module, t: torch.Tensor) -> torch.Tensor:
        runs.append(1)
        return inner(self, t)

    layer.forward = counted.__get__(layer)  # an instance forward of its own, which must come back
    x = parity_batches(64)[0]
    AblationCAM(model, "features.9", batch_size=8).explain(x)
    assert len(runs) == 2  # the clean capture and the one forward for the layer's output, not 3 x 32 more
    assert len(calls) == 2 + 3 * 32 // 8  # every chunk still calls the module (its hooks run)
    assert layer.__dict__["forward"].__func__ is counted
