"""Cost of the default-layer rule (``lightning_cam.methods.choose_target_layer``), once per model and input shape,
in forwards: its time over one plain ``no_grad`` forward of the same 2 images, measured interleaved in one process
(forward, rule, forward, ...; the median of ``--repeats``), random weights, nothing downloaded.

    python benchmarks/bench_choose.py                       # ResNet-18, EfficientNet-B0, ViT-Tiny, Swin-T at 224 px
    python benchmarks/bench_choose.py --size 128 --repeats 5
    python benchmarks/bench_choose.py --set small           # 9-token last stages, and CrossViT (no single cut)

``--set small``: the models whose last stage has 9 tokens at a small input (a 3x3 grid, or 2x2 after five prefix
tokens: settled from a 4-D output's grid), each at its own size, and CrossViT, whose branches meet only at the
head (the rule's search for a set of layers).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

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


def _hf(kind: str) -> nn.Module:
    import transformers as hf

    config: Any
    if kind == "swinv2":
        config = hf.Swinv2Config(image_size=96, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1],
                                 num_heads=[1, 1, 2, 2], window_size=3)
        config.num_labels = 5
        return hf.Swinv2ForImageClassification(config)
    config = hf.PvtV2Config(image_size=96, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                            num_attention_heads=[1, 1, 2, 4])
    config.num_labels = 5
    return hf.PvtV2ForImageClassification(config)


#: name -> (factory, input size)
SMALL: dict[str, tuple[Callable[[int], nn.Module], int]] = {
    "timm_twins_pcpvt_small": (lambda size: timm.create_model("twins_pcpvt_small", pretrained=False), 96),
    "timm_gmlp_ti16": (lambda size: timm.create_model("gmlp_ti16_224", pretrained=False, img_size=size), 48),
    "hf_swinv2": (lambda size: _hf("swinv2"), 96),
    "hf_pvtv2": (lambda size: _hf("pvtv2"), 96),
    "timm_crossvit_tiny": (lambda size: timm.create_model("crossvit_tiny_240", pretrained=False), 240),
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
    parser.add_argument("--set", choices=["default", "small"], default="default")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {name: (factory, args.size) for name, factory in MODELS.items()} if args.set == "default" else SMALL
    for name, (factory, size) in models.items():
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        model = factory(size).eval()
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
        print(f"{name:22s} {size}px: rule {ratio:5.1f} forwards ({statistics.median(rules) * 1e3:7.1f} ms) "
              f"-> {choice.name} ({choice.layout}, {choice.grid[0]}x{choice.grid[1]})", flush=True)


if __name__ == "__main__":
    main()
