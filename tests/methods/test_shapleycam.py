"""Shapley-CAM against pytorch-grad-cam on a ResNet-18, the small VGG and a ViT; the Hessian term matters on the
ViT (GELU, softmax, LayerNorm) and vanishes on a ReLU network (piecewise linear: Grad-CAM)."""

from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam import ShapleyCAM as PgcShapleyCAM

from lightning_cam.functional import shapley_gradient
from lightning_cam.methods import GradCAM
from lightning_cam.methods.shapleycam import ShapleyCAM

from .conftest import assert_maps_match, layer_output, parity_batches, parity_model, pgc_low_res, vit_case

#: layers with more than a linear head after them
SETUPS = [("resnet", "layer3", 128), ("vgg", "features.5", 64)]


@pytest.mark.parametrize("kind,layer,size", SETUPS)
def test_shapleycam_matches_pytorch_grad_cam(kind: str, layer: str, size: int) -> None:
    model = parity_model(kind)
    informative = 0
    for x in parity_batches(size):
        res = ShapleyCAM(model, layer).explain(x)
        peer, used = pgc_low_res(PgcShapleyCAM, model, layer, x, None)
        assert torch.equal(res.targets, used)
        informative += assert_maps_match(res.low_res, peer, min_corr=0.999)
    assert informative >= 3


def test_shapleycam_is_gradcam_on_a_relu_network() -> None:
    model = parity_model("resnet")
    x = parity_batches(128)[0]
    torch.testing.assert_close(ShapleyCAM(model, "layer3")(x), GradCAM(model, "layer3")(x))


def test_shapleycam_on_a_vit_where_the_hessian_term_matters() -> None:
    model, layer, reshape, x = vit_case()
    with pytest.raises(RuntimeError, match="second derivatives.*fused_attn = False"):
        ShapleyCAM(model, layer)(x)  # timm's fused attention kernel has no double backward
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    res = ShapleyCAM(model, layer).explain(x)
    # pytorch-grad-cam's ShapleyCAM refuses a reshape_transform (its CAM image gets the token tensor), so the
    # reference is torch's own Hessian-vector product of the score as a function of the layer's tokens
    module = model.get_submodule(layer)
    tokens = layer_output(model, layer, x)
    targets = res.targets

    def score(a: torch.Tensor) -> torch.Tensor:
        handle = module.register_forward_hook(lambda _m, _i, _o: a)
        try:
            return model(x).gather(1, targets[:, None]).sum()
        finally:
            handle.remove()

    _, hvp = torch.autograd.functional.hvp(score, tokens, tokens)
    grad = torch.autograd.functional.jacobian(score, tokens)
    shapley = reshape(grad - 0.5 * hvp)
    expected = torch.relu((shapley.mean(dim=(2, 3))[:, :, None, None] * reshape(tokens)).sum(1))
    assert assert_maps_match(res.low_res, expected, min_corr=0.999) == 2
    gradcam = GradCAM(model, layer).explain(x).low_res
    assert not torch.allclose(res.low_res, gradcam, atol=1e-3)


def test_shapley_gradient_is_the_gradient_minus_half_the_hessian_vector_product() -> None:
    a = torch.tensor([[1.0, -2.0, 3.0]], requires_grad=True)
    m = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]])
    score = 0.5 * (a @ m @ a.T).sum() + a.sum()  # gradient m a + 1, Hessian m
    expected = (m @ a.detach().T).T + 1 - 0.5 * (m @ a.detach().T).T
    torch.testing.assert_close(shapley_gradient(score, a), expected)
    assert shapley_gradient(torch.tensor(1.0, requires_grad=True), a) is None
