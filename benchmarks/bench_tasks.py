"""What a multi-label (image, class) pair costs against a softmax classifier's scored sample: Grad-CAM and the
ADCC five through ``evaluate_batch`` on ResNet-18 (random weights), in images forwarded per explained map
(counted) and in time per map over a plain ``no_grad`` forward of one image (measured interleaved in one
process, the median of ``--repeats``).

    python benchmarks/bench_tasks.py                # 224 px, 16 images, 3 labels each
    python benchmarks/bench_tasks.py --size 128 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from lightning_cam import evaluate_batch
from lightning_cam.methods import GradCAM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--labels", type=int, default=3, help="positive labels per image (multi-label)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    seen = [0]
    model.register_forward_pre_hook(lambda module, inputs: seen.__setitem__(0, seen[0] + inputs[0].shape[0]))
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    hot = torch.zeros(args.batch, 10, dtype=torch.bool)
    hot[:, : args.labels] = True
    runs = {
        "multiclass, predicted class": (GradCAM(model, "layer4"), None),
        "multilabel, true labels": (GradCAM(model, "layer4", task="multilabel"), hot),
        "multilabel, predicted positives": (GradCAM(model, "layer4", task="multilabel"), None),
    }
    times: dict[str, list[float]] = {name: [] for name in ("forward", *runs)}
    maps: dict[str, int] = {}
    forwarded: dict[str, int] = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        with torch.no_grad():
            model(x)
        times["forward"].append((time.perf_counter() - start) / args.batch)
        for name, (cam, targets) in runs.items():
            seen[0] = 0
            start = time.perf_counter()
            values = evaluate_batch(cam, x, targets)
            n = int(values["adcc"].shape[0])
            times[name].append((time.perf_counter() - start) / max(n, 1))
            maps[name], forwarded[name] = n, seen[0]
    forward = statistics.median(times["forward"])
    print(f"# ResNet-18 (random weights, 10 logits) {args.size}px, {args.batch} images, Grad-CAM + ADCC five via "
          f"evaluate_batch, {torch.get_num_threads()} threads, median of {args.repeats} interleaved runs")
    for name in runs:
        print(f"{name:33s} maps {maps[name]:3d}  images forwarded per map {forwarded[name] / maps[name]:.2f}  "
              f"time per map {statistics.median(times[name]) / forward:.2f} forwards")


if __name__ == "__main__":
    main()
