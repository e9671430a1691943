"""The method contract of methods/base.py: a new method written in a test file through the documented hooks
only works standalone, in a MethodGroup (sharing the clean pass), in evaluate_batch and in the callback."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_cam import evaluate_batch
from lightning_cam.functional import weighted_sum
from lightning_cam.methods import BaseCAM, GradCAM, MethodGroup
from lightning_cam.methods.capture import Capture


class GradCAMElementwise(BaseCAM):
    """Grad-CAM-Elementwise (pytorch-grad-cam's GradCAMElementWise): ReLU(g ⊙ A) summed over channels."""

    name = "gradcam_elementwise"

    def raw_map(self, cap: Capture) -> Tensor:
        assert cap.grads is not None
        return torch.relu(cap.grads * cap.activations).sum(dim=1)


class MeanActivation(BaseCAM):
    """Channel weights only: every channel weighs 1/C (a gradient-free method through `_weights`)."""

    name = "meanact"
    needs_grad = False

    def weights(self, cap: Capture) -> Tensor:
        b, c = cap.activations.shape[:2]
        return cap.activations.new_full((b, c), 1.0 / c)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 4)).eval()


def _images() -> Tensor:
    return torch.randn(3, 3, 10, 10, generator=torch.Generator().manual_seed(1))


def test_a_new_method_matches_its_formula_computed_by_hand() -> None:
    net, x = _net(), _images()
    res = GradCAMElementwise(net, "3").explain(x)
    acts = net[:4](x).detach().requires_grad_(True)
    score = net[4:](acts).gather(1, res.targets[:, None]).sum()
    (grads,) = torch.autograd.grad(score, acts)
    torch.testing.assert_close(res.low_res, torch.relu((grads * acts).relu().sum(1)).detach(), atol=1e-5, rtol=1e-4)
    mean = MeanActivation(net, "3").explain(x)
    torch.testing.assert_close(mean.low_res, torch.relu(weighted_sum(torch.full((3, 5), 0.2), acts.detach())))


def test_a_new_method_shares_the_clean_pass_in_a_group() -> None:
    net, x = _net(), _images()
    cams = {"gradcam_elementwise": GradCAMElementwise(net, "3"), "meanact": MeanActivation(net, "3"),
            "gradcam": GradCAM(net, "3")}
    calls: list[str] = []
    net[2].register_forward_hook(lambda *_: calls.append("forward"))
    together = MethodGroup(cams).explain(x)
    assert len(calls) == 1  # one forward (and backward) for all three
    for name, cam in cams.items():
        torch.testing.assert_close(together[name].maps, cam.explain(x, together[name].targets).maps,
                                   atol=1e-5, rtol=1e-4)


def test_a_new_method_is_scored_by_evaluate_batch() -> None:
    net, x = _net(), _images()
    values = evaluate_batch(GradCAMElementwise(net, "3"), x, metrics=("average_drop", "complexity"))
    assert values["average_drop"].shape == (3,) and torch.isfinite(values["complexity"]).all()
