"""The callback at the realistic setting: cost per scored sample against its floor, and a real training epoch.

Two sections, each measured side by side in one process (runs interleaved; in ``sample`` each repeat's ratios
from its adjacent runs, then the median over ``--repeats``, so a busy machine hurts every side alike):

``sample`` (ResNet-18, random weights, 224 px Shapes, ``--num-val`` scored samples, default 256; the callback's
defaults otherwise: the default metrics and views, the 8-image probe grid, TensorBoard):

* the **callback's CAM cost per scored sample, in forwards**: ``trainer.validate`` with the callback minus
  without it, over ``trainer.validate`` without it (one inference forward per sample, data loading and the
  loop included);
* the **floor** the same way: the engine alone on the same batches (one :class:`~lightning_cam.methods.MethodGroup`
  pass, then :func:`~lightning_cam.evaluate_batch` with the same metrics per method), and the **excess** (the
  callback's cost above the floor: probe grid, views, rendering, bookkeeping);
* the fixed cost per run ``F`` (from a second callback run scoring ``--num-val / 4`` samples: cost = F + S·c);
* milliseconds per scored sample, the host reads (CPU: `benchmarks/syncs.py`) or
  synchronizing CUDA calls (GPU: `CudaSyncs`) per batch and per run,
  and on a GPU the peak memory of the validation with the callback over that of a plain one.

``parts`` (the same model and data): the callback's work per validation run **split by part**, timed in its own
hooks (``CAMCallback(timing=True)``, `lightning_cam.utilities.stopwatch`: exclusive seconds, so the parts add up),
for 1 and 3 methods and 8, 64 and 256 scored samples, next to the validation loop's own time (``trainer.validate``
without the callback); ``excess`` is everything but ``batch/passes`` (the methods' and the metrics' forwards and
backwards: the floor), so what grows with the samples shows along a row.

``epoch`` (ResNet-18 on ``--epoch-train`` synthetic images, default 10 000, of ``--epoch-size`` px, 1 000 validation
images, batch 64, one epoch): ``fit`` with the callback's defaults over ``fit`` without it, next to the overhead
the formula predicts from the per-sample cost::

    overhead = (S · c · t_f + F + F_fit / E) / T_epoch

with ``S`` the samples scored per validation (``max_samples``, 256), ``c`` the CAM cost per scored sample in
forwards and ``F`` the fixed cost per run (both measured here at the epoch's image size, like the ``sample``
section), ``t_f`` one inference forward per sample, ``F_fit`` the once-per-fit work (the evolution and summary
images at the end of ``fit``, timed in the callback's hooks) spread over ``E`` epochs (1 here) and ``T_epoch``
the epoch without the callback.

    python benchmarks/bench_realistic.py                        # both sections (CPU: about 30 minutes)
    python benchmarks/bench_realistic.py --sections sample --methods 1 3
    python benchmarks/bench_realistic.py --sections parts                    # about 6 minutes on this CPU
    python benchmarks/bench_realistic.py --sections epoch --epoch-size 112

With CUDA the runs use the GPU and everything is printed in one command.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger

from lightning_cam import CAMCallback, evaluate_batch
from lightning_cam.callbacks.options import build_methods, resolve_methods
from lightning_cam.data import ShapesDataModule
from lightning_cam.methods import MethodGroup
from lightning_cam.metrics import default_metrics
from lightning_cam.models import ResNetClassifier
from lightning_cam.utilities.modes import eval_mode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: benchmarks.syncs
from benchmarks.syncs import CudaSyncs, HostReads, watch_hooks

#: the method sets of the realistic setting, by count
METHODS: dict[int, tuple[str, ...]] = {
    1: ("gradcam",), 3: ("gradcam", "gradcam_pp", "eigencam"),
    5: ("gradcam", "gradcam_pp", "eigencam", "xgradcam", "layercam"),
}
CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")


def _sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and process CPU time of ``fn()`` (CPU time, all threads: the steadier on a machine shared with other
    jobs, whose load slows the wall clock but not this process's work)."""
    _sync()
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync()
    return time.perf_counter() - start, time.process_time() - cpu


#: every run's logs, removed when the benchmark exits (each run had a directory of its own left in /tmp)
_SCRATCH = tempfile.TemporaryDirectory(prefix="bench_realistic_")


def _trainer(callbacks: list[pl.Callback], epochs: int = 1) -> pl.Trainer:
    logger = TensorBoardLogger(tempfile.mkdtemp(dir=_SCRATCH.name), name="bench")
    return pl.Trainer(accelerator="gpu" if CUDA else "cpu", devices=1, max_epochs=epochs, logger=logger,
                      callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, num_sanity_val_steps=0)


def _data(num_train: int, num_val: int, size: int, batch: int) -> ShapesDataModule:
    dm = ShapesDataModule(num_train=num_train, num_val=num_val, image_size=size, batch_size=batch, seed=0)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _model(dm: ShapesDataModule) -> ResNetClassifier:
    torch.manual_seed(0)
    return ResNetClassifier(num_classes=5, arch="resnet18", class_names=dm.class_names, mean=dm.hparams.mean,
                            std=dm.hparams.std)


def _validate(dm: ShapesDataModule, model: pl.LightningModule, callback: CAMCallback | None) -> Callable[[], Any]:
    return lambda: _trainer([] if callback is None else [callback]).validate(model, dm, verbose=False)


def _engine(dm: ShapesDataModule, model: ResNetClassifier, methods: tuple[str, ...]) -> Callable[[], Any]:
    """The floor: what the callback must compute per batch, the engine alone (no Lightning loop, no views)."""
    cams = build_methods(resolve_methods(methods), model.cam_model(), model.cam_layer(), {},
                         model.cam_method_kwargs())
    group = MethodGroup(cams)

    def run() -> None:
        model.to(DEVICE)
        with eval_mode(model), torch.enable_grad():
            for batch in dm.val_dataloader():
                parts = model.cam_inputs(pl.utilities.move_data_to_device(batch, DEVICE))
                results = group.explain(parts.images)
                for name, cam in cams.items():
                    evaluate_batch(cam, parts.images, results[name].targets, parts.masks, metrics=default_metrics(),
                                   boxes=parts.boxes, result=results[name])

    return run


def _peak(fn: Callable[[], Any]) -> int:
    torch.cuda.reset_peak_memory_stats()
    fn()
    return int(torch.cuda.max_memory_allocated())


def _syncs(dm: ShapesDataModule, model: pl.LightningModule, methods: tuple[str, ...], n: int) -> str:
    counter: HostReads | CudaSyncs = CudaSyncs() if CUDA else HostReads()
    with watch_hooks(counter):
        _validate(dm, model, CAMCallback(methods=methods, max_samples=n))()
    batches = len(dm.val_dataloader())
    per_run = sum(v for k, v in counter.counts.items() if not k.startswith("batch:"))
    what = "synchronizing CUDA calls" if CUDA else "host reads"
    return f"{what}: {counter.per_batch(batches):.2f} per batch ({batches} batches), {per_run} at the run's end"


def sample_section(args: argparse.Namespace) -> None:
    n = args.num_val
    dm = _data(64, n, args.size, args.batch_size)
    model = _model(dm)
    device = f"GPU {torch.cuda.get_device_name()}" if CUDA else f"CPU, torch threads {torch.get_num_threads()}"
    print(f"# sample: ResNet-18 (random weights) on {args.size}px Shapes, {n} val samples all scored, batch "
          f"{args.batch_size}, callback defaults otherwise (metrics {', '.join(default_metrics())}; default views; "
          f"8-image probe grid; TensorBoard); {device}; median of {args.repeats} interleaved repeats")
    _validate(dm, model, CAMCallback(max_samples=n))()  # warm-up
    for k in args.methods:
        methods = METHODS[k]
        small = max(1, n // 4)
        runs: dict[str, list[tuple[float, float]]] = {"plain": [], "engine": [], "callback": [], "small": []}
        for _ in range(args.repeats):
            runs["plain"].append(_timed(_validate(dm, model, None)))
            runs["engine"].append(_timed(_engine(dm, model, methods)))
            runs["callback"].append(_timed(_validate(dm, model, CAMCallback(methods=methods, max_samples=n))))
            runs["small"].append(_timed(_validate(dm, model, CAMCallback(methods=methods, max_samples=small))))
        for clock, i in (("wall", 0), ("CPU", 1)):
            # each repeat's own ratios (its runs were adjacent), then the median over repeats: load that drifts
            # between repeats cancels within each
            plain = [r[i] for r in runs["plain"]]
            cost = statistics.median((c[i] - p) / p for c, p in zip(runs["callback"], plain))
            floor = statistics.median(e[i] / p for e, p in zip(runs["engine"], plain))
            small_cost = statistics.median((c[i] - p) / p for c, p in zip(runs["small"], plain))
            per = (cost - small_cost) / (n - small)  # forwards per scored sample (the slope c)
            base = statistics.median(plain)
            fixed = (cost - n * per) * base  # seconds per run
            print(f"{k} method(s) [{', '.join(methods)}], {clock} time: callback {cost:.2f} forwards per scored "
                  f"sample, floor {floor:.2f} (MethodGroup + evaluate_batch on the same batches), excess "
                  f"{cost - floor:+.2f}; {1e3 * cost * base / n:.1f} ms per scored sample ({1e3 * base / n:.1f} ms "
                  f"per validation forward); fixed cost per run F = {fixed:.2f}s, slope c = {n * per:.2f} forwards")
        if CUDA:
            ratio = _peak(_validate(dm, model, CAMCallback(methods=methods, max_samples=n))) / _peak(
                _validate(dm, model, None))
            print(f"    peak memory: {ratio:.2f}x a plain validation's")
        print(f"    {_syncs(dm, model, methods, n)}")


def parts_section(args: argparse.Namespace) -> None:
    counts = (8, 64, 256)
    dm = _data(64, max(counts), args.size, args.batch_size)
    model = _model(dm)
    _validate(dm, model, CAMCallback(max_samples=8))()  # warm-up
    loop = statistics.median(_timed(_validate(dm, model, None))[0] for _ in range(2))
    print(f"# parts: ResNet-18 (random weights) on {args.size}px Shapes, {max(counts)} validation images, batch "
          f"{args.batch_size}, callback defaults otherwise; seconds per validation run in the callback's hooks "
          f"(timing=True; {'GPU' if CUDA else 'CPU'}); the validation loop alone: {loop:.2f}s")
    columns: dict[str, dict[str, float]] = {}
    for k in args.methods:
        for n in counts:
            callback = CAMCallback(methods=METHODS[k], max_samples=n, timing=True)
            _validate(dm, model, callback)()
            columns[f"{k}m/{n}"] = callback.timings
    every = columns.values()
    parts = sorted({p for t in every for p in t}, key=lambda p: -max(t.get(p, 0.0) for t in every))
    print(f"{'part':34s}" + "".join(f"{c:>10s}" for c in columns))
    for part in parts:
        row = [t.get(part, 0.0) for t in columns.values()]
        if max(row) >= 0.005:
            print(f"{part:34s}" + "".join(f"{v:10.3f}" for v in row))
    excess = {c: sum(v for p, v in t.items() if p != "batch/passes") for c, t in columns.items()}
    print(f"{'excess (all but batch/passes)':34s}" + "".join(f"{v:10.3f}" for v in excess.values()))
    print(f"{'callback total':34s}" + "".join(f"{sum(t.values()):10.3f}" for t in columns.values()))
    for c, t in columns.items():
        n = int(c.split("/")[1])
        print(f"{c}: excess {excess[c]:.2f}s per validation run ({1e3 * excess[c] / n:.1f} ms per scored sample), "
              f"CAM passes {t.get('batch/passes', 0.0):.2f}s, validation loop {loop:.2f}s")


@contextlib.contextmanager
def _fit_hooks_timed() -> Iterator[list[float]]:
    """Seconds spent in ``CAMCallback.on_fit_start`` and ``on_fit_end`` (the once-per-fit work), in ``[0]``."""
    spent = [0.0]
    originals = {hook: getattr(CAMCallback, hook) for hook in ("on_fit_start", "on_fit_end")}

    def timed(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, *args: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(self, *args)
            finally:
                spent[0] += time.perf_counter() - start

        return run

    try:
        for hook, original in originals.items():
            setattr(CAMCallback, hook, timed(original))
        yield spent
    finally:
        for hook, original in originals.items():
            setattr(CAMCallback, hook, original)


def epoch_section(args: argparse.Namespace) -> None:
    dm = _data(args.epoch_train, 1000, args.epoch_size, 64)
    print(f"# epoch: ResNet-18 (random weights), {args.epoch_train} train / 1000 val images of {args.epoch_size}px, "
          f"batch 64, 1 epoch; CAMCallback() defaults (gradcam, max_samples=256, default metrics and views, probe "
          f"grid, TensorBoard) vs no callback; {'GPU' if CUDA else 'CPU'}, min of {args.epoch_repeats} runs")
    fits: dict[str, list[float]] = {"plain": [], "callback": []}
    per_fit: list[float] = []
    for _ in range(args.epoch_repeats):
        fits["plain"].append(_timed(lambda: _trainer([]).fit(_model(dm), dm))[0])
        with _fit_hooks_timed() as spent:
            fits["callback"].append(_timed(lambda: _trainer([CAMCallback()]).fit(_model(dm), dm))[0])
        per_fit.append(spent[0])
    plain, watched, once = min(fits["plain"]), min(fits["callback"]), min(per_fit)
    # the formula's terms at this image size: t_f, c and F from validations of 256 and 64 scored samples
    val = _data(64, 256, args.epoch_size, 64)
    model = _model(val)
    _validate(val, model, None)()  # warm-up
    base = min(_timed(_validate(val, model, None))[0] for _ in range(2))
    full = min(_timed(_validate(val, model, CAMCallback(max_samples=256)))[0] for _ in range(2))
    quarter = min(_timed(_validate(val, model, CAMCallback(max_samples=64)))[0] for _ in range(2))
    t_f = base / 256
    c = (full - quarter) / (256 - 64) / t_f
    fixed = (full - base) - 256 * c * t_f
    predicted = (256 * c * t_f + fixed + once) / plain
    print(f"fit: {plain:.1f}s -> {watched:.1f}s with the callback = {watched / plain:.3f}x "
          f"(+{100 * (watched / plain - 1):.1f}%)")
    print(f"formula: (S * c * t_f + F + F_fit) / T_epoch = (256 * {c:.2f} * {1e3 * t_f:.1f} ms + {fixed:.2f}s + "
          f"{once:.2f}s) / {plain:.1f}s = +{100 * predicted:.1f}% predicted, +{100 * (watched / plain - 1):.1f}% "
          f"measured (F_fit: the callback's start and end of fit, once per fit: the evolution and summary images)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=["sample", "parts", "epoch"],
                        choices=["sample", "parts", "epoch"])
    parser.add_argument("--methods", nargs="+", type=int, default=[1, 3], choices=sorted(METHODS))
    parser.add_argument("--num-val", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epoch-train", type=int, default=10_000)
    parser.add_argument("--epoch-size", type=int, default=224)
    parser.add_argument("--epoch-repeats", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if "sample" in args.sections:
        sample_section(args)
    if "parts" in args.sections:
        parts_section(args)
    if "epoch" in args.sections:
        epoch_section(args)


if __name__ == "__main__":
    main()
