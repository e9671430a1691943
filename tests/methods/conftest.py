"""Shared fixtures for the CAM method tests: small seeded models and structured inputs."""

from __future__ import annotations

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
