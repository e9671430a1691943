"""Benchmark lightning_cam's CAM engine against a plain forward and the peer libraries, side by side.

Run: ``python benchmarks/bench_methods.py [--threads 2] [--repeats 7]``. Everything runs in one process on
the same inputs; timings are interleaved round-robin (so load drift hits every contender alike) and the
median of ``--repeats`` runs after a warm-up is reported. Printed ratios are what matters, not seconds.

* Grad-CAM: ResNet-18 (random weights, eval) at 224x224, batch 8, target ``layer4``: our Grad-CAM time over
  one plain inference forward, and pytorch-grad-cam's / torchcam's Grad-CAM time over ours.
* Score-CAM: the same model, smaller (batch 2 at 96x96 by default) because the exact method needs
  ``B * 512`` forwards: ours exact, ours fast (``top_k``), pytorch-grad-cam, torchcam; all with a chunk of
  64 masked images per forward. Also the per-sample Pearson correlation of the fast maps with the exact ones.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torchvision

from lightning_cam.methods import GradCAM, ScoreCAM


def _median_times(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double().flatten(1), b.double().flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--score-batch", type=int, default=2)
    parser.add_argument("--score-size", type=int, default=96)
    parser.add_argument("--score-repeats", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=64)
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)

    import torchcam.methods as tcm
    from pytorch_grad_cam import GradCAM as PgcGradCAM
    from pytorch_grad_cam import ScoreCAM as PgcScoreCAM

    def plain() -> object:
        with torch.inference_mode():
            return model(x)

    ours = GradCAM(model, "layer4")

    # Peers keep hooks registered while they exist, so each peer call builds and releases its own extractor
    # (a negligible cost next to a ResNet forward) and all four contenders can be timed round-robin.
    def pgc_gradcam() -> object:
        with PgcGradCAM(model=model, target_layers=[model.layer4[-1]]) as pgc:
            out = pgc(input_tensor=x, targets=None)
        model.zero_grad(set_to_none=True)
        return out

    def torchcam_gradcam() -> object:
        tc = tcm.GradCAM(model, "layer4", input_shape=tuple(x.shape[1:]))
        try:
            scores = model(x)
            return tc(class_idx=scores.argmax(1).tolist(), scores=scores)
        finally:
            tc.remove_hooks()

    t = _median_times(
        {"forward": plain, "ours": lambda: ours(x), "pytorch-grad-cam": pgc_gradcam, "torchcam": torchcam_gradcam},
        args.repeats,
    )

    print(f"setup: resnet18 {args.size}x{args.size} batch {args.batch}, CPU, {args.threads} threads, "
          f"median of {args.repeats}")
    print(f"plain inference forward: {t['forward'] * 1e3:.1f} ms")
    print(f"gradcam ours: {t['ours'] * 1e3:.1f} ms = {t['ours'] / t['forward']:.2f}x one forward")
    print(f"gradcam pytorch-grad-cam: {t['pytorch-grad-cam'] * 1e3:.1f} ms = "
          f"{t['pytorch-grad-cam'] / t['forward']:.2f}x one forward; ours is "
          f"{t['pytorch-grad-cam'] / t['ours']:.2f}x faster")
    print(f"gradcam torchcam: {t['torchcam'] * 1e3:.1f} ms = {t['torchcam'] / t['forward']:.2f}x one forward; "
          f"ours is {t['torchcam'] / t['ours']:.2f}x faster")

    # ---------------------------------------------------------------- Score-CAM
    xs = torch.randn(args.score_batch, 3, args.score_size, args.score_size)
    exact = ScoreCAM(model, "layer4", batch_size=64)
    fast = ScoreCAM(model, "layer4", batch_size=64, top_k=args.top_k)
    pgc_s = PgcScoreCAM(model=model, target_layers=[model.layer4[-1]])
    pgc_s.batch_size = 64
    pgc_s.activations_and_grads.release()

    import tqdm

    def pgc_score() -> object:
        pgc_s.activations_and_grads = type(pgc_s.activations_and_grads)(model, [model.layer4[-1]], None, True)
        try:
            return pgc_s(input_tensor=xs, targets=None)
        finally:
            pgc_s.activations_and_grads.release()

    def tc_score() -> object:
        extractor = tcm.ScoreCAM(model, "layer4", batch_size=64, input_shape=tuple(xs.shape[1:]))
        try:
            with torch.no_grad():
                scores = model(xs)
            return extractor(class_idx=scores.argmax(1).tolist())
        finally:
            extractor.remove_hooks()

    orig_tqdm = tqdm.tqdm
    tqdm.tqdm = lambda it, *a, **k: it  # silence pytorch-grad-cam's progress bars
    try:
        s = _median_times(
            {"exact": lambda: exact(xs), "fast": lambda: fast(xs), "pytorch-grad-cam": pgc_score, "torchcam": tc_score},
            args.score_repeats,
            warmup=0,
        )
    finally:
        tqdm.tqdm = orig_tqdm
    corr = _pearson(fast(xs), exact(xs))
    print(f"scorecam setup: resnet18 {args.score_size}x{args.score_size} batch {args.score_batch} (512 channels), "
          f"64 masked images per forward, median of {args.score_repeats}")
    print(f"scorecam ours exact: {s['exact']:.2f} s; pytorch-grad-cam {s['pytorch-grad-cam']:.2f} s "
          f"({s['pytorch-grad-cam'] / s['exact']:.2f}x ours); torchcam {s['torchcam']:.2f} s "
          f"({s['torchcam'] / s['exact']:.2f}x ours)")
    print(f"scorecam ours fast (top_k={args.top_k}): {s['fast']:.2f} s = {s['exact'] / s['fast']:.1f}x faster than "
          f"exact, {s['pytorch-grad-cam'] / s['fast']:.1f}x faster than pytorch-grad-cam, "
          f"{s['torchcam'] / s['fast']:.1f}x faster than torchcam; per-sample Pearson with exact "
          f"min {float(corr.min()):.4f}")


if __name__ == "__main__":
    main()
