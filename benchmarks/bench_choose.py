"""Cost of the default-layer rule (``lightning_cam.methods.choose_target_layer``), once per model and input shape,
in forwards: its time over one plain ``no_grad`` forward of the same 2 images, measured interleaved in one process
(forward, rule, forward, ...; the median of ``--repeats``), random weights, nothing downloaded.

    python benchmarks/bench_choose.py                       # ResNet-18, EfficientNet-B0, ViT-Tiny, Swin-T at 224 px
    python benchmarks/bench_choose.py --size 128 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import timm
import torch
import torchvision
from torch import nn

from lightning_cam.methods import choose
from lightning_cam.methods.choose import choose_target_layer

MODELS: dict[str, Callable[[int], nn.Module]] = {
    "tv_resnet18": lambda size: torchvision.models.resnet18(weights=None),
    "timm_efficientnet_b0": lambda size: timm.create_model("efficientnet_b0", pretrained=False),
    "timm_vit_tiny": lambda size: timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=size),
    "tv_swin_t": lambda size: torchvision.models.swin_t(weights=None),
}


def _forward_time(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(2, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    for name, factory in MODELS.items():
        torch.manual_seed(0)
        model = factory(args.size).eval()
        forwards, rules = [], []
        choice = None
        for _ in range(args.repeats):
            forwards.append(_forward_time(model, x))
            choose._CACHE.pop(model, None)  # measure the decision, not the cache
            start = time.perf_counter()
            choice = choose_target_layer(model, x)
            rules.append(time.perf_counter() - start)
        assert choice is not None
        ratio = statistics.median(rules) / statistics.median(forwards)
        print(f"{name:22s} {args.size}px: rule {ratio:5.1f} forwards ({statistics.median(rules) * 1e3:7.1f} ms) "
              f"-> {choice.name} ({choice.layout}, {choice.grid[0]}x{choice.grid[1]})", flush=True)


if __name__ == "__main__":
    main()
