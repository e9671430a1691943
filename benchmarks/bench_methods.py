"""Benchmark lightning_cam's CAM engine against a plain forward and the peer libraries, side by side.

Run: ``python benchmarks/bench_methods.py [--threads 2] [--repeats 7]``. Everything runs in one process on
the same inputs; timings are interleaved round-robin (so load drift hits every contender alike) and the
median of ``--repeats`` runs after a warm-up is reported. Printed ratios are what matters, not seconds.

* Grad-CAM: ResNet-18 (random weights, eval) at 224x224, batch 8, target ``layer4``: our Grad-CAM time over
  one plain inference forward, and pytorch-grad-cam's / torchcam's Grad-CAM time over ours.
* Score-CAM: the same model, smaller (batch 2 at 96x96 by default) because the exact method needs
  ``B * 512`` forwards: ours exact, ours fast (``top_k``), pytorch-grad-cam, torchcam; all with a chunk of
  64 masked images per forward. Also the per-sample Pearson correlation of the fast maps with the exact ones.
* ``--all``: every method of the registry at its defaults, and the peers' same-named methods at *their*
  defaults (pytorch-grad-cam: ``batch_size=32`` masked images for Score-CAM; torchcam: ``batch_size=32``,
  Smooth Grad-CAM++ with 4 samples where ours takes 8), each as a multiple of one plain forward of the same
  batch; Score-CAM (512 masked forwards per image) on its own smaller batch (``--score-batch``/``--score-size``).
* ``--quick``: ``--all`` on batch 4 at 112 px (Score-CAM: 1 image at 64 px), one repeat: a couple of minutes on
  a 2-core CPU. With CUDA the model runs on the GPU and absolute milliseconds are printed.

    python benchmarks/bench_methods.py                  # Grad-CAM and Score-CAM vs the peers
    python benchmarks/bench_methods.py --all --quick    # every method and the peers' defaults, small
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torchvision

from lightning_cam.methods import GradCAM, ScoreCAM, get_method

#: registry name -> (pytorch-grad-cam class name, torchcam class name); None where the peer has no such method
PEERS: dict[str, tuple[str | None, str | None]] = {
    "cam": (None, "CAM"), "gradcam": ("GradCAM", "GradCAM"), "gradcam_pp": ("GradCAMPlusPlus", "GradCAMpp"),
    "smoothgradcam_pp": (None, "SmoothGradCAMpp"), "xgradcam": ("XGradCAM", "XGradCAM"),
    "layercam": ("LayerCAM", "LayerCAM"), "hirescam": ("HiResCAM", None), "scorecam": ("ScoreCAM", "ScoreCAM"),
    "eigencam": ("EigenCAM", None), "fakecam": (None, None),
    "ablationcam": ("AblationCAM", None), "gradcam_elementwise": ("GradCAMElementWise", None),
    "eigengradcam": ("EigenGradCAM", None),
    "fem": ("FEM", None), "finercam": ("FinerCAM", None), "kpcacam": ("KPCA_CAM", None),
    "randomcam": ("RandomCAM", None), "segeigencam": ("SegEigenCAM", None),
    "fullgrad": ("FullGrad", None), "shapleycam": ("ShapleyCAM", None),
}
#: the noisy/integrated Score-CAM variants' samples on both sides (their floor is samples x B x C forwards)
VARIANT_SAMPLES = 2


def _report(name: str, inp: torch.Tensor, fns: dict[str, Callable[[], object]], repeats: int) -> None:
    """One line: each contender's median time as a multiple of the plain forward (``fns["forward"]``)."""
    try:
        t = _median_times(fns, repeats, warmup=1)
    except (RuntimeError, TypeError, ValueError, AttributeError, IndexError) as err:  # a peer's API drift
        print(f"{name}: failed ({type(err).__name__}: {err})")
        return
    cuda = inp.device.type == "cuda"
    parts = [f"{k} {t[k] / t['forward']:.2f}x" + (f" ({t[k] * 1e3:.0f} ms)" if cuda else "")
             for k in fns if k != "forward"]
    print(f"{name} (batch {inp.shape[0]}, {inp.shape[-1]} px), in forwards: " + "; ".join(parts))


def _plain(model: torch.nn.Module, inp: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            out = model(inp)
        if inp.device.type == "cuda":
            torch.cuda.synchronize()
        return out
    return run


def _torchcam_score_family(cls_name: str, model: torch.nn.Module, inp: torch.Tensor, **kwargs: object) -> object:
    """One call of a torchcam Score-CAM-family extractor (no gradient: the classes from a no-grad forward), its
    hooks freed after it."""
    import torchcam.methods as tcm

    extractor = getattr(tcm, cls_name)(model, "layer4", input_shape=tuple(inp.shape[1:]), **kwargs)
    try:
        with torch.no_grad():
            scores = model(inp)
        return extractor(class_idx=scores.argmax(1).tolist())
    finally:
        extractor.remove_hooks()


def _newest_methods(model: torch.nn.Module, x: torch.Tensor, xs: torch.Tensor, repeats: int,
                    only: set[str] | None = None) -> None:
    """The methods whose setup differs from one layer at the defaults: Refine-CAM over layer3 and layer4, SS-CAM and
    IS-CAM with `VARIANT_SAMPLES` samples on both sides, LeGrad on a small torchvision ViT."""
    import pytorch_grad_cam as pgc
    import torchcam.methods as tcm
    from torchvision.models import VisionTransformer

    def tc_variant(cls_name: str) -> Callable[[], object]:
        return lambda: _torchcam_score_family(cls_name, model, xs, num_samples=VARIANT_SAMPLES)

    def pgc_refine() -> object:
        out = pgc.RefineCAM(model, [model.layer3, model.layer4])(x)  # type: ignore[union-attr]
        model.zero_grad(set_to_none=True)
        return out

    def wanted(name: str) -> bool:
        return only is None or name in only

    refine = get_method("refinecam")(model, target_layers=["layer3", "layer4"], base_kwargs={"eps": 1e-6})
    if wanted("refinecam"):
        _report("refinecam (layer3+layer4, Grad-CAM++)", x, {"forward": _plain(model, x), "ours": lambda: refine(x),
                                                         "pytorch-grad-cam": pgc_refine}, repeats)
    for name, tc_name in (("sscam", "SSCAM"), ("iscam", "ISCAM")):
        if not wanted(name):
            continue
        ours = get_method(name)(model, "layer4", num_samples=VARIANT_SAMPLES)
        _report(f"{name} ({VARIANT_SAMPLES} samples)", xs, {"forward": _plain(model, xs),
                                                            "ours": lambda o=ours: o(xs),
                                                            "torchcam": tc_variant(tc_name)}, repeats)
    if not wanted("legrad"):
        return
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=x.shape[-1], patch_size=16, num_layers=6, num_heads=6, hidden_dim=192,
                            mlp_dim=768, num_classes=1000).eval().to(x.device)
    legrad = get_method("legrad")(vit)
    blocks = [name for name, m in vit.named_modules() if hasattr(m, "self_attention")]

    def tc_legrad() -> object:
        extractor = tcm.LeGrad(vit, blocks)
        try:
            scores = vit(x)
            return extractor(class_idx=scores.argmax(1).tolist())
        finally:
            extractor.remove_hooks()
            vit.zero_grad(set_to_none=True)

    _report("legrad (ViT, 6 blocks)", x, {"forward": _plain(vit, x), "ours": lambda: legrad(x),
                                          "torchcam": tc_legrad}, repeats)


def _every_method(model: torch.nn.Module, x: torch.Tensor, xs: torch.Tensor, repeats: int,
                  only: set[str] | None = None) -> None:
    """Every method at its defaults next to the peers' defaults, in forwards of the same batch."""
    import pytorch_grad_cam as pgc
    import torchcam.methods as tcm
    import tqdm

    device = x.device
    layer = model.layer4  # type: ignore[union-attr]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            out = fn()
            sync()
            return out
        return run

    def pgc_call(cls_name: str, inp: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            with getattr(pgc, cls_name)(model=model, target_layers=[layer]) as cam:
                out = cam(input_tensor=inp, targets=None)
            model.zero_grad(set_to_none=True)
            return out
        return run

    def tc_call(cls_name: str, inp: torch.Tensor) -> Callable[[], object]:
        if cls_name == "ScoreCAM":
            return lambda: _torchcam_score_family(cls_name, model, inp)

        def run() -> object:
            extractor = getattr(tcm, cls_name)(model, "layer4", input_shape=tuple(inp.shape[1:]))
            try:
                scores = model(inp)
                return extractor(class_idx=scores.argmax(1).tolist(), scores=scores)
            finally:
                extractor.remove_hooks()
                model.zero_grad(set_to_none=True)
        return run

    orig_tqdm = tqdm.tqdm
    tqdm.tqdm = lambda it, *a, **k: it  # silence pytorch-grad-cam's progress bars
    try:
        for name, (pgc_name, tc_name) in PEERS.items():
            if only is not None and name not in only:
                continue
            inp = xs if name in ("scorecam", "ablationcam") else x  # B x C forwards each
            ours = get_method(name)(model, "layer4")

            def plain(inp: torch.Tensor = inp) -> object:
                with torch.inference_mode():
                    return model(inp)

            fns: dict[str, Callable[[], object]] = {"forward": timed(plain), "ours": timed(lambda o=ours, i=inp: o(i))}
            if pgc_name is not None:
                fns["pytorch-grad-cam"] = timed(pgc_call(pgc_name, inp))
            if tc_name is not None:
                fns["torchcam"] = timed(tc_call(tc_name, inp))
            _report(name, inp, fns, repeats)
        _newest_methods(model, x, xs, repeats, only)
    finally:
        tqdm.tqdm = orig_tqdm


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
    parser.add_argument("--all", action="store_true", help="every method and the peers' defaults")
    parser.add_argument("--quick", action="store_true", help="--all on small inputs, one repeat")
    parser.add_argument("--only", default=None, help="with --all: these methods only (comma-separated names)")
    args = parser.parse_args()
    if args.quick:
        args.all, args.batch, args.size, args.repeats, args.score_batch, args.score_size = True, 4, 112, 1, 1, 64

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    if args.all:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        print(f"setup: resnet18 (random weights) layer4, {args.size}x{args.size} batch {args.batch}, "
              f"{'GPU' if device.type == 'cuda' else f'CPU, {args.threads} threads'}, median of {args.repeats}")
        xs = torch.randn(args.score_batch, 3, args.score_size, args.score_size, device=device)
        only = None if args.only is None else set(args.only.split(","))
        _every_method(model, x.to(device), xs, args.repeats, only)
        return

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
        return _torchcam_score_family("ScoreCAM", model, xs, batch_size=64)

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
