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
