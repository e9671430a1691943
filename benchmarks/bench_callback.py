"""Overhead of CAMCallback on the default Shapes fit, measured side by side in one process.

Prints
* the wall-time overhead of ``fit`` with the callback vs. without it (goal: <= 10 % with the callback's
  default settings), for the callback's defaults and for the ``configs/shapes.yaml`` callback settings;
* the CAM work of one validation epoch (``trainer.validate`` with minus without the callback) as a
  multiple of the validation forward cost: one pass of the model over the validation dataloader under
  ``no_grad``, data loading included, as the validation loop does it.

Runs are interleaved (without, with, without, with, ...) and the minimum of ``--repeats`` is kept, so a
busy machine hurts both sides alike. Next to wall time, the process CPU time (``time.process_time``, all
threads) is shown: on a machine shared with other jobs it is the steadier of the two. The data/model sizes
default to ``configs/shapes.yaml``.

    python benchmarks/bench_callback.py                 # the defaults (1 epoch per fit, 2 repeats)
    python benchmarks/bench_callback.py --epochs 2 --repeats 3
    python benchmarks/bench_callback.py --epochs 2 --repeats 3 --fit-only   # the fit overhead alone (4 minutes)
    python benchmarks/bench_callback.py --views-only --epochs 2   # the cost of the views of issue 12 only

The realistic setting (ResNet-18 at 224 px, the cost per scored sample against its floor, a real training
epoch) is ``benchmarks/bench_realistic.py``.

The views (worst-case gallery, drift, agreement, strategies, per-class curves, custom-scalars layout and
summary figure) are measured as the ratio of ``fit`` with the ``configs/shapes.yaml`` callback with them
(defaults, the defaults without "strategies", then also the "per_class" view) to the same callback with all
of them off (``views=()``); the strategies view's share of the callback's time is printed on its own.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.loggers import TensorBoardLogger

from lightning_cam import CAMCallback
from lightning_cam.callbacks.views import default_views
from lightning_cam.data import ShapesDataModule
from lightning_cam.models import GAPClassifier

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "shapes.yaml"


def _config_callback() -> dict[str, Any]:
    """The CAMCallback ``init_args`` of ``configs/shapes.yaml``, so the benchmark follows the config."""
    callbacks = yaml.safe_load(CONFIG.read_text())["trainer"]["callbacks"]
    return next(c["init_args"] for c in callbacks if c["class_path"].endswith("CAMCallback"))


#: every run's logs, removed when the benchmark exits (each run had a directory of its own left in /tmp)
_SCRATCH = tempfile.TemporaryDirectory(prefix="bench_callback_")


def _accelerator() -> str:
    return "gpu" if torch.cuda.is_available() else "cpu"


def _trainer(args: argparse.Namespace, callbacks: list[pl.Callback]) -> pl.Trainer:
    # Both sides log to TensorBoard, as the default job does, so the grid rendering is part of the cost.
    logger = TensorBoardLogger(tempfile.mkdtemp(dir=_SCRATCH.name), name="bench")
    return pl.Trainer(accelerator=_accelerator(), devices=1, max_epochs=args.epochs, logger=logger, callbacks=callbacks,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      num_sanity_val_steps=0)


def _model(dm: ShapesDataModule) -> GAPClassifier:
    torch.manual_seed(0)
    return GAPClassifier(num_classes=5, channels=(16, 32, 64, 64), lr=0.003, class_names=dm.class_names,
                         mean=dm.hparams.mean, std=dm.hparams.std)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _thread_cpu() -> dict[int, float]:
    """CPU seconds of each live thread of this process (``/proc``, Linux; empty elsewhere)."""
    tick, out = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100, {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return {}
    for tid in tids:
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


#: per fit: (main thread, the other threads alive after the fit: torch's pool), CPU seconds; see `_fit_time`
_THREADS: list[tuple[float, float]] = []


def _fit_time(args: argparse.Namespace, dm: ShapesDataModule, callback: CAMCallback | None) -> tuple[float, float]:
    model = _model(dm)
    trainer = _trainer(args, [callback] if callback is not None else [])
    before, start = _thread_cpu(), _clock()
    trainer.fit(model, dm)
    took, after = _since(start), _thread_cpu()
    main = threading.get_native_id()
    spent = {tid: cpu - before.get(tid, 0.0) for tid, cpu in after.items()}
    _THREADS.append((spent.pop(main, 0.0), sum(spent.values())))
    return took


def _thread_split(plain: list[tuple[float, float]], watched: list[tuple[float, float]], writer: float) -> str:
    """The callback's CPU by thread: the training thread's, torch's pool threads' (its ops run on them too) and
    the image writer's (`CAMCallback.background_seconds`), minima over the runs."""
    if not plain or not any(p for p in plain):
        return "CPU by thread: not available on this platform (/proc)"
    main = min(w[0] for w in watched) - min(p[0] for p in plain)
    pool = min(w[1] for w in watched) - min(p[1] for p in plain)  # the writer's threads ended: not in /proc
    return (f"CPU by thread, with minus without: training thread +{main:.2f}s, torch's pool threads +{pool:.2f}s, "
            f"image writer threads +{writer:.2f}s")


def _validate_time(args: argparse.Namespace, dm: ShapesDataModule, model: pl.LightningModule,
                   callback: CAMCallback | None) -> tuple[float, float]:
    trainer = _trainer(args, [callback] if callback is not None else [])
    start = _clock()
    trainer.validate(model, dm, verbose=False)
    return _since(start)


@torch.no_grad()
def _forward_time(dm: ShapesDataModule, model: pl.LightningModule) -> tuple[float, float]:
    model.eval()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    start = _clock()
    for batch in dm.val_dataloader():
        model(batch["image"].to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return _since(start)


#: every view of lightning_cam.callbacks.views off
VIEWS_OFF: dict[str, Any] = {"views": ()}


def _views_cost(args: argparse.Namespace, dm: ShapesDataModule) -> None:
    """``fit`` time with the config's callback: views off, default views, default views + per-class."""
    base = _config_callback()
    variants = {"views off": {**base, **VIEWS_OFF}, "default views": base,
                "default views without strategies": {**base, "views": tuple(v for v in default_views()
                                                                           if v != "strategies")},
                "default views + per_class": {**base, "views": (*default_views(), "per_class")}}
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label in ["no callback", *variants]}
    for _ in range(args.repeats):  # interleaved: a busy machine hurts every variant alike
        runs["no callback"].append(_fit_time(args, dm, None))
        for label, kwargs in variants.items():
            runs[label].append(_fit_time(args, dm, CAMCallback(**kwargs)))
    best = {label: _min(r) for label, r in runs.items()}
    (plain, plain_cpu), (off, off_cpu) = best["no callback"], best["views off"]
    print(f"fit without callback: wall {plain:.2f}s, CPU {plain_cpu:.2f}s; with the callback, views off: wall "
          f"{off:.2f}s, CPU {off_cpu:.2f}s")
    for label in list(variants)[1:]:
        wall, cpu = best[label]
        print(f"views cost [{label}]: wall {wall:.2f}s = {wall / off:.3f}x the callback without views "
              f"(+{wall - off:.2f}s, {100 * (wall - off) / max(off - plain, 1e-9):.0f}% of the callback's own "
              f"cost); CPU {cpu:.2f}s = {cpu / off_cpu:.3f}x")
    (full, full_cpu), (rest, rest_cpu) = best["default views"], best["default views without strategies"]
    print(f"the strategies view alone: wall +{full - rest:.2f}s = {100 * (full - rest) / max(full - plain, 1e-9):.1f}% "
          f"of the callback's time with the default views, {100 * (full / plain - 1):.1f}% -> "
          f"{100 * (rest / plain - 1):.1f}% fit overhead without it; CPU +{full_cpu - rest_cpu:.2f}s")


def _min(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--num-val", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--views-only", action="store_true", help="only the cost of the views (issue 12)")
    parser.add_argument("--fit-only", action="store_true", help="only the fit overhead (the first lines)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    dm = ShapesDataModule(num_train=args.num_train, num_val=args.num_val, image_size=args.image_size,
                          batch_size=args.batch_size, seed=0)
    dm.prepare_data()
    dm.setup("fit")
    settings = {"callback defaults": {}, "shapes.yaml callback": _config_callback()}
    print(f"# Shapes fit: {args.num_train} train / {args.num_val} val images of {args.image_size}px, batch "
          f"{args.batch_size}, GAPClassifier(16,32,64,64), {args.epochs} epoch(s), min of {args.repeats} "
          f"interleaved runs, torch threads {torch.get_num_threads()}")
    _fit_time(args, dm, None)  # warm-up (allocator, lazy imports)
    if args.views_only:
        _views_cost(args, dm)
        return
    for label, kwargs in settings.items():
        plain, watched, plain_threads, watched_threads, writer = [], [], [], [], []
        for _ in range(args.repeats):
            plain.append(_fit_time(args, dm, None))
            plain_threads.append(_THREADS[-1])
            callback = CAMCallback(**kwargs)
            watched.append(_fit_time(args, dm, callback))
            watched_threads.append(_THREADS[-1])
            writer.append(callback.background_seconds)
        (base, base_cpu), (cam, cam_cpu) = _min(plain), _min(watched)
        print(f"fit overhead [{label}]: wall {base:.2f}s -> {cam:.2f}s = +{100 * (cam / base - 1):.1f}%; "
              f"CPU {base_cpu:.2f}s -> {cam_cpu:.2f}s = +{100 * (cam_cpu / base_cpu - 1):.1f}%")
        print(f"  {_thread_split(plain_threads, watched_threads, min(writer))}")
    if args.fit_only:
        return

    model = _model(dm)
    fwd, fwd_cpu = _min([_forward_time(dm, model) for _ in range(args.repeats)])
    for label, kwargs in settings.items():
        plain, watched = [], []
        for _ in range(args.repeats):
            plain.append(_validate_time(args, dm, model, None))
            watched.append(_validate_time(args, dm, model, CAMCallback(**kwargs)))
        (base, base_cpu), (cam, cam_cpu) = _min(plain), _min(watched)
        print(f"CAM epoch cost [{label}]: wall {cam - base:.2f}s = {(cam - base) / fwd:.1f}x the validation "
              f"forward ({fwd:.2f}s for {args.num_val} images); CPU {cam_cpu - base_cpu:.2f}s = "
              f"{(cam_cpu - base_cpu) / fwd_cpu:.1f}x ({fwd_cpu:.2f}s)")
    _views_cost(args, dm)


if __name__ == "__main__":
    main()
