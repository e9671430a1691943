"""A fit under sharded or compiled setups, run as a script by ``tests/callbacks/test_distributed.py``.

Never imported by the test suite: each run is a subprocess the test kills hard on timeout, so a hang fails
the test quickly instead of blocking the suite.

    python tests/callbacks/sharded_worker.py OUT MODE [--methods a,b] [--fault-rank R] [--on-error warn]
        [--fault-where method|inputs|forward] [--precision 32-true] [--auto-layer] [--layers a,b]

``--fault-where``: on rank ``--fault-rank``, the method ``faultygradcam`` raises before any forward
(``method``, with it in ``--methods``), ``cam_inputs`` raises (``inputs``: that rank has nothing to score), or
the model's forward raises inside a CAM pass, after the parameter gathers (``forward``).

``--auto-layer``: the model names no ``cam_target_layer``, so the default-layer rule chooses it (in lock-step
when sharded).

``MODE``:
  ``fsdp2``   2 gloo CPU processes, ``ModelParallelStrategy`` with FSDP2 ``fully_shard`` in ``configure_model``:
              fit 2 epochs, validate, the full weights saved to ``OUT/weights.pt`` and the results to
              ``OUT/fsdp2.json``.
  ``single``  1 process, the weights of ``OUT/weights.pt``: validate; results to ``OUT/single.json``.
  ``fsdp-gpu`` 2 CUDA devices, ``FSDPStrategy``: fit, validate; results to ``OUT/fsdp-gpu.json``.
  ``ddp``     2 processes, plain DDP (for the cost measurement); results to ``OUT/ddp.json``.
  ``compile-sub`` / ``compile-whole``  1 process, ``self.net = torch.compile(net)`` or the whole module compiled;
              fit 1 epoch; results to ``OUT/<mode>.json``.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.strategies import FSDPStrategy, ModelParallelStrategy
from torch import nn

from lightning_cam import CAMCallback
from lightning_cam.data import ShapesDataModule
from lightning_cam.methods import GradCAM
from lightning_cam.models import GAPClassifier


class FaultyGradCAM(GradCAM):
    """Grad-CAM that raises on one rank only (``FAULT_RANK``), before any forward: the other ranks must not be
    left waiting inside a sharded forward."""

    name = "faultygradcam"
    fault_rank = -1

    def explain(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> Any:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if rank == self.fault_rank:
            raise RuntimeError(f"injected fault on rank {rank}")
        return super().explain(images, targets)


class ShardedClassifier(GAPClassifier):
    """The Shapes GAP classifier, sharded with FSDP2 ``fully_shard`` (each block, then the root); it can fail on
    one rank (``fault_rank``) in ``cam_inputs`` or inside a CAM forward (``fault_where``)."""

    fault_rank = -1
    fault_where = "method"

    def _faulty(self, where: str) -> bool:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        return self.fault_where == where and rank == self.fault_rank

    def cam_inputs(self, batch: Any) -> Any:
        called_by_callback = sys._getframe(1).f_code.co_filename.endswith(os.path.join("callbacks", "batch.py"))
        if self._faulty("inputs") and called_by_callback:  # the training steps unpack with cam_inputs too
            raise RuntimeError(f"injected cam_inputs fault on rank {self.fault_rank}")
        return super().cam_inputs(batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)  # every block's parameters gathered
        if self._faulty("forward") and not self.training and torch.is_grad_enabled():  # a CAM capture pass
            raise RuntimeError(f"injected fault inside the sharded forward on rank {self.fault_rank}")
        return self.fc(self.dropout(self.gap(features).flatten(1)))

    def configure_model(self) -> None:
        from torch.distributed.fsdp import FSDPModule, fully_shard

        if isinstance(self, FSDPModule):  # configure_model runs again in trainer.validate()
            return
        mesh = self.device_mesh["data_parallel"]
        for block in self.features:
            fully_shard(block, mesh=mesh)
        fully_shard(self, mesh=mesh)


class CompiledSub(GAPClassifier):
    """The classifier's convolutional trunk held as a compiled submodule (``self.features = torch.compile(...)``)."""

    def __init__(self, *args: Any, backend: str = "inductor", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.features = torch.compile(self.features, backend=backend)  # type: ignore[assignment]


def build(mode: str, backend: str, task: str = "multiclass") -> tuple[ShapesDataModule, pl.LightningModule]:
    dm = ShapesDataModule(num_train=64, num_val=32, image_size=32, batch_size=8, seed=0, task=task)
    torch.manual_seed(0)
    kwargs: dict[str, Any] = {"num_classes": 5, "channels": (8, 16), "class_names": dm.class_names,
                              "mean": dm.hparams.mean, "std": dm.hparams.std, "cosine": False, "task": task}
    model: pl.LightningModule
    if mode == "fsdp2":
        model = ShardedClassifier(**kwargs)
    elif mode == "compile-sub":
        model = CompiledSub(backend=backend, **kwargs)
    else:
        model = GAPClassifier(**kwargs)
        if mode == "compile-whole":
            model.compile(backend=backend)  # nn.Module.compile: the module's forward compiled in place
    return dm, model


def callback(methods: list[str], fault_rank: int, on_error: str, max_samples: int | None,
             extra_metrics: tuple[str, ...] = ()) -> CAMCallback:
    resolved: list[Any] = []
    for name in methods:
        if name == "faultygradcam":
            FaultyGradCAM.fault_rank = fault_rank
            resolved.append(FaultyGradCAM)
        else:
            resolved.append(name)
    kwargs = {"scorecam": {"batch_size": 4}} if "scorecam" in methods else None
    metrics = ("average_drop", "increase", "coherency", "complexity", "adcc", "insertion", *extra_metrics)
    return CAMCallback(methods=resolved, metrics=metrics, metric_kwargs={"steps": 4, "batch_size": 4},
                       num_images=4, max_samples=max_samples, on_error=on_error,  # type: ignore[arg-type]
                       method_kwargs=kwargs, progress=False)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("mode", choices=["fsdp2", "fsdp-gpu", "single", "ddp", "compile-sub", "compile-whole"])
    parser.add_argument("--methods", default="gradcam,eigencam")
    parser.add_argument("--fault-rank", type=int, default=-1)
    parser.add_argument("--on-error", default="warn")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-samples", type=int, default=0)
    parser.add_argument("--extra-metrics", default="", help="metrics beyond the ADCC family and insertion")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--num-images", type=int, default=4)
    parser.add_argument("--lockstep", action="store_true", help="the sharded (all-ranks) path even under DDP")
    parser.add_argument("--fault-where", default="method", choices=["method", "inputs", "forward"])
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--task", default="multiclass", help="the Shapes data's and the model's output kind")
    parser.add_argument("--auto-layer", action="store_true", help="no cam_target_layer: the rule chooses it")
    parser.add_argument("--layers", default="", help="several target layers, comma-separated (maps averaged)")
    args = parser.parse_args()
    if os.environ.get("CAM_WORKER_DUMP"):  # debugging a hang: every thread's stack after that many seconds
        faulthandler.dump_traceback_later(float(os.environ["CAM_WORKER_DUMP"]), exit=True)
    torch.set_num_threads(1)
    out, mode = args.out, args.mode
    methods = args.methods.split(",")
    ShardedClassifier.fault_rank, ShardedClassifier.fault_where = args.fault_rank, args.fault_where
    dm, model = build(mode, args.backend, args.task)
    if args.auto_layer:
        model.cam_target_layer = None  # type: ignore[assignment]
    if args.layers:
        model.cam_target_layer = args.layers.split(",")  # type: ignore[assignment]
    cb = callback(methods, args.fault_rank, args.on_error, args.max_samples or None,
                  tuple(m for m in args.extra_metrics.split(",") if m))
    cb.num_images = args.num_images
    cb.probe.capacity = args.num_images
    cb._runner.lockstep = True if args.lockstep else None
    timed(cb)
    common: dict[str, Any] = {"enable_progress_bar": False, "enable_model_summary": False,
                              "enable_checkpointing": False, "num_sanity_val_steps": 0, "callbacks": [cb],
                              "precision": args.precision}
    if mode == "single":
        model.load_state_dict(torch.load(os.path.join(out, "weights.pt")))
        trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, **common)
        res = trainer.validate(model, dm, verbose=False)[0]
        with open(os.path.join(out, "single.json"), "w") as f:
            json.dump({"validate": res, "layers": layers(cb)}, f)
        return
    if mode == "fsdp-gpu":
        trainer = pl.Trainer(accelerator="cuda", devices=2, strategy=FSDPStrategy(), max_epochs=args.epochs,
                             logger=TensorBoardLogger(out, name="tb"), **common)
    elif mode in ("fsdp2", "ddp"):
        strategy: Any = ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1) if mode == "fsdp2" \
            else "ddp"
        trainer = pl.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_epochs=args.epochs,
                             logger=TensorBoardLogger(out, name="tb"), **common)
    else:
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=args.epochs,
                             logger=TensorBoardLogger(out, name="tb"), **common)
    start = time.perf_counter()
    trainer.fit(model, dm)
    fit_seconds = time.perf_counter() - start
    if mode == "fsdp2":
        # FSDP2 shards parameters but leaves buffers per rank: BatchNorm running statistics drifted apart in
        # training. Rank zero's everywhere, so that the validation below is one model over both shares.
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
    res = trainer.validate(model, dm, verbose=False)[0]
    weights = full_state_dict(model) if mode == "fsdp2" else {} if mode == "fsdp-gpu" else model.state_dict()
    if trainer.is_global_zero:
        torch.save({k: v.detach().cpu().clone() for k, v in weights.items()}, os.path.join(out, "weights.pt"))
        with open(os.path.join(out, f"{mode}.json"), "w") as f:
            json.dump({"validate": res, "log_dir": trainer.logger.log_dir,  # type: ignore[union-attr]
                       "fit_seconds": fit_seconds, "cam_seconds": cb_seconds(cb), "layers": layers(cb)}, f)


def timed(cb: CAMCallback) -> None:
    """Add the wall time of the callback's validation hooks (its CAM work) to ``cb._cam_seconds``."""
    cb._cam_seconds = 0.0  # type: ignore[attr-defined]
    for hook in ("on_validation_batch_end", "on_validation_epoch_end"):
        inner = getattr(cb, hook)

        def wrapper(*args: Any, _inner: Any = inner, **kwargs: Any) -> None:
            start = time.perf_counter()
            _inner(*args, **kwargs)
            cb._cam_seconds += time.perf_counter() - start  # type: ignore[attr-defined]

        setattr(cb, hook, wrapper)


def layers(cb: CAMCallback) -> dict[str, str]:
    """Each method's target layer, as this rank's method objects hold it."""
    return {name: cam.target_layer_name for name, cam in cb._runner.cams.items()}


def cb_seconds(cb: CAMCallback) -> float:
    return float(getattr(cb, "_cam_seconds", 0.0))


if __name__ == "__main__":
    main()
