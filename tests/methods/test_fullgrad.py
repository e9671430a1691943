"""FullGrad against pytorch-grad-cam on a ResNet-18 (BatchNorm statistics made non-trivial) and the small VGG."""

from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam import FullGrad as PgcFullGrad
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from lightning_cam.functional.fullgrad import effective_bias
from lightning_cam.methods import GradCAM, MethodGroup
from lightning_cam.methods.fullgrad import FullGrad

from .conftest import assert_maps_match, parity_batches, parity_model


def trained_like(kind: str) -> nn.Module:
    """The parity model with BatchNorm statistics and affine terms as after training (random init makes every
    BatchNorm's effective bias 0, and FullGrad then the input-gradient alone)."""
    model = parity_model(kind)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    return model


@pytest.mark.parametrize("kind,size", [("resnet", 96), ("vgg", 64)])
def test_fullgrad_matches_pytorch_grad_cam(kind: str, size: int) -> None:
    model = trained_like(kind)
    informative = 0
    for x in parity_batches(size):
        res = FullGrad(model).explain(x)
        with PgcFullGrad(model, []) as peer:
            maps = torch.from_numpy(peer(x, [ClassifierOutputTarget(int(t)) for t in res.targets]))
        informative += assert_maps_match(res.maps, maps, min_corr=0.999)
    assert informative >= 4


def test_fullgrad_reads_the_biases_at_each_call_and_leaves_no_trace() -> None:
    model = trained_like("vgg")
    x = parity_batches(64)[0]
    before = FullGrad(model)(x)
    bn = model.features[1]
    bn.running_mean.add_(1.0)  # as training would
    after = FullGrad(model)(x)
    assert not torch.allclose(before, after)
    assert all(p.grad is None for p in model.parameters())
    assert not model.training
    torch.testing.assert_close(effective_bias(bn), bn.bias - bn.running_mean * bn.weight /
                               torch.sqrt(bn.running_var + bn.eps))


def test_fullgrad_with_an_inplace_relu_after_its_batchnorm_and_in_a_group() -> None:
    model = trained_like("resnet")  # ResNet's bn1 is followed by ReLU(inplace=True)
    x = parity_batches(96)[0]
    alone = FullGrad(model, "layer4").explain(x)  # target_layer is ignored
    out = MethodGroup({"fullgrad": FullGrad(model), "gradcam": GradCAM(model, "layer4")}).explain(x)
    torch.testing.assert_close(out["fullgrad"].maps, alone.maps)
    assert alone.low_res.shape == alone.maps.shape
    assert torch.equal(out["fullgrad"].targets, out["gradcam"].targets)
