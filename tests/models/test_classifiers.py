"""GAPClassifier and ResNetClassifier: architecture contract, steps, CAM hooks, learning."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from lightning_cam.data import SHAPES_MEAN, SHAPES_STD, ShapesDataModule, ShapesDataset
from lightning_cam.mixin import CAMMixin
from lightning_cam.models import GAPClassifier, ImageClassifier, ResNetClassifier


def test_gap_classifier_structure_and_target_layer() -> None:
    model = GAPClassifier(num_classes=5)
    assert isinstance(model, CAMMixin) and isinstance(model, pl.LightningModule)
    assert model.cam_layer() == "features.3"
    assert isinstance(model.fc, nn.Linear) and model.fc.out_features == 5 and model.fc.in_features == 64
    assert isinstance(model.gap, nn.AdaptiveAvgPool2d)
    feats = {}
    layer = model.get_submodule(model.cam_layer())
    handle = layer.register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    model.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    logits = model(x)
    handle.remove()
    assert feats["a"].shape == (2, 64, 8, 8)
    # logits = fc(GAP(A)): the CAM identity sum_ij CAM_c / (h w) + b_c = y_c holds exactly
    cam = torch.einsum("kc,bchw->bkhw", model.fc.weight, feats["a"])
    torch.testing.assert_close(cam.mean((2, 3)) + model.fc.bias, logits)


def test_gap_classifier_options() -> None:
    model = GAPClassifier(num_classes=3, in_channels=1, channels=(4, 6), dropout=0.2, class_names=("a", "b", "c"),
                          mean=(0.1,), std=(0.3,))
    assert model(torch.zeros(2, 1, 20, 20)).shape == (2, 3)
    assert model.cam_layer() == "features.1"
    assert model.cam_class_names == ["a", "b", "c"]
    assert model.cam_mean == (0.1,) and model.cam_std == (0.3,)
    assert model.hparams.channels == [4, 6] and model.hparams.mean == [0.1]
    for bad in ({"num_classes": 1}, {"channels": ()}, {"in_channels": 0}):
        with pytest.raises(ValueError, match="num_classes >= 2"):
            GAPClassifier(**bad)
    with pytest.raises(ValueError, match="both `mean` and `std`"):
        GAPClassifier(mean=(0.5, 0.5, 0.5))


def test_denormalize_recovers_shapes_pixels() -> None:
    ds = ShapesDataset(num_samples=4, image_size=16, seed=0)
    model = GAPClassifier(num_classes=5, mean=ds.mean, std=ds.std)
    images = torch.stack([ds[i]["image"] for i in range(4)])
    torch.testing.assert_close(model.cam_denormalize(images), ds.images.float() / 255, atol=1e-5, rtol=0)
    assert ds.mean == SHAPES_MEAN and ds.std == SHAPES_STD


@pytest.mark.parametrize("layout", ["dict", "tuple"])
def test_steps_accept_dict_and_tuple_batches(layout: str) -> None:
    model = GAPClassifier(num_classes=3, channels=(4, 8))
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    batch = {"image": x, "label": y, "mask": torch.zeros(4, 16, 16, dtype=torch.bool)} if layout == "dict" else (x, y)
    logged = {}
    model.log = lambda name, value, **kw: logged.setdefault(name, value)  # type: ignore[method-assign]
    loss = model.training_step(batch, 0)
    assert loss.shape == () and loss.requires_grad
    torch.testing.assert_close(loss, nn.functional.cross_entropy(model(x), y))
    model.validation_step(batch, 0)
    model.test_step(batch, 0)
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"} <= set(logged)
    probs = model.predict_step(batch, 0)
    torch.testing.assert_close(probs.sum(1), torch.ones(4))


def test_steps_without_labels_raise() -> None:
    model = GAPClassifier(num_classes=3, channels=(4,))
    with pytest.raises(TypeError, match="need labels"):
        model.training_step(torch.randn(2, 3, 8, 8), 0)


def test_configure_optimizers_uses_lr() -> None:
    opt = GAPClassifier(num_classes=2, lr=0.05, weight_decay=0.01, cosine=False).configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[0]["weight_decay"] == 0.01


@pytest.mark.parametrize(
    "kwargs, image, layer4",
    [
        ({"num_classes": 10, "in_channels": 1, "small_input": True}, (1, 28, 28), (512, 4, 4)),
        ({"num_classes": 4, "in_channels": 1}, (1, 64, 64), (512, 2, 2)),
        ({"num_classes": 4}, (3, 64, 64), (512, 2, 2)),
    ],
)
def test_resnet_classifier(kwargs, image, layer4) -> None:
    model = ResNetClassifier(**kwargs).eval()
    assert isinstance(model, ImageClassifier) and model.cam_layer() == "model.layer4"
    assert model.model.conv1.in_channels == image[0]
    out = {}
    handle = model.model.layer4.register_forward_hook(lambda m, i, o: out.setdefault("a", o))
    with torch.no_grad():
        logits = model(torch.zeros(2, *image))
    handle.remove()
    assert logits.shape == (2, kwargs["num_classes"]) and out["a"].shape[1:] == layer4


def test_resnet_classifier_bad_arch() -> None:
    with pytest.raises(ValueError, match="unknown arch 'resnet9'.*resnet18"):
        ResNetClassifier(arch="resnet9")


@pytest.fixture
def one_thread():
    # A model this small trains several times faster on one intra-op thread than on two when the
    # CPU is shared (OpenMP barriers); restore the setting afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_gap_classifier_learns_shapes(one_thread) -> None:
    pl.seed_everything(0, verbose=False)
    dm = ShapesDataModule(num_train=1200, num_val=300, num_test=20, image_size=32, batch_size=32, seed=0)
    model = GAPClassifier(num_classes=dm.num_classes, channels=(16, 32, 64), lr=3e-3)
    trainer = pl.Trainer(
        max_epochs=5, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )
    trainer.fit(model, dm)
    assert trainer.optimizers[0].param_groups[0]["lr"] < 1e-4, "cosine decay (the default) ends near 0"
    chance = 1 / dm.num_classes
    val_acc = trainer.callback_metrics["val_acc"]
    assert val_acc > 0.85, f"val_acc {val_acc} (chance {chance})"


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "binary"])
def test_losses_and_accuracy_follow_the_output_kind(task: str) -> None:
    import torch.nn.functional as F

    k = 2 if task == "binary" else 3
    model = GAPClassifier(num_classes=k, channels=(4,), task=task)
    assert model.fc.out_features == (1 if task == "binary" else k) and model.cam_task.kind == task
    x = torch.randn(4, 3, 16, 16)
    labels = {"multiclass": torch.tensor([0, 1, 2, 0]), "binary": torch.tensor([1, 0, 1, 1]),
              "multilabel": torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])}[task]
    loss = model.training_step({"image": x, "label": labels}, 0)
    logits = model(x)
    want = {"multiclass": lambda: F.cross_entropy(logits, labels),
            "binary": lambda: F.binary_cross_entropy_with_logits(logits[:, 0], labels.float()),
            "multilabel": lambda: F.binary_cross_entropy_with_logits(logits, labels)}[task]()
    torch.testing.assert_close(loss, want)
    probs = model.predict_step({"image": x}, 0)
    torch.testing.assert_close(probs, logits.softmax(1) if task == "multiclass" else logits.sigmoid())
    if task == "binary":
        with pytest.raises(ValueError, match="num_classes=2"):
            GAPClassifier(num_classes=3, task="binary")
