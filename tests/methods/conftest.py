"""Shared fixtures for the CAM method tests: small seeded models and structured inputs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchvision
from torch import nn


def make_resnet(num_classes: int = 10, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None, num_classes=num_classes).eval()


class SmallVGG(nn.Module):
    """A small VGG-style network: conv blocks -> GAP -> Linear (so CAM applies)."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def make_vgg(num_classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return SmallVGG(num_classes).eval()


def structured_images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """Images with a bright blob at a random place on a noisy background (non-degenerate maps)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(batch, 3, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for b in range(batch):
        cy, cx = torch.randint(size // 5, 4 * size // 5, (2,), generator=g).tolist()
        r = size / 6
        blob = torch.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
        x[b] += 3.0 * blob * torch.randn(3, 1, 1, generator=g).sign()
    return x


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    return make_resnet()


@pytest.fixture(scope="module")
def vgg() -> nn.Module:
    return make_vgg()


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample Pearson correlation of ``(B, ...)`` maps (float64)."""
    a = a.double().flatten(1)
    b = b.double().flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def assert_maps_match(ours: torch.Tensor, peer: torch.Tensor, min_corr: float = 0.99) -> int:
    """Per sample: Pearson >= min_corr, or both maps constant. Returns how many samples were non-constant."""
    ours, peer = ours.double().flatten(1), peer.double().flatten(1)
    informative = 0
    for i in range(ours.shape[0]):
        o_const = bool(ours[i].max() - ours[i].min() <= 1e-9 * max(1.0, float(ours[i].abs().max())))
        p_const = bool(peer[i].max() - peer[i].min() <= 1e-6 * max(1.0, float(peer[i].abs().max())))
        if o_const or p_const:
            assert o_const and p_const, f"sample {i}: one map is constant and the other is not"
            continue
        corr = float(pearson(ours[i : i + 1], peer[i : i + 1]))
        assert corr >= min_corr, f"sample {i}: Pearson {corr:.5f} < {min_corr}"
        informative += 1
    return informative


# ----------------------------------------------------------------------------- comparing with pytorch-grad-cam
#: (model factory, target layer, image size) of the peer comparisons: ResNet-18 at layer4 (4x4 maps at 128 px), the
#: small VGG at 16x16
PARITY_SETUPS = [("resnet", "layer4", 128), ("vgg", "features.9", 64)]


def parity_model(kind: str) -> nn.Module:
    return make_resnet() if kind == "resnet" else make_vgg()


def parity_batches(size: int) -> list[torch.Tensor]:
    """Structured images (non-degenerate maps) and plain noise."""
    g = torch.Generator().manual_seed(size)
    return [structured_images(3, size, seed=3), torch.randn(2, 3, size, size, generator=g)]


def layer_output(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The named layer's output for ``x`` (a copy)."""
    out: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
        out["a"] = output.detach().clone()

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return out["a"]


def pgc_low_res(cls: type, model: nn.Module, layer: str, x: torch.Tensor, targets: list[int] | None,
                size: tuple[int, int] | None = None, reshape: Any = None, **kwargs: Any
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """pytorch-grad-cam's maps at the activation's resolution (``size`` = (h, w), by default the layer output's),
    and the classes it explained."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    h, w = size if size is not None else layer_output(model, layer, x[:1]).shape[-2:]
    with cls(model=model, target_layers=[model.get_submodule(layer)], reshape_transform=reshape, **kwargs) as peer:
        peer.get_target_width_height = lambda _input: (w, h)  # no resize: compare before upsampling
        tg = None if targets is None else [ClassifierOutputTarget(t) for t in targets]
        maps = peer(input_tensor=x, targets=tg)
        used = peer.outputs.argmax(1) if targets is None else torch.tensor(targets)
    return torch.from_numpy(maps), used


def vit_case() -> tuple[nn.Module, str, Any, torch.Tensor]:
    """A timm ViT-Tiny at 64 px (random weights), the layer the default rule chooses, the reshape that turns its
    tokens into a grid for pytorch-grad-cam, and two structured images."""
    import timm

    from lightning_cam.methods import choose_target_layer
    from lightning_cam.methods.layers import reshape_activation

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=64).eval()
    x = structured_images(2, 64, seed=1)
    choice = choose_target_layer(model, x)

    def reshape(t: torch.Tensor) -> torch.Tensor:
        return reshape_activation(t, choice.layout, choice.name, model=model, image_size=(64, 64),
                                  prefix=choice.prefix)

    return model, choice.name, reshape, x
