"""CAMMixin: batch unpacking, denormalisation, default target layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_cam.methods import GradCAM
from lightning_cam.mixin import CAMMixin
from lightning_cam.record import CAMBatch


class Plain(CAMMixin, nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.ReLU())
        self.head = nn.Linear(5, 2)


class NoConv(CAMMixin, nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)


X = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
Y = torch.tensor([1, 0])
M = torch.zeros(2, 4, 4, dtype=torch.bool)
B = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])


@pytest.mark.parametrize(
    "batch, expect",
    [
        ((X, Y), (X, Y, None, None)),
        ([X, Y], (X, Y, None, None)),
        ((X, Y, M), (X, Y, M, None)),
        ((X, Y, M, B), (X, Y, M, B)),
        ((X, Y, M, B, "extra"), (X, Y, M, B)),
        ((X,), (X, None, None, None)),
        (X, (X, None, None, None)),
        ({"image": X, "label": Y, "mask": M, "box": B}, (X, Y, M, B)),
        ({"images": X, "labels": Y}, (X, Y, None, None)),
        ({"x": X, "y": Y, "bbox": B}, (X, Y, None, B)),
        ({"pixel_values": X, "target": Y, "segmentation": M}, (X, Y, M, None)),
    ],
)
def test_cam_inputs_layouts(batch, expect) -> None:
    got = Plain().cam_inputs(batch)
    assert isinstance(got, CAMBatch)
    for value, want in zip((got.images, got.labels, got.masks, got.boxes), expect):
        if want is None:
            assert value is None
        else:
            assert value is want


def test_cam_inputs_non_tensor_tuple_parts_become_none() -> None:
    got = Plain().cam_inputs((X, Y, ["not", "a", "mask"]))
    assert got.labels is Y and got.masks is None


def test_cam_inputs_passes_cambatch_through() -> None:
    cb = CAMBatch(X, Y)
    assert Plain().cam_inputs(cb) is cb


def test_cam_inputs_dict_without_images_names_keys() -> None:
    with pytest.raises(TypeError, match=r"cannot find images.*\['foo', 'label'\].*override `cam_inputs"):
        Plain().cam_inputs({"foo": X, "label": Y})


@pytest.mark.parametrize("batch", [42, "images", (), [], ("x", Y), None])
def test_cam_inputs_bad_batches_raise_type_error(batch) -> None:
    with pytest.raises(TypeError, match="cannot unpack a batch of type .* override `cam_inputs"):
        Plain().cam_inputs(batch)


def test_cam_denormalize_inverts_normalisation() -> None:
    model = Plain()
    model.cam_mean, model.cam_std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    pixels = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor(model.cam_mean).view(1, 3, 1, 1)
    std = torch.tensor(model.cam_std).view(1, 3, 1, 1)
    torch.testing.assert_close(model.cam_denormalize((pixels - mean) / std), pixels)


def test_cam_denormalize_clamps_expands_grey_and_detaches() -> None:
    model = Plain()
    grey = torch.tensor([[[[-1.0, 0.25], [0.5, 3.0]]]], requires_grad=True)
    out = model.cam_denormalize(grey)
    assert out.shape == (1, 3, 2, 2) and not out.requires_grad
    torch.testing.assert_close(out[0, 2], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    model.cam_mean, model.cam_std = (0.5,), (0.5,)
    torch.testing.assert_close(model.cam_denormalize(grey)[0, 0], torch.tensor([[0.0, 0.625], [0.75, 1.0]]))


def test_cam_denormalize_without_stats_keeps_dtype_float32() -> None:
    out = Plain().cam_denormalize(torch.full((1, 3, 2, 2), 0.5, dtype=torch.float16))
    assert out.dtype == torch.float32 and torch.all(out == 0.5)


class Forwarding(Plain):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def test_cam_layer_default_is_chosen_by_the_rule_at_the_first_call() -> None:
    model = Forwarding()
    assert model.cam_layer() is None  # no table of names: each method chooses on its first batch
    cam = GradCAM(model, model.cam_layer(), **model.cam_method_kwargs())
    cam.explain(torch.randn(2, 3, 12, 12))
    # the features' output (the Sequential, which returns the same tensor as its last ReLU) is the latest cut
    assert cam.target_layer_name == "features" and "features: the latest module" in cam.target_layer_reason


def test_cam_layer_explicit_target_wins() -> None:
    model = Plain()
    model.cam_target_layer = "features.0"
    assert model.cam_layer() == "features.0"
    model.cam_target_layer = model.features[1]
    assert model.cam_layer() is model.features[1]


def test_a_model_without_a_spatial_layer_gets_an_error_naming_cam_target_layer() -> None:
    class Flat(NoConv):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.mean(dim=(2, 3)))

    with pytest.raises(ValueError, match=r"Flat has no layer with a spatial output.*MLP on flattened images.*"
                                         r"CAMCallback\(stages=\(\)\)"):
        GradCAM(Flat()).explain(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"target layer 'fc' outputs \(2, 2\): one vector per sample, with no "
                                         r"spatial positions"):
        GradCAM(Flat(), "fc").explain(torch.randn(2, 3, 8, 8))


def test_cam_model_default_is_self() -> None:
    model = Plain()
    assert model.cam_model() is model


class ModuleFirst(nn.Module, CAMMixin):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.cam_target_layer = self.conv


def test_module_target_layer_is_not_registered_twice() -> None:
    model = Plain()
    model.cam_target_layer = model.features[2]
    assert list(model.state_dict()) == [k for k in model.state_dict() if not k.startswith("cam_target_layer")]
    assert len(list(model.parameters())) == 6
    model.cam_target_layer = "features.0"  # a string replaces the module reference
    assert model.cam_layer() == "features.0"


def test_module_target_layer_found_with_either_base_order() -> None:
    model = ModuleFirst()
    assert model.cam_layer() is model.conv


# ---------------------------------------------------------------- issue 11: batches, labels, layouts
def test_tuple_third_item_is_ground_truth_only_when_its_shape_says_so() -> None:
    idx = torch.tensor([7, 9])
    got = Plain().cam_inputs((X, Y, idx))
    assert got.masks is None and got.boxes is None  # sample indices are not a mask
    got = Plain().cam_inputs((X, Y, B))
    assert got.masks is None and got.boxes is B  # (B, 4) in third place is a box
    got = Plain().cam_inputs((X, Y, M[:, None], idx))
    assert got.masks is not None and got.masks.shape == (2, 1, 4, 4) and got.boxes is None


@pytest.mark.parametrize(
    "labels",
    [torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([[0.2, 0.8], [0.6, 0.4]]), torch.tensor([[1], [0]]),
     torch.tensor([1.0, 0.0])],
)
def test_one_hot_soft_and_column_labels_become_class_indices(labels: torch.Tensor) -> None:
    got = Plain().cam_inputs((X, labels)).labels
    assert got is not None and got.dtype == torch.long and got.tolist() == [1, 0]
    assert Plain().cam_inputs({"image": X, "label": labels}).labels.tolist() == [1, 0]


def test_cam_method_kwargs_carry_the_layout() -> None:
    model = Plain()
    assert model.cam_method_kwargs() == {"reshape": None}
    model.cam_reshape = "NHWC"
    assert model.cam_method_kwargs() == {"reshape": "nhwc"}
    model.cam_reshape = "swin"
    with pytest.raises(ValueError, match="reshape must be None, 'vit' or a callable"):
        model.cam_method_kwargs()


def test_default_layer_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    model = Forwarding()
    x = torch.randn(2, 3, 12, 12)
    with caplog.at_level("INFO", logger="lightning_cam"):
        for _ in range(2):
            cam = GradCAM(model)
            cam.explain(x)
            cam.explain(x)
    messages = [r.getMessage() for r in caplog.records if "explains layer" in r.getMessage()]
    assert len(messages) == 2 and messages[0].startswith("lightning_cam: GradCAM explains layer features: the latest")


def test_cambatch_extra_defaults_to_none() -> None:
    assert CAMBatch(X).extra is None and CAMBatch(X, extra=(Y,)).extra == (Y,)


# ------------------------------------------------------------------ output kinds (cam_task)
def test_multi_hot_labels_under_softmax_are_a_clear_error_not_an_argmax() -> None:
    from lightning_cam.mixin import as_class_indices

    hot = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 1]])
    with pytest.raises(ValueError, match="cam_task = 'multilabel'"):
        CAMMixin().cam_inputs((torch.zeros(3, 3, 4, 4), hot))
    with pytest.raises(ValueError, match="multi-hot"):
        as_class_indices(hot.float())
    # one-hot and soft labels of a softmax classifier still become their class
    assert as_class_indices(torch.tensor([[0.1, 0.8, 0.1], [0.0, 0.0, 1.0]])).tolist() == [1, 2]
    assert as_class_indices(torch.tensor([[False, True], [True, False]])).tolist() == [1, 0]


def test_cam_task_keeps_multi_hot_labels_and_reaches_every_method() -> None:
    class Multi(CAMMixin, nn.Module):
        cam_task = "multilabel"

    hot = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    parts = Multi().cam_inputs({"image": torch.zeros(2, 3, 4, 4), "label": hot,
                                "mask": torch.zeros(2, 3, 4, 4, dtype=torch.bool), "box": torch.zeros(2, 3, 5)})
    assert parts.labels.tolist() == [[True, True, False], [False, False, True]]
    assert parts.masks.shape == (2, 3, 4, 4) and parts.boxes.shape == (2, 3, 5)
    assert Multi().cam_method_kwargs()["task"].kind == "multilabel"
    assert "task" not in CAMMixin().cam_method_kwargs()  # the default kind is not passed


def test_binary_labels_become_zero_or_one() -> None:
    class Binary(CAMMixin, nn.Module):
        cam_task = "binary"

    parts = Binary().cam_inputs((torch.zeros(3, 3, 4, 4), torch.tensor([[1.0], [0.0], [0.9]])))
    assert parts.labels.tolist() == [1, 0, 1]


def test_pairs_follow_their_images_and_name_absent_classes() -> None:
    parts = CAMBatch(torch.arange(2.0).view(2, 1, 1, 1).expand(2, 3, 2, 2), torch.tensor([[True, False], [True, True]]),
                     masks=torch.zeros(2, 2, 2, 2), extra=(torch.tensor([10, 20]),))
    pairs = parts.pairs(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]))
    assert pairs.images[:, 0, 0, 0].tolist() == [0.0, 0.0, 1.0]
    assert pairs.labels.tolist() == [0, -2, 1]  # class 1 is not a label of image 0
    assert pairs.masks.shape == (3, 2, 2, 2) and pairs.extra.args[0].tolist() == [10, 10, 20]
