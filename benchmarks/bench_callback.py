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
    python benchmarks/bench_callback.py --views-only --epochs 2   # the cost of the views of issue 12 only
    python benchmarks/bench_callback.py --realistic [--quick]      # ResNet-18 at 224 px, 1 / 3 / 5 methods

``--realistic``: torchvision ResNet-18 (random weights, :class:`~lightning_cam.models.ResNetClassifier`) on
224 px Shapes, every validation sample scored (``--num-val``, default 256; ``--quick`` 32 and a 64-image
train set), the callback's default metrics and views, with 1 (``gradcam``), 3 (+ ``gradcam_pp``,
``eigencam``) and 5 (+ ``xgradcam``, ``layercam``) methods. Printed: the **CAM cost per scored sample, in
forwards** (``trainer.validate`` with minus without the callback, over ``trainer.validate`` without it: one
forward per sample, run interleaved so it is the steadier unit on a loaded machine; also over a plain
``no_grad`` forward pass over the same samples) next to the fit overhead (one epoch). With CUDA the runs use the GPU and
the absolute milliseconds per scored sample are printed too.

The views (worst-case gallery, drift, agreement, strategies, per-class curves, custom-scalars layout and
summary figure) are measured as the ratio of ``fit`` with the ``configs/shapes.yaml`` callback with them
(defaults, the defaults without "strategies", then also the "per_class" view) to the same callback with all
of them off (``views=()``); the strategies view's share of the callback's time is printed on its own.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.loggers import TensorBoardLogger

from lightning_cam import CAMCallback
from lightning_cam.callbacks.views import DEFAULT_VIEWS
from lightning_cam.data import ShapesDataModule
from lightning_cam.models import GAPClassifier, ResNetClassifier

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "shapes.yaml"


def _config_callback() -> dict[str, Any]:
    """The CAMCallback ``init_args`` of ``configs/shapes.yaml``, so the benchmark follows the config."""
    callbacks = yaml.safe_load(CONFIG.read_text())["trainer"]["callbacks"]
    return next(c["init_args"] for c in callbacks if c["class_path"].endswith("CAMCallback"))


def _accelerator() -> str:
    return "gpu" if torch.cuda.is_available() else "cpu"


def _trainer(args: argparse.Namespace, callbacks: list[pl.Callback]) -> pl.Trainer:
    # Both sides log to TensorBoard, as the default job does, so the grid rendering is part of the cost.
    logger = TensorBoardLogger(tempfile.mkdtemp(prefix="bench_callback_"), name="bench")
    return pl.Trainer(accelerator=_accelerator(), devices=1, max_epochs=args.epochs, logger=logger, callbacks=callbacks,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      num_sanity_val_steps=0)


def _model(dm: ShapesDataModule, realistic: bool = False) -> GAPClassifier | ResNetClassifier:
    torch.manual_seed(0)
    if realistic:
        return ResNetClassifier(num_classes=5, arch="resnet18", class_names=dm.class_names, mean=dm.hparams.mean,
                                std=dm.hparams.std)
    return GAPClassifier(num_classes=5, channels=(16, 32, 64, 64), lr=0.003, class_names=dm.class_names,
                         mean=dm.hparams.mean, std=dm.hparams.std)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _fit_time(args: argparse.Namespace, dm: ShapesDataModule, callback: CAMCallback | None) -> tuple[float, float]:
    model = _model(dm, args.realistic)
    trainer = _trainer(args, [callback] if callback is not None else [])
    start = _clock()
    trainer.fit(model, dm)
    return _since(start)


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


#: the method sets of the realistic setting
REALISTIC_METHODS: dict[int, tuple[str, ...]] = {
    1: ("gradcam",), 3: ("gradcam", "gradcam_pp", "eigencam"),
    5: ("gradcam", "gradcam_pp", "eigencam", "xgradcam", "layercam"),
}


def _realistic(args: argparse.Namespace) -> None:
    """ResNet-18 at 224 px, every validation sample scored: CAM cost per scored sample and fit overhead."""
    dm = ShapesDataModule(num_train=args.num_train, num_val=args.num_val, image_size=224,
                          batch_size=args.batch_size, seed=0)
    dm.prepare_data()
    dm.setup("fit")
    device = "GPU " + torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"# realistic: ResNet-18 (random weights) on 224px Shapes, {args.num_train} train / {args.num_val} val "
          f"images, all {args.num_val} val samples scored, batch {args.batch_size}, callback defaults otherwise; "
          f"{device}, torch threads {torch.get_num_threads()}, min of {args.repeats} interleaved runs")
    model = _model(dm, realistic=True)
    _forward_time(dm, model)  # warm-up
    fwd, _ = _min([_forward_time(dm, model) for _ in range(max(2, args.repeats))])
    print(f"one plain forward over the {args.num_val} scored samples: {fwd:.2f}s "
          f"({1e3 * fwd / args.num_val:.1f} ms per sample)")
    _validate_time(args, dm, model, CAMCallback(max_samples=args.num_val))  # warm-up
    for n, methods in REALISTIC_METHODS.items():
        plain, watched = [], []
        for _ in range(args.repeats):
            plain.append(_validate_time(args, dm, model, None))
            watched.append(_validate_time(args, dm, model, CAMCallback(methods=methods,
                                                                          max_samples=args.num_val)))
        (base, _), (cam, _) = _min(plain), _min(watched)
        per = (cam - base) / args.num_val
        print(f"CAM cost per scored sample [{n} method(s): {', '.join(methods)}]: {(cam - base) / base:.2f} forwards "
              f"(validation loops without the callback; {(cam - base) / fwd:.2f} plain no_grad forwards), "
              f"{1e3 * per:.1f} ms per sample on {device}; validate {base:.2f}s -> {cam:.2f}s")
        plain, watched = [], []
        for _ in range(args.repeats):
            plain.append(_fit_time(args, dm, None))
            watched.append(_fit_time(args, dm, CAMCallback(methods=methods, max_samples=args.num_val)))
        (base, _), (cam, _) = _min(plain), _min(watched)
        print(f"fit overhead [{n} method(s)], {args.epochs} epoch: wall {base:.2f}s -> {cam:.2f}s = "
              f"+{100 * (cam / base - 1):.0f}%")


#: every view of lightning_cam.callbacks.views off
VIEWS_OFF: dict[str, Any] = {"views": ()}


def _views_cost(args: argparse.Namespace, dm: ShapesDataModule) -> None:
    """``fit`` time with the config's callback: views off, default views, default views + per-class."""
    base = _config_callback()
    variants = {"views off": {**base, **VIEWS_OFF}, "default views": base,
                "default views without strategies": {**base, "views": tuple(v for v in DEFAULT_VIEWS
                                                                           if v != "strategies")},
                "default views + per_class": {**base, "views": (*DEFAULT_VIEWS, "per_class")}}
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
    parser.add_argument("--realistic", action="store_true", help="only ResNet-18 at 224 px, 1 / 3 / 5 methods")
    parser.add_argument("--quick", action="store_true", help="with --realistic: 64 train / 32 val images, 1 repeat")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    if args.realistic:
        defaults = {"num_train": 64 if args.quick else 512, "num_val": 32 if args.quick else 256,
                    "batch_size": 32, "repeats": 1 if args.quick else args.repeats}
        for key, value in defaults.items():
            if getattr(args, key) == parser.get_default(key):  # not set on the command line
                setattr(args, key, value)
        _realistic(args)
        return

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
        plain, watched = [], []
        for _ in range(args.repeats):
            plain.append(_fit_time(args, dm, None))
            watched.append(_fit_time(args, dm, CAMCallback(**kwargs)))
        (base, base_cpu), (cam, cam_cpu) = _min(plain), _min(watched)
        print(f"fit overhead [{label}]: wall {base:.2f}s -> {cam:.2f}s = +{100 * (cam / base - 1):.1f}%; "
              f"CPU {base_cpu:.2f}s -> {cam_cpu:.2f}s = +{100 * (cam_cpu / base_cpu - 1):.1f}%")

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
