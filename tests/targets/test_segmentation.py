"""targets/segmentation.py: a segmenter's pairs, score, probability and ground truth; Grad-CAM equal to
pytorch-grad-cam's ``SemanticSegmentationTarget`` at the same layer (its segmentation tutorial's target)."""

from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam import HiResCAM as PgcHiResCAM
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large, lraspp_mobilenet_v3_large

from lightning_cam import evaluate_batch
from lightning_cam.methods import EigenCAM, GradCAM, HiResCAM, ScoreCAM, SmoothGradCAMPlusPlus
from lightning_cam.targets.task import Task

from ..methods.conftest import assert_maps_match, structured_images


class _Out(torch.nn.Module):
    """pytorch-grad-cam's tutorial wrapper: the model's ``out`` tensor."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def _deeplab() -> torch.nn.Module:
    torch.manual_seed(0)
    return deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=4, aux_loss=False).eval()


def _lraspp() -> torch.nn.Module:
    torch.manual_seed(1)
    return lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=4).eval()


def _pgc(cls: type, model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, classes: list[int],
         size: tuple[int, int], regions: torch.Tensor | None = None) -> torch.Tensor:
    wrapped = _Out(model)
    if regions is None:
        with torch.no_grad():
            predicted = wrapped(x).argmax(1)
        regions = torch.stack([predicted[i] == c for i, c in enumerate(classes)])
    targets = [SemanticSegmentationTarget(c, regions[i].float().numpy()) for i, c in enumerate(classes)]
    with cls(model=wrapped, target_layers=[layer]) as peer:
        peer.get_target_width_height = lambda _input: (size[1], size[0])  # compare before upsampling
        return torch.from_numpy(peer(input_tensor=x, targets=targets))


@pytest.mark.parametrize("ours,peer", [(GradCAM, PgcGradCAM), (HiResCAM, PgcHiResCAM)], ids=["gradcam", "hirescam"])
@pytest.mark.parametrize("factory,layer", [(_deeplab, "backbone.16"), (_lraspp, "backbone.16")],
                         ids=["deeplabv3", "lraspp"])
def test_gradient_maps_equal_pytorch_grad_cams_segmentation_target(ours: type, peer: type, factory, layer: str
                                                                   ) -> None:
    model = factory()
    x = structured_images(3, 96, seed=4)
    cam = ours(model, layer, task="segmentation")
    with torch.no_grad():
        shares = model(x)["out"].argmax(1)
    classes = [int(torch.bincount(shares[i].flatten(), minlength=4).argmax()) for i in range(3)]  # predicted
    res = cam.explain(x, torch.tensor(classes))
    theirs = _pgc(peer, model, dict(model.named_modules())[layer], x, classes, tuple(res.low_res.shape[-2:]))
    assert assert_maps_match(res.low_res, theirs) >= 2


def test_a_given_reference_is_the_region_explained_on_another_image() -> None:
    """The evaluator's pass on x * map explains the pairs of x: their regions travel with them (`reference`)."""
    model = _deeplab()
    x = structured_images(2, 96, seed=5)
    cam = GradCAM(model, "backbone.16", task="segmentation")
    classes = torch.tensor([1, 2])
    with torch.no_grad():
        regions = Task("segmentation").target.reference(model(x)["out"], classes)
    changed = x.flip(-1) * 0.5
    res = cam.explain(changed, classes, reference=regions)
    theirs = _pgc(PgcGradCAM, model, dict(model.named_modules())["backbone.16"], changed, [1, 2],
                  tuple(res.low_res.shape[-2:]), regions)
    assert assert_maps_match(res.low_res, theirs) >= 1
    with pytest.raises(ValueError, match="`reference` must have one row per explained target"):
        cam.explain(changed, classes, reference=regions[:1])


def test_pairs_are_the_predicted_classes_largest_first_and_the_label_classes() -> None:
    kind = Task("segmentation", max_labels=2, ignore_index=0, min_share=0.2).target
    z = torch.zeros(2, 4, 2, 5)
    z[0, 1, :, :1] = 9  # 20 %
    z[0, 2, :, 1:4] = 9  # 60 %
    z[0, 3, :, 4:] = 9  # 20 %
    z[1, 0] = 9  # background only: no pair
    samples, classes, k = kind.pairs(None, lambda: z)
    assert samples.tolist() == [0, 0] and sorted(classes.tolist()) == [1, 2] and k == 4  # the two largest
    labels = torch.zeros(2, 2, 5, dtype=torch.long)
    labels[0, 0, :] = 3  # 50 %
    labels[1, :, :1] = 1  # 20 %
    samples, classes, _ = kind.pairs(kind.check_targets(labels, 2, torch.device("cpu")), lambda: z)
    assert samples.tolist() == [0, 1] and classes.tolist() == [3, 1]
    assert kind.pairs(torch.tensor([1, 2]), lambda: z) is None
    assert kind.predicted(z).tolist() == [2, 0]  # the largest class; the ignored one when it is all there is


def test_score_probability_and_ground_truth_of_a_pair() -> None:
    kind = Task("segmentation").target
    z = torch.zeros(1, 3, 2, 2)
    z[0, 1, 0, :] = 2.0
    region = kind.reference(z, torch.tensor([1]))
    assert region.tolist() == [[[True, True], [False, False]]]
    assert kind.score(z, torch.tensor([1])).item() == pytest.approx(4.0)
    p = torch.softmax(torch.tensor([0.0, 2.0, 0.0]), 0)[1]
    assert kind.probability(z, torch.tensor([1])).item() == pytest.approx(float(p))
    # on a changed image the pair keeps its region: class 1 now predicted nowhere, its probability read there
    changed = torch.zeros(1, 3, 2, 2)
    assert kind.probability(changed, torch.tensor([1]), region).item() == pytest.approx(1 / 3)
    assert kind.score(changed, torch.tensor([1])).item() == 0.0  # its own (empty) region
    masks = torch.tensor([[[1, 1], [2, 0]]])
    assert kind.ground_truth(masks, None, torch.tensor([2]), (2, 2)).tolist() == [[[False, False], [True, False]]]


def test_wrong_outputs_and_targets_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"task='segmentation' explains \(B, num_classes, H, W\)"):
        Task("segmentation").target.check_output(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="task='segmentation'"):
        Task("multiclass").target.check_output(torch.zeros(2, 5, 4, 4))
    with pytest.raises(ValueError, match="integer class indices"):
        Task("segmentation").target.check_targets(torch.rand(2, 4, 4), 2, torch.device("cpu"))


@pytest.mark.parametrize("method", [GradCAM, ScoreCAM, SmoothGradCAMPlusPlus, EigenCAM],
                         ids=lambda c: c.__name__)
def test_every_metric_runs_on_pairs_with_the_label_masks_as_ground_truth(method: type) -> None:
    model = _lraspp()
    x = structured_images(2, 64, seed=2)
    labels = torch.zeros(2, 64, 64, dtype=torch.long)
    labels[:, 16:48, 16:48] = 2
    labels[1, :8] = 3
    kw = {"top_k": 8} if method is ScoreCAM else {"num_samples": 2} if method is SmoothGradCAMPlusPlus else {}
    cam = method(model, "backbone.16", task=Task("segmentation", ignore_index=0), **kw)
    values = evaluate_batch(cam, x, None, masks=labels,
                            metrics=("average_drop", "increase", "coherency", "complexity", "adcc", "insertion",
                                     "pointing_game", "iou"), steps=4)
    n = values["adcc"].shape[0]
    assert n >= 1 and all(v.shape == (n,) for v in values.values())
    label_pairs = evaluate_batch(cam, x, labels, masks=labels, metrics=("energy_pointing_game",))
    assert label_pairs["energy_pointing_game"].shape == (3,)  # class 2 twice, class 3 once


@pytest.mark.parametrize("method", [GradCAM, EigenCAM], ids=lambda c: c.__name__)
def test_a_pair_whose_class_is_predicted_nowhere_gets_no_value_and_a_counted_reason(method: type) -> None:
    """Eigen-CAM makes a map whatever the target: without the region rule, such a pair scored a perfect Average
    Drop (0 on a probability of 0) and an ADCC of 0.87. It must be no value, and the callback must say why."""
    from lightning_cam.callbacks.faults import Faults
    from lightning_cam.models import UNetSegmenter
    from lightning_cam.record import CAMBatch
    from lightning_cam.scoring import score_method

    torch.manual_seed(0)
    model = UNetSegmenter(num_classes=4, channels=(8, 16)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    absent = next(c for c in range(1, 4) if not bool((predicted == c).any()))
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[:, 4:12, 4:12] = absent
    cam = method(model, task=model.cam_task)
    values = evaluate_batch(cam, x, labels, masks=labels, metrics=("average_drop", "adcc", "iou"))
    assert all(bool(v.isnan().all()) for v in values.values()), values
    faults = Faults("warn")
    record = score_method(method.__name__.lower(), cam, CAMBatch(x, labels, labels), labels, ("adcc",), faults)
    assert record is not None and not bool(record.kept.any())
    assert faults.counts["blank"] == 1 and "predicts their class nowhere" in str(faults.first)


class _OneChannel(torch.nn.Module):
    """A binary segmenter: LR-ASPP with one output channel (a sigmoid per pixel)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=1).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def test_a_one_channel_segmenter_is_two_classes_and_its_foreground_map_equals_pytorch_grad_cams() -> None:
    model = _OneChannel().eval()
    x = structured_images(3, 96, seed=6)
    kind = Task("segmentation").target
    with torch.no_grad():
        z = model(x)
    ones = torch.ones(3, dtype=torch.long)
    region = z[:, 0] > 0
    torch.testing.assert_close(kind.reference(z, ones), region)
    torch.testing.assert_close(kind.score(z, ones), (z[:, 0] * region).sum((1, 2)))
    torch.testing.assert_close(kind.score(z, 0 * ones), (-z[:, 0] * ~region).sum((1, 2)))
    expected = (torch.sigmoid(z[:, 0]) * region).sum((1, 2)) / region.sum((1, 2)).clamp(min=1)
    torch.testing.assert_close(kind.probability(z, ones), expected)
    assert kind.num_classes(z) == 2
    # the foreground's map: pytorch-grad-cam's target on the one channel (category 0) over the predicted pixels
    cam = GradCAM(model, "net.backbone.16", task="segmentation")
    res = cam.explain(x, ones)
    targets = [SemanticSegmentationTarget(0, region[i].float().numpy()) for i in range(3)]
    with PgcGradCAM(model=model, target_layers=[model.net.backbone["16"]]) as peer:
        peer.get_target_width_height = lambda _input: tuple(res.low_res.shape[-2:])[::-1]
        theirs = torch.from_numpy(peer(input_tensor=x, targets=targets))
    informative = [i for i in range(3) if bool(region[i].any())]
    assert informative and assert_maps_match(res.low_res[informative], theirs[informative]) >= 1


def test_a_binary_segmenters_float_masks_are_its_label_masks() -> None:
    kind = Task("segmentation", ignore_index=0).target
    masks = torch.zeros(2, 1, 4, 4)
    masks[:, :, :2] = 1.0
    labels = kind.labels(masks)
    assert labels.dtype == torch.long and labels.shape == (2, 4, 4) and labels.sum() == 16
    z = torch.full((2, 1, 4, 4), -1.0)
    z[:, :, :2] = 2.0
    samples, classes, k = kind.pairs(None, lambda: z)
    assert samples.tolist() == [0, 1] and classes.tolist() == [1, 1] and k == 2
    from lightning_cam.mixin import as_class_indices

    assert torch.equal(as_class_indices(masks, Task("segmentation")), labels)  # what the callback reads
