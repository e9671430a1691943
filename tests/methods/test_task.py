"""Multi-label pairs and one-logit binary models through every method, against pytorch-grad-cam's targets."""

from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam import ScoreCAM as PgcScoreCAM
from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget, ClassifierOutputTarget
from torch import nn

from lightning_cam.methods import CAM, GradCAM, MethodGroup, ScoreCAM, get_method
from lightning_cam.targets.task import Task
from tests.helpers import cnn_methods

from .conftest import assert_maps_match, structured_images


def _net(num_logits: int, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_logits))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net.eval()


def _peer_low_res(model: nn.Module, x: torch.Tensor, targets: list, layer: str = "3") -> torch.Tensor:
    h, w = x.shape[-2:]
    with PgcGradCAM(model=model, target_layers=[dict(model.named_modules())[layer]]) as peer:
        peer.get_target_width_height = lambda _input: (w, h)
        return torch.from_numpy(peer(input_tensor=x, targets=targets))


def test_multilabel_label_pairs_match_pytorch_grad_cam_per_logit() -> None:
    net, x = _net(4), structured_images(3, 16, seed=1)
    hot = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0]])
    res = GradCAM(net, "3", task="multilabel").explain(x, hot)
    assert res.samples.tolist() == [0, 0, 0, 2] and res.targets.tolist() == [0, 2, 3, 1]
    peer = _peer_low_res(net, x[res.samples], [ClassifierOutputTarget(int(c)) for c in res.targets])
    assert assert_maps_match(res.low_res, peer) >= 3
    # each pair's map is the multiclass map of that image for that class: the pairing changes nothing else
    alone = GradCAM(net, "3").explain(x[res.samples], res.targets)
    torch.testing.assert_close(res.maps, alone.maps)


def test_multilabel_predicted_positives_are_capped_by_logit() -> None:
    net, x = _net(5), structured_images(4, 16, seed=2)
    task = Task("multilabel", threshold=0.5, max_labels=2)
    res = GradCAM(net, "3", task=task).explain(x)
    logits = net(x).detach()
    want = []
    for b in range(4):
        pos = [c for c in range(5) if logits[b, c] > 0]
        pos = sorted(sorted(pos, key=lambda c: -float(logits[b, c]))[:2])
        want += [(b, c) for c in pos]
    assert list(zip(res.samples.tolist(), res.targets.tolist())) == want
    torch.testing.assert_close(res.logits, logits[res.samples])


def test_multilabel_without_pairs_gives_an_empty_result() -> None:
    net = _net(3)
    res = GradCAM(net, "3", task="multilabel").explain(torch.rand(2, 3, 16, 16), torch.zeros(2, 3))
    assert res.maps.shape == (0, 16, 16) and res.samples.tolist() == [] and res.logits.shape == (0, 3)


def test_binary_targets_match_pytorch_grad_cam_binary_target() -> None:
    net, x = _net(1), structured_images(4, 16, seed=3)
    targets = torch.tensor([1, 0, 1, 0])
    res = GradCAM(net, "3", task="binary").explain(x, targets)
    peer = _peer_low_res(net, x, [BinaryClassifierOutputTarget(int(c)) for c in targets])
    assert assert_maps_match(res.low_res, peer) >= 2
    pred = GradCAM(net, "3", task="binary").explain(x)
    assert pred.targets.tolist() == (net(x)[:, 0] > 0).long().tolist()


def test_binary_cam_negates_the_one_row_for_the_negative_class() -> None:
    net, x = _net(1), structured_images(2, 16, seed=4)
    pos = CAM(net, "3", task="binary").explain(x, torch.tensor([1, 1]))
    neg = CAM(net, "3", task="binary").explain(x, torch.tensor([0, 0]))
    grad = GradCAM(net, "3", task="binary").explain(x, torch.tensor([1, 0]))
    torch.testing.assert_close(pos.maps[0], grad.maps[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(neg.maps[1], grad.maps[1], atol=1e-5, rtol=1e-4)


def test_scorecam_weights_use_the_sigmoid_under_multilabel() -> None:
    # our Score-CAM scores each masked image by its class probability: under multilabel the class's sigmoid,
    # whatever the other logits are. pytorch-grad-cam scores the logit itself (softmax over channels), so the
    # comparison is with a sigmoid target.
    net, x = _net(3), structured_images(2, 16, seed=5)
    res = ScoreCAM(net, "3", task="multilabel").explain(x, torch.tensor([2, 1]))

    class Sigmoid(ClassifierOutputTarget):
        def __call__(self, out: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(super().__call__(out))

    h, w = x.shape[-2:]
    with PgcScoreCAM(model=net, target_layers=[net[3]]) as peer:
        peer.get_target_width_height = lambda _input: (w, h)
        peer.batch_size = 64

        def weights(input_tensor, target_layer, targets, activations, grads):  # the paper's weights, no softmax
            with torch.no_grad():
                a = torch.from_numpy(activations)
                lo = a.flatten(2).amin(2)[..., None, None]
                hi = a.flatten(2).amax(2)[..., None, None]
                m = torch.where(hi > lo, (a - lo) / (hi - lo), torch.zeros_like(a))
                out = []
                for i, t in enumerate(targets):
                    masked = input_tensor[i : i + 1] * m[i][:, None]
                    out.append(torch.stack([t(z) for z in net(masked)]))
                return torch.stack(out).numpy()

        peer.get_cam_weights = weights
        maps = torch.from_numpy(peer(input_tensor=x, targets=[Sigmoid(2), Sigmoid(1)]))
    assert assert_maps_match(res.low_res, maps) >= 1


@pytest.mark.parametrize("name", cnn_methods())
def test_every_method_explains_pairs_and_one_logit(name: str) -> None:
    cls = get_method(name)
    if cls.kinds is not None:  # a method for some kinds only refuses the others at construction, naming the fix
        assert "multilabel" not in cls.kinds
        with pytest.raises(ValueError, match=rf"{cls.__name__} explains .* models only, got task='multilabel'"):
            cls(_net(3), "3", task="multilabel")
        return
    multi = cls(_net(3), "3", task="multilabel")
    res = multi.explain(structured_images(2, 16, seed=6), torch.tensor([[1, 1, 0], [0, 0, 1]]))
    assert res.maps.shape == (3, 16, 16) and res.samples.tolist() == [0, 0, 1]
    assert bool(torch.isfinite(res.maps).all())
    binary = cls(_net(1), "3", task="binary")
    out = binary.explain(structured_images(2, 16, seed=7), torch.tensor([0, 1]))
    assert out.maps.shape == (2, 16, 16) and out.targets.tolist() == [0, 1]


def test_group_pairs_once_and_matches_the_methods_alone() -> None:
    net, x = _net(4), structured_images(3, 16, seed=8)
    hot = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 1]])
    methods = {n: get_method(n)(net, "3", task="multilabel") for n in ("gradcam", "layercam", "eigencam")}
    out = MethodGroup(methods).explain(x, hot)
    for name, cam in methods.items():
        alone = cam.explain(x, hot)
        assert torch.equal(out[name].samples, alone.samples)
        torch.testing.assert_close(out[name].maps, alone.maps, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="output kind"):
        MethodGroup([GradCAM(net, "3"), get_method("layercam")(net, "3", task="multilabel")])


def test_softmax_kind_refuses_multi_hot_targets_and_one_logit() -> None:
    with pytest.raises(ValueError, match="task='multilabel'"):
        GradCAM(_net(3), "3").explain(torch.rand(2, 3, 16, 16), torch.tensor([[1, 1, 0], [0, 1, 1]]))
    with pytest.raises(ValueError, match="task='binary'"):
        GradCAM(_net(1), "3").explain(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="out of range"):  # binary classes are 0 and 1
        GradCAM(_net(1), "3", task="binary").explain(torch.rand(2, 3, 16, 16), torch.tensor([2, 0]))
