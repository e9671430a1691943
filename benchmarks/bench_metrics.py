"""Cost of the full ADCC evaluation of one batch, in plain forwards of that batch, side by side with a
pipeline assembled from pytorch-grad-cam (its GradCAM, its Coherency, a manual drop/increase).

ResNet-18 (random weights; cost does not depend on them) at 224x224 on CPU, batch 8, eval mode.
Each repeat times the three pipelines back to back (so machine load hits all alike); medians reported.

    python benchmarks/bench_metrics.py [--repeats 7] [--warmup 2] [--batch 8] [--threads N]
    python benchmarks/bench_metrics.py --road --repeats 3 --warmup 1   # the ROAD family and ARCC, ours vs the peer's

``--randomization``: the randomisation checks (``randomization``, ``random_logit``) against Quantus's MPRT (cascading
to every layer, last correlation; ``skip_layers`` so that it explains only the fully randomised model) and
RandomLogit with the same Grad-CAM as their explain function; floor: one CAM pass on the randomised copy and one for
the other class (plus the copy itself, once per state of the weights: timed apart as the first batch).

``--road``: ROAD most- and least-relevant-first, ROAD combined and ARCC on the same maps (the four percentiles of
pytorch-grad-cam's ARCC), in forwards of the batch; floor: 8 forwards for the ROAD curves (one per percentile and
order) plus ARCC's coherency pass (a forward and a backward), and the imputation's own work.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torchvision

from lightning_cam.evaluate import evaluate_batch
from lightning_cam.methods import GradCAM
from lightning_cam.metrics.registry import default_metrics


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _medians(pipelines: dict[str, Callable[[], object]], args: argparse.Namespace) -> dict[str, float]:
    """Each pipeline's median time over ``args.repeats`` interleaved rounds, after ``args.warmup`` rounds."""
    for _ in range(args.warmup):
        for fn in pipelines.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(args.repeats):
        for name, fn in pipelines.items():
            times[name].append(_time(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    parser.add_argument("--road", action="store_true", help="the ROAD family and ARCC instead of the ADCC family")
    parser.add_argument("--randomization", action="store_true", help="the randomisation checks against Quantus")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)

    ours_cam = GradCAM(model, target_layer="layer4")

    def forward() -> object:
        with torch.no_grad():
            return model(x)

    def ours() -> dict[str, torch.Tensor]:
        return evaluate_batch(ours_cam, x, metrics=default_metrics())

    from pytorch_grad_cam import GradCAM as GCGradCAM
    from pytorch_grad_cam.metrics.arcc import Coherency, Complexity
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    gc_cam = GCGradCAM(model=model, target_layers=[model.layer4])

    def peers() -> dict[str, np.ndarray]:
        with torch.no_grad():
            targets_idx = model(x).argmax(1).tolist()
        targets = [ClassifierOutputTarget(t) for t in targets_idx]
        cams = gc_cam(input_tensor=x, targets=targets)  # forward + full backward
        coherency = Coherency()(x, cams, targets, model, gc_cam)  # CAM again on x * cam
        complexity = Complexity()(cams)
        with torch.no_grad():  # manual drop / increase
            y = torch.softmax(model(x), 1)[torch.arange(len(x)), targets_idx]
            o = torch.softmax(model(x * torch.from_numpy(cams).unsqueeze(1)), 1)[torch.arange(len(x)), targets_idx]
        drop = (torch.relu(y - o) / y).numpy()
        adcc = 3 / (1 / coherency + 1 / (1 - complexity) + 1 / (1 - drop))
        return {"adcc": adcc, "increase": (o > y).float().numpy()}

    if args.road:
        _road(args, model, x, ours_cam, gc_cam, forward)
        return
    if args.randomization:
        _randomization(args, model, x, ours_cam, forward)
        return
    med = _medians({"forward": forward, "lightning_cam": ours, "pytorch-grad-cam": peers}, args)
    base = med["forward"]
    print(f"setup: resnet18 {args.size}x{args.size} batch {args.batch} CPU threads={torch.get_num_threads()} "
          f"torch {torch.__version__}; median of {args.repeats} (warm-up {args.warmup})")
    print(f"plain forward:                                  {1000 * base:8.1f} ms  = 1.00x")
    print(f"lightning_cam evaluate_batch (5 ADCC metrics):  {1000 * med['lightning_cam']:8.1f} ms  "
          f"= {med['lightning_cam'] / base:.2f}x forward")
    print(f"pytorch-grad-cam GradCAM+Coherency+manual drop: {1000 * med['pytorch-grad-cam']:8.1f} ms  "
          f"= {med['pytorch-grad-cam'] / base:.2f}x forward")
    print(f"lightning_cam speed-up over the grad-cam pipeline: {med['pytorch-grad-cam'] / med['lightning_cam']:.2f}x")
    ours_adcc = ours()["adcc"].mean().item()
    print(f"mean ADCC (sanity, same model and images): lightning_cam {ours_adcc:.4f}  "
          f"pytorch-grad-cam {float(np.mean(peers()['adcc'])):.4f}")


def _road(args: argparse.Namespace, model: torch.nn.Module, x: torch.Tensor, ours_cam: GradCAM, gc_cam: object,
          forward: Callable[[], object]) -> None:
    """ROAD MoRF/LeRF/combined and ARCC on the same maps: ours (one call) against pytorch-grad-cam's classes."""
    from pytorch_grad_cam.metrics.arcc import ARCC as PgcARCC
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    percentiles = [20, 40, 60, 80]
    result = ours_cam.explain(x)
    cams = result.maps.numpy()
    targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in result.targets]
    names = ["road_morf", "road_lerf", "road", "arcc"]

    def ours() -> object:
        return evaluate_batch(ours_cam, x, metrics=names, result=result, road_percentiles=percentiles)

    def peers() -> object:
        morf = ROADMostRelevantFirstAverage(percentiles)(x, cams, targets, model)
        lerf = ROADLeastRelevantFirstAverage(percentiles)(x, cams, targets, model)
        return morf, lerf, PgcARCC(gc_cam)(x, cams, targets, model)  # its ARCC runs its own ROAD again

    med = _medians({"forward": forward, "lightning_cam": ours, "pytorch-grad-cam": peers}, args)
    base = med["forward"]
    print(f"setup: resnet18 {args.size}x{args.size} batch {args.batch} CPU threads={torch.get_num_threads()}; "
          f"ROAD percentiles {percentiles}; median of {args.repeats} (warm-up {args.warmup})")
    print(f"lightning_cam road_morf+road_lerf+road+arcc: {1000 * med['lightning_cam']:9.1f} ms = "
          f"{med['lightning_cam'] / base:.1f}x forward (floor: 8 forwards + a CAM pass, plus the imputation)")
    print(f"pytorch-grad-cam MoRF+LeRF averagers + ARCC: {1000 * med['pytorch-grad-cam']:9.1f} ms = "
          f"{med['pytorch-grad-cam'] / base:.1f}x forward")


def _randomization(args: argparse.Namespace, model: torch.nn.Module, x: torch.Tensor, ours_cam: GradCAM,
                   forward: Callable[[], object]) -> None:
    """The randomisation checks on the same maps: ours (one call; the copy cached, or made anew) against Quantus."""
    import warnings

    import quantus

    from lightning_cam.utilities.randomize import release_twins

    warnings.filterwarnings("ignore")
    result = ours_cam.explain(x)
    names = ["randomization", "random_logit"]

    def explain(model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
        cam = GradCAM(model, "layer4")
        return cam(torch.as_tensor(inputs), torch.as_tensor(targets).long())[:, None].numpy()

    def ours() -> object:  # a later batch of the same validation run: the copy is cached
        return evaluate_batch(ours_cam, x, metrics=names, result=result)

    def ours_first() -> object:  # the run's first batch: the copy is made
        release_twins()
        return evaluate_batch(ours_cam, x, metrics=names, result=result)

    def peers() -> object:
        kw = {"x_batch": x.numpy(), "y_batch": result.targets.numpy(), "a_batch": result.maps[:, None].numpy(),
              "explain_func": explain, "device": "cpu", "batch_size": x.shape[0]}
        mprt = quantus.MPRT(skip_layers=True, return_last_correlation=True, disable_warnings=True,
                            display_progressbar=False)(model=model, **kw)
        logit = quantus.RandomLogit(num_classes=1000, disable_warnings=True,
                                    display_progressbar=False)(model=model, **kw)
        return mprt, logit

    med = _medians({"forward": forward, "lightning_cam": ours, "lightning_cam (first batch)": ours_first,
                    "quantus": peers}, args)
    base = med["forward"]
    print(f"setup: resnet18 {args.size}x{args.size} batch {args.batch} CPU threads={torch.get_num_threads()}; "
          f"median of {args.repeats} (warm-up {args.warmup})")
    print(f"lightning_cam randomization+random_logit:               {1000 * med['lightning_cam']:8.1f} ms = "
          f"{med['lightning_cam'] / base:.2f}x forward (floor: 2 CAM passes)")
    print(f"lightning_cam the same, first batch (making the copy):  {1000 * med['lightning_cam (first batch)']:8.1f} ms"
          f" = {med['lightning_cam (first batch)'] / base:.2f}x forward")
    print(f"quantus MPRT (skip_layers, last) + RandomLogit:         {1000 * med['quantus']:8.1f} ms = "
          f"{med['quantus'] / base:.2f}x forward")


if __name__ == "__main__":
    main()
