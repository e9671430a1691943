"""Cost of several methods per batch (shared pass vs separate), of the chunked defaults, and Score-CAM fast mode.

Command lines (every figure of the README's "Shared pass and chunk sizes" lines comes from these):

    python benchmarks/bench_shared.py                      # all sections, ResNet-18 224 px, batch 8
    python benchmarks/bench_shared.py --sections group smooth insdel --repeats 5
    python benchmarks/bench_shared.py --sections scorecam  # the fast-mode curve (slow: exact Score-CAM)

Costs are in "forwards": the median time of the work over the median time of one plain inference forward
of the same batch, measured interleaved in one process (forward, contender, forward, ...), so load drift
hits both alike. When CUDA is present the model runs there and absolute GPU milliseconds are printed too.

* group: Grad-CAM + Grad-CAM++ + Eigen-CAM with the five ADCC metrics, each method alone (``evaluate_batch``
  per method, as the callback did) vs one ``MethodGroup`` pass then ``evaluate_batch(result=...)``.
* smooth: Smooth Grad-CAM++ (8 copies) with the default chunking, with given targets (no clean forward) and
  all copies at once; floor: 8 forwards.
* insdel: insertion + deletion at ``steps=20`` with the default chunking vs ``batch_size=32``; floor: 40.
* scorecam: per-sample Pearson of fast-mode maps with the exact maps, for several channel selections and
  budgets (masked forwards relative to exact).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torchvision

from lightning_cam import evaluate_batch
from lightning_cam.functional.perturbation import insertion_deletion
from lightning_cam.methods import EigenCAM, GradCAM, GradCAMPlusPlus, MethodGroup, ScoreCAM, SmoothGradCAMPlusPlus
from lightning_cam.methods.base import Need
from lightning_cam.methods.capture import Capture
from lightning_cam.targets.task import target_probability

ADCC = ("average_drop", "increase", "coherency", "complexity", "adcc")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_times(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _report(title: str, t: dict[str, float], device: torch.device) -> None:
    fwd = t["forward"]
    unit = "GPU ms" if device.type == "cuda" else "ms"
    print(f"## {title}")
    for name, value in t.items():
        print(f"{name:<46} {value * 1e3:9.1f} {unit} = {value / fwd:6.2f} forwards")


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double().flatten(1), b.double().flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


class _Selected(ScoreCAM):
    """Score-CAM fast mode with another channel selection (for the curve only)."""

    def __init__(self, model: torch.nn.Module, layer: str, top_k: int, how: str) -> None:
        super().__init__(model, layer, top_k=top_k)
        self.how = how

    def needs(self) -> Need:
        return "grad" if self.how == "gradcam" else "activation"

    def select(self, cap: Capture) -> torch.Tensor:
        acts = cap.activations
        assert self.top_k is not None
        if self.how == "variance":
            score = acts.flatten(2).var(dim=2)
        elif self.how == "max":
            score = acts.flatten(2).amax(dim=2)
        elif self.how == "gradcam":
            assert cap.grads is not None
            score = cap.grads.mean(dim=(2, 3)) * acts.mean(dim=(2, 3))  # the channel's Grad-CAM contribution
        else:
            score = acts.mean(dim=(2, 3))
        return score.topk(self.top_k, dim=1).indices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=["group", "smooth", "insdel", "scorecam"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--score-images", type=int, default=6)
    parser.add_argument("--score-size", type=int, default=96)
    parser.add_argument("--top-k", type=int, nargs="+", default=[26, 51, 64])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    print(f"# ResNet-18 (random weights) {args.size}px batch {args.batch} on {device}, {args.threads} threads, "
          f"median of {args.repeats} interleaved runs")

    def forward() -> object:
        with torch.inference_mode():
            return model(x)

    if "group" in args.sections:
        cams = {"gradcam": GradCAM(model, "layer4"), "gradcam++": GradCAMPlusPlus(model, "layer4"),
                "eigencam": EigenCAM(model, "layer4")}

        def separate() -> object:
            return [evaluate_batch(c, x, metrics=ADCC) for c in cams.values()]

        def shared() -> object:
            results = MethodGroup(cams).explain(x)
            return [evaluate_batch(c, x, metrics=ADCC, result=results[n]) for n, c in cams.items()]

        def maps_separate() -> object:
            return [c.explain(x) for c in cams.values()]

        t = _median_times({"forward": forward, "3 methods, maps only, separate": maps_separate,
                           "3 methods, maps only, MethodGroup": lambda: MethodGroup(cams).explain(x),
                           "3 methods + ADCC five, separate": separate,
                           "3 methods + ADCC five, MethodGroup": shared}, args.repeats, device)
        _report("Grad-CAM + Grad-CAM++ + Eigen-CAM per batch", t, device)

    if "smooth" in args.sections:
        default = SmoothGradCAMPlusPlus(model, "layer4", num_samples=8)
        at_once = SmoothGradCAMPlusPlus(model, "layer4", num_samples=8, batch_size=8 * args.batch)
        with torch.no_grad():
            known = model(x).argmax(1)  # targets given: no clean forward (its logits only if read)
        t = _median_times({"forward": forward, "smoothgradcam++ n=8, default chunks": lambda: default(x),
                           "smoothgradcam++ n=8, targets given": lambda: default(x, known.clone()),
                           "smoothgradcam++ n=8, all copies at once": lambda: at_once(x)}, args.repeats, device)
        _report("Smooth Grad-CAM++ (floor: 8 forwards)", t, device)

    if "insdel" in args.sections:
        maps = GradCAM(model, "layer4")(x)
        with torch.no_grad():
            logits = model(x)
        tgt = logits.argmax(1)
        probs = target_probability(logits, tgt)

        def insdel(bs: int | None) -> Callable[[], object]:
            def run() -> object:
                with torch.no_grad():
                    return insertion_deletion(model, x, maps, tgt, probs, steps=20, batch_size=bs)

            return run

        t = _median_times({"forward": forward, "insertion+deletion steps=20, default chunks": insdel(None),
                           "insertion+deletion steps=20, batch_size=32": insdel(32)}, max(3, args.repeats // 2),
                          device)
        _report("Insertion + deletion (floor: 40 forwards)", t, device)

    if "scorecam" in args.sections:
        g = torch.Generator().manual_seed(0)
        xs = torch.randn(args.score_images, 3, args.score_size, args.score_size, generator=g).to(device)
        exact = ScoreCAM(model, "layer4")(xs)
        print(f"## Score-CAM fast mode: min / median per-sample Pearson with exact maps, ResNet-18 layer4 (512 "
              f"channels), {args.score_images} Gaussian-noise images of {args.score_size}px")
        for k in args.top_k:
            cells = []
            for how in ("mean", "variance", "max", "gradcam"):
                r = _pearson(_Selected(model, "layer4", k, how)(xs), exact)
                cells.append(f"{how} {float(r.min()):.3f}/{float(r.median()):.3f}")
            print(f"top_k={k:<4} ({512 / k:4.1f}x fewer masked forwards): " + "  ".join(cells))


if __name__ == "__main__":
    main()
