"""Finer-CAM against pytorch-grad-cam's FinerCAM, on a ResNet-18, a small VGG and a ViT."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pytorch_grad_cam import FinerCAM as PgcFinerCAM
from pytorch_grad_cam import LayerCAM as PgcLayerCAM

from lightning_cam.functional import finer_comparisons, finer_score
from lightning_cam.methods import GradCAM, MethodGroup, get_method
from lightning_cam.methods.finercam import FinerCAM

from .conftest import PARITY_SETUPS, assert_maps_match, layer_output, parity_batches, parity_model, vit_case


def _peer(model: torch.nn.Module, layer: str, x: torch.Tensor, size: tuple[int, int], alpha: float = 1.0,
          reshape: Any = None, **kwargs: Any) -> torch.Tensor:
    peer = PgcFinerCAM(model, [model.get_submodule(layer)], reshape_transform=reshape, **kwargs)
    with peer:
        peer.base_cam.get_target_width_height = lambda _input: (size[1], size[0])  # compare before upsampling
        return torch.from_numpy(peer(x, alpha=alpha))


@pytest.mark.parametrize("alpha", [1.0, 0.6])
@pytest.mark.parametrize("kind,layer,size", PARITY_SETUPS)
def test_finercam_matches_pytorch_grad_cam(kind: str, layer: str, size: int, alpha: float) -> None:
    model = parity_model(kind)
    informative = 0
    for x in parity_batches(size):
        res = FinerCAM(model, layer, alpha=alpha).explain(x)
        grid = tuple(layer_output(model, layer, x[:1]).shape[-2:])
        informative += assert_maps_match(res.low_res, _peer(model, layer, x, grid, alpha))  # type: ignore[arg-type]
    assert informative >= 3


def test_finercam_with_another_base_matches_the_peer_with_that_base() -> None:
    model = parity_model("vgg")
    x = parity_batches(64)[0]
    res = FinerCAM(model, "features.9", base="layercam").explain(x)
    peer = _peer(model, "features.9", x, (16, 16), base_method=PgcLayerCAM)
    assert assert_maps_match(res.low_res, peer) == 3


def test_finercam_on_a_vit() -> None:
    model, layer, reshape, x = vit_case()
    res = FinerCAM(model, layer).explain(x)
    peer = _peer(model, layer, x, tuple(res.low_res.shape[-2:]), reshape=reshape)  # type: ignore[arg-type]
    assert assert_maps_match(res.low_res, peer) == 2


def test_the_score_and_its_comparisons() -> None:
    z = torch.tensor([[3.0, 2.9, -1.0, 2.0, 0.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
    t = torch.tensor([0, 2])
    assert finer_comparisons(z, t).tolist() == [[1, 3, 4], [1, 3, 0]]
    comp = finer_comparisons(z, t)
    p = torch.softmax(z, 1).gather(1, comp)
    expected = (p * (z.gather(1, t.view(-1, 1)) - 0.5 * z.gather(1, comp))).sum(1) / p.sum(1)
    torch.testing.assert_close(finer_score(z, t, comp, alpha=0.5), expected)
    # two classes: one comparison
    assert finer_comparisons(torch.tensor([[1.0, 2.0]]), torch.tensor([1])).tolist() == [[0]]


def test_finercam_differs_from_gradcam_runs_on_its_own_in_a_group_and_refuses_other_kinds() -> None:
    model = parity_model("vgg")
    x = parity_batches(64)[0]
    finer, grad = FinerCAM(model, "features.9"), GradCAM(model, "features.9")
    group = MethodGroup({"finercam": finer, "gradcam": grad}).explain(x)
    torch.testing.assert_close(group["finercam"].maps, finer.explain(x).maps)
    torch.testing.assert_close(group["gradcam"].maps, grad.explain(x).maps)
    assert not torch.allclose(group["finercam"].maps, group["gradcam"].maps, atol=1e-3)
    assert get_method("Finer-CAM") is FinerCAM
    with pytest.raises(ValueError, match="FinerCAM explains multiclass models only, got task='multilabel'"):
        FinerCAM(model, "features.9", task="multilabel")
    with pytest.raises(ValueError, match="base='eigencam' must be a gradient method"):
        FinerCAM(model, "features.9", base="eigencam")
