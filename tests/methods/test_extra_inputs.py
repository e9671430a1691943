"""Models with a second input, forward(x, meta): every forward of every method and of evaluate_batch gets
each sample's own extra input (sliced and repeated like the images)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_cam.evaluate import evaluate_batch
from lightning_cam.methods import get_method
from tests.helpers import MethodOptions, cnn_methods

from .conftest import structured_images


class TwoInputs(nn.Module):
    """logits = scale * fc(GAP(conv(x * (1 + meta / 4)))): a GAP->Linear head (CAM applies) whose maps depend
    on meta; fails loudly if `meta` does not match the images' batch."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, meta: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        assert meta.shape == (x.shape[0],), (meta.shape, x.shape)
        x = x * (1.0 + meta.float().view(-1, 1, 1, 1) / 4.0)
        return scale * self.fc(self.gap(self.features(x)).flatten(1))


class Bound(nn.Module):
    """The same model with `meta` fixed per sample: the reference a per-sample call must reproduce."""

    def __init__(self, model: TwoInputs, meta: torch.Tensor) -> None:
        super().__init__()
        self.model, self.meta = model, meta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.meta.expand(x.shape[0]))


@pytest.mark.parametrize("name", cnn_methods())
def test_every_method_passes_extra_inputs_per_sample(name: str) -> None:
    torch.manual_seed(0)
    model = TwoInputs().eval()
    x = structured_images(3, 16, seed=2)
    meta = torch.tensor([0, 3, 1])
    cls = get_method(name)
    kwargs = MethodOptions({"scorecam": {"batch_size": 5}, "smoothgradcam_pp": {"batch_size": 5}}).of(name)
    together = cls(model, "features.1", **kwargs).explain(x, extra=(meta,))
    for i in range(3):  # one sample at a time through a model with that sample's meta bound
        alone = cls(Bound(model, meta[i : i + 1]), "model.features.1", **kwargs).explain(x[i : i + 1])
        torch.testing.assert_close(together.maps[i], alone.maps[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(together.logits[i], alone.logits[0])


def test_evaluate_batch_passes_extra_keyword_inputs() -> None:
    torch.manual_seed(0)
    model = TwoInputs().eval()
    x = structured_images(3, 16, seed=2)
    meta = torch.tensor([2, 0, 1])
    cam = get_method("gradcam")(model, "features.1")
    metrics = ("adcc", "average_drop", "insertion", "deletion")
    values = evaluate_batch(cam, x, metrics=metrics, extra={"meta": meta, "scale": 2.0}, steps=4, batch_size=3)
    for i in range(3):
        ref_cam = get_method("gradcam")(Bound(model, meta[i : i + 1]), "model.features.1")
        ref_cam.model.forward = lambda y, b=ref_cam.model: b.model(y, b.meta.expand(y.shape[0]), scale=2.0)
        ref = evaluate_batch(ref_cam, x[i : i + 1], metrics=metrics, steps=4, batch_size=3)
        for key in metrics:
            torch.testing.assert_close(values[key][i], ref[key][0], atol=1e-5, rtol=1e-4)


def test_a_forgotten_extra_input_names_the_option_that_passes_it() -> None:
    torch.manual_seed(0)
    model = TwoInputs().eval()
    x = structured_images(2, 16)
    with pytest.raises(TypeError, match=r"missing 1 required positional argument: 'meta'.*TwoInputs.forward\(x.*"
                                        r"meta.*extra=.*CAMBatch\(images, labels, extra=\(meta,\)\)"):
        get_method("gradcam")(model, "features.1").explain(x)
    with pytest.raises(TypeError, match=r"extra="):  # the default-layer rule's forward says it too
        get_method("gradcam")(model).explain(x)


def test_a_type_error_inside_the_model_stays_the_models_own() -> None:
    class Broken(TwoInputs):
        def forward(self, x: torch.Tensor, meta: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
            raise TypeError("a bug inside forward")

    with pytest.raises(TypeError, match=r"^a bug inside forward$"):
        get_method("gradcam")(Broken(), "features.1").explain(structured_images(2, 16), extra=(torch.zeros(2),))
