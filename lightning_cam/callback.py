"""``CAMCallback``: class activation maps, their metrics and heatmap grids, computed during validation."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from lightning_cam import _logging
from lightning_cam._probe import History, ProbeSet
from lightning_cam.methods.base import eval_mode
from lightning_cam.mixin import CAMBatch, CAMMixin
from lightning_cam.render import _lut, cam_grid, evolution_grid

__all__ = ["CAMCallback", "DEFAULT_METRICS", "EVOLUTION_ROWS", "LOCALIZATION_METRICS"]

#: the ADCC family, the callback's default metrics.
DEFAULT_METRICS: tuple[str, ...] = ("average_drop", "increase", "coherency", "complexity", "adcc")
#: metrics that need ground-truth masks (or boxes) in the batch; skipped for batches without them.
LOCALIZATION_METRICS: frozenset[str] = frozenset({"pointing_game", "energy_pointing_game", "iou"})

_FAULT_KINDS = ("error", "nonfinite", "logger")
#: most epochs drawn in the evolution image (evenly spaced, first and last always included).
EVOLUTION_ROWS = 32


class CAMCallback(Callback):
    r"""Compute class activation maps and their metrics while a Lightning classifier validates, and show them.

    At every ``every_n_epochs``-th validation epoch (and in every ``trainer.validate()``), for each method:

    * **metrics** on each rank's own share of the validation data (at most ``ceil(max_samples /
      world_size)`` samples per rank and epoch, from ``dataloader_idx`` only): the CAM and the per-sample
      values of :func:`lightning_cam.evaluate_batch`, accumulated in the ``torchmetrics`` classes of
      :data:`lightning_cam.metrics.METRICS` (sum states, synchronised across ranks) and logged at epoch end
      as ``cam/<method>/<metric>`` through ``pl_module.log``. So a 2-process run reports the same values as
      a 1-process run over the same samples.
    * **a heatmap grid** on rank zero, tag ``cam/<method>/grid``, sent to every ``TensorBoardLogger`` of the
      trainer: a fixed probe set of ``num_images`` validation images (the first ones rank zero sees at the
      first logged epoch, then kept in the callback's state so that every epoch shows the same images),
      each with its colormap overlay (:func:`lightning_cam.render.cam_grid`), framed green when the
      prediction is right and red when wrong, captioned with the predicted and the true class.
    * **an evolution image** at the end of ``fit``: the probe overlays of every logged epoch, one row per
      epoch (:func:`lightning_cam.render.evolution_grid`; at most ``EVOLUTION_ROWS`` = 32 epochs, evenly
      spaced, first and last included), tag ``cam/<method>/evolution`` and a PNG
      ``cam_evolution_<method>.png`` in the first TensorBoard logger's ``log_dir`` (else
      ``trainer.log_dir``; not written when the trainer has no logger at all).

    CAM work runs on ``pl_module.cam_model()`` (never the DDP wrapper), under ``torch.enable_grad()`` and
    outside inference mode even when validation runs without gradients, in the trainer's precision
    context. It draws nothing from the global random number generators, leaves parameter ``.grad`` and
    module modes as it found them, so training with and without the callback is bit-identical. The probe
    set, the history of probe maps and the logged epochs are saved in checkpoints.

    Faults (an exception in a method, a non-finite map or logit, a logger that fails to write): with
    ``on_error="warn"`` the affected samples are left out, the faults are counted (summed over ranks)
    and reported in one warning per epoch; training goes on and every rank still takes part in every
    collective. ``on_error="raise"`` re-raises at once.

    Args:
        methods: CAM method names (see :func:`lightning_cam.methods.get_method`; aliases accepted) or
            ``BaseCAM`` subclasses.
        metrics: metric names of :data:`lightning_cam.metrics.METRICS`. Localization metrics
            (``pointing_game``, ``energy_pointing_game``, ``iou``) are computed only on batches that carry
            masks or boxes.
        every_n_epochs: work at epochs ``0, n, 2n, ...`` of ``fit``.
        max_samples: samples per epoch over all ranks for the metrics (``None``: all).
        num_images: size of the probe set shown in the grids (``0``: no images). If rank zero's validation
            data holds fewer images, a warning is given once and the grids show those.
        target: explain the predicted class (``"pred"``) or the true label (``"label"``).
        colormap: matplotlib colormap name of the overlays.
        alpha: weight of the heatmap in the overlays, in ``[0, 1]``.
        on_error: ``"warn"`` (count, report, continue) or ``"raise"``.
        skip_sanity_check: do nothing during the sanity check.
        dataloader_idx: the validation dataloader to use.
        method_kwargs: extra constructor arguments per method name, e.g. ``{"scorecam": {"batch_size": 64}}``.
        metric_kwargs: extra keyword options passed to ``evaluate_batch`` (e.g. ``steps`` for insertion).
        log_evolution: log and save the evolution image at the end of ``fit``.
        tile_size: pixel size of the longer side of each image in the grids.
        progress: rank-zero progress lines: ``None`` only when an epoch's CAM work takes over 10 s,
            ``True`` always, ``False`` never.

    Example:
        >>> cb = CAMCallback(methods=("gradcam", "gradcam++"), max_samples=64, num_images=4)
        >>> cb.methods
        ('gradcam', 'gradcam++')
        >>> CAMCallback(methods=("no-such-cam",))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ...
    """

    def __init__(
        self,
        methods: str | Sequence[str] = ("gradcam",),
        metrics: str | Sequence[str] = DEFAULT_METRICS,
        every_n_epochs: int = 1,
        max_samples: int | None = 256,
        num_images: int = 8,
        target: Literal["pred", "label"] = "pred",
        colormap: str = "jet",
        alpha: float = 0.5,
        on_error: Literal["warn", "raise"] = "warn",
        skip_sanity_check: bool = True,
        dataloader_idx: int = 0,
        method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        metric_kwargs: Mapping[str, Any] | None = None,
        log_evolution: bool = True,
        tile_size: int = 128,
        progress: bool | None = None,
    ) -> None:
        super().__init__()
        from lightning_cam.metrics import METRICS
        from lightning_cam.methods import get_method

        if isinstance(methods, str) or isinstance(methods, type):
            methods = (methods,)
        if not methods:
            raise ValueError("`methods` is empty; name at least one CAM method, e.g. methods=('gradcam',).")
        self._method_classes: dict[str, type] = {}
        for spec in methods:
            cls = spec if isinstance(spec, type) else get_method(str(spec))  # unknown -> ValueError with names
            name = _canonical_name(cls, spec)
            if name in self._method_classes:
                raise ValueError(f"method {spec!r} is listed twice (as {name!r}); list each method once.")
            self._method_classes[name] = cls
        if isinstance(metrics, str):
            metrics = (metrics,)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; valid metrics: {sorted(METRICS)}.")
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"`metrics` lists a metric twice: {list(metrics)}.")
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"`every_n_epochs` must be an int >= 1, got {every_n_epochs!r}.")
        if max_samples is not None and (not isinstance(max_samples, int) or max_samples < 0):
            raise ValueError(f"`max_samples` must be None (all) or an int >= 0, got {max_samples!r}.")
        if not isinstance(num_images, int) or num_images < 0:
            raise ValueError(f"`num_images` must be an int >= 0, got {num_images!r}.")
        if target not in ("pred", "label"):
            raise ValueError(f"`target` must be 'pred' (explain the prediction) or 'label', got {target!r}.")
        if on_error not in ("warn", "raise"):
            raise ValueError(f"`on_error` must be 'warn' or 'raise', got {on_error!r}.")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"`alpha` (the heatmap's weight in the overlay) must be in [0, 1], got {alpha}.")
        _lut(colormap)  # unknown colormap -> ValueError now, not at the first epoch
        if tile_size < 16:
            raise ValueError(f"`tile_size` must be at least 16 pixels, got {tile_size}.")
        method_kwargs = dict(method_kwargs or {})
        extra = [k for k in method_kwargs if _canonical_key(k, self._method_classes) is None]
        if extra:
            raise ValueError(f"`method_kwargs` names {extra}, which are not in methods={list(self._method_classes)}.")

        from lightning_cam.evaluate import _check_options

        _check_options(dict(metric_kwargs or {}))  # unknown or out-of-range options -> error now, not per epoch

        self.methods: tuple[str, ...] = tuple(self._method_classes)
        self.metrics: tuple[str, ...] = tuple(metrics)
        self.every_n_epochs = every_n_epochs
        self.max_samples = max_samples
        self.num_images = num_images
        self.target = target
        self.colormap = colormap
        self.alpha = float(alpha)
        self.on_error = on_error
        self.skip_sanity_check = skip_sanity_check
        self.dataloader_idx = dataloader_idx
        self.method_kwargs = {_canonical_key(k, self._method_classes): dict(v) for k, v in method_kwargs.items()}
        self.metric_kwargs = dict(metric_kwargs or {})
        self.log_evolution = log_evolution
        self.tile_size = tile_size
        self.progress = progress

        # persistent state (checkpointed)
        self.probe = ProbeSet(capacity=num_images)
        self.history = History()
        self.epochs_logged: list[int] = []
        # per-run / per-epoch state
        self._cams: dict[str, Any] = {}
        self._cams_model: nn.Module | None = None
        self._metric_objs: dict[str, dict[str, Any]] = {}
        self._active = False
        self._quota: float = 0.0
        self._seen = 0
        self._counts: dict[tuple[str, str], int] = {}
        self._faults: dict[str, int] = dict.fromkeys(_FAULT_KINDS, 0)
        self._first_fault: str | None = None
        self._warned: set[str] = set()
        self._progress = _logging.Progress(progress)

    # ------------------------------------------------------------------ identity & state
    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(methods=self.methods)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "probe": self.probe.state_dict(),
            "history": self.history.state_dict(),
            "epochs_logged": list(self.epochs_logged),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.probe.load_state_dict(state_dict.get("probe", {}))
        self.history.load_state_dict(state_dict.get("history", {}))
        self.epochs_logged = [int(e) for e in state_dict.get("epochs_logged", [])]

    # ------------------------------------------------------------------ setup
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not isinstance(pl_module, CAMMixin):
            raise TypeError(
                f"CAMCallback needs the LightningModule to mix in lightning_cam.CAMMixin, but "
                f"{type(pl_module).__name__} does not; declare it as `class {type(pl_module).__name__}"
                "(CAMMixin, pl.LightningModule)` and set `cam_target_layer` if its last Conv2d is not the layer "
                "to explain."
            )
        self._build_methods(pl_module)
        if self.num_images and trainer.is_global_zero and not _logging.tensorboard_loggers(trainer):
            self._warn_once(
                "no_tb",
                "CAMCallback found no TensorBoardLogger in trainer.loggers, so the CAM heatmap grids are not "
                "logged (the cam/<method>/<metric> scalars still are). Add "
                "`pytorch_lightning.loggers.TensorBoardLogger` to the trainer's loggers to see them.",
            )

    def _build_methods(self, pl_module: pl.LightningModule) -> None:
        model = pl_module.cam_model()  # type: ignore[attr-defined]
        if self._cams and self._cams_model is model:
            return
        layer = pl_module.cam_layer()  # type: ignore[attr-defined]
        cams = {}
        for name, cls in self._method_classes.items():
            try:
                cams[name] = cls(model, target_layer=layer, **self.method_kwargs.get(name, {}))
            except TypeError as err:
                raise TypeError(f"cannot build CAM method {name!r} ({cls.__name__}): {err}") from err
        self._cams, self._cams_model = cams, model

    # ------------------------------------------------------------------ epoch start
    def _is_active(self, trainer: pl.Trainer) -> bool:
        if trainer.sanity_checking:
            return not self.skip_sanity_check
        if trainer.state.fn == TrainerFn.FITTING:
            return trainer.current_epoch % self.every_n_epochs == 0
        return trainer.state.fn == TrainerFn.VALIDATING

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._active = self._is_active(trainer)
        if not self._active:
            return
        self._build_methods(pl_module)
        from lightning_cam.metrics import METRICS

        with torch.inference_mode(False):  # states must not be inference tensors: updates run outside it
            if not self._metric_objs:
                self._metric_objs = {m: {k: METRICS[k]() for k in self.metrics} for m in self.methods}
            for per_method in self._metric_objs.values():
                for metric in per_method.values():
                    metric.to(pl_module.device)
                    metric.reset()
        world = max(1, trainer.world_size)
        self._quota = math.inf if self.max_samples is None else float(math.ceil(self.max_samples / world))
        self._seen = 0
        self._counts = {(m, k): 0 for m in self.methods for k in self.metrics}
        self._faults = dict.fromkeys(_FAULT_KINDS, 0)
        self._first_fault = None
        self._progress.restart()

    # ------------------------------------------------------------------ per batch
    @contextlib.contextmanager
    def _cam_context(self, trainer: pl.Trainer) -> Iterator[None]:
        """Gradients on, inference mode off, the trainer's precision (e.g. bf16 autocast), and the CAM model in
        eval mode with every module's own train/eval flag restored afterwards."""
        modes = eval_mode(self._cams_model) if self._cams_model is not None else contextlib.nullcontext()
        with torch.inference_mode(False), torch.enable_grad(), trainer.precision_plugin.forward_context(), modes:
            yield

    def _fault(self, kind: str, detail: str, err: BaseException | None = None) -> None:
        if self.on_error == "raise":
            if err is not None:
                raise err
            raise RuntimeError(f"CAMCallback: {detail}")
        self._faults[kind] += 1
        if self._first_fault is None:
            self._first_fault = detail

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active or dataloader_idx != self.dataloader_idx:
            return
        take = self._quota - self._seen
        capture = trainer.is_global_zero and self.probe.wanted > 0
        if take <= 0 and not capture:
            return
        try:
            parts = pl_module.cam_inputs(batch)  # type: ignore[attr-defined]
        except Exception as err:  # noqa: BLE001
            self._fault("error", f"cam_inputs(batch) raised {type(err).__name__}: {err}", err)
            return
        if self.target == "label" and parts.labels is None:
            raise ValueError(
                "CAMCallback(target='label') needs labels, but cam_inputs(batch) returned none; use "
                "target='pred' or return labels from `cam_inputs`."
            )
        if capture:
            self.probe.add(parts.images, parts.labels)
        if take <= 0:
            return
        n = int(min(take, parts.images.shape[0]))
        with self._cam_context(trainer):
            sub = _clone_batch(parts, n)
            for name in self.methods:
                self._update_method(name, sub)
        self._seen += n
        self._progress.step(f"CAM metrics: {self._seen} samples on rank 0")

    def _update_method(self, name: str, parts: CAMBatch) -> None:
        from lightning_cam.evaluate import evaluate_batch
        from lightning_cam.methods.result import CAMResult

        cam = self._cams[name]
        targets = parts.labels if self.target == "label" else None
        try:
            result = cam.explain(parts.images, targets)
            ok = torch.isfinite(result.maps).flatten(1).all(1) & torch.isfinite(result.logits).flatten(1).all(1)
            bad = int((~ok).sum())
            if bad:
                self._fault("nonfinite", f"{name}: {bad} sample(s) with a non-finite map or logit")
            if not bool(ok.any()):
                return
            if bad:
                keep = ok.nonzero().squeeze(1)
                result = CAMResult(result.maps[keep], result.low_res[keep], result.logits[keep], result.targets[keep])
                fields = (parts.images, parts.labels, parts.masks, parts.boxes)
                parts = CAMBatch(*(None if t is None else t[keep] for t in fields))
            wanted = [
                k for k in self.metrics
                if k not in LOCALIZATION_METRICS or parts.masks is not None or parts.boxes is not None
            ]
            skipped = [k for k in self.metrics if k not in wanted]
            if skipped:
                self._warn_once(
                    "no_masks",
                    f"CAMCallback: metrics {skipped} need ground-truth masks or boxes, but the validation "
                    "batches carry none; they are skipped. Return masks from `cam_inputs` to compute them.",
                )
            if not wanted:
                return
            values = evaluate_batch(
                cam, parts.images, result.targets, parts.masks, metrics=tuple(wanted), boxes=parts.boxes,
                result=result, **self.metric_kwargs,
            )
            stacked = torch.stack([values[key].detach().float().reshape(-1) for key in wanted])  # (M, B)
            finite = torch.isfinite(stacked)
            nbad = int((~finite.all(0)).sum())
            if nbad:
                self._fault("nonfinite", f"{name}: {nbad} sample(s) with a non-finite metric value")
            stacked = torch.where(finite, stacked, torch.full_like(stacked, float("nan")))
            for key, row, ok_row in zip(wanted, stacked, finite):
                self._metric_objs[name][key].update(row)
                self._counts[(name, key)] += int(ok_row.sum())
        except Exception as err:  # noqa: BLE001 - reported, and re-raised with on_error="raise"
            self._fault("error", f"{name} raised {type(err).__name__}: {err}", err)

    # ------------------------------------------------------------------ epoch end
    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active:
            return
        self._active = False
        keys = list(self._counts)
        with torch.inference_mode(False):
            # one collective for every rank, whatever happened locally: sample counts and fault counts
            local = torch.tensor(
                [self._counts[k] for k in keys] + [self._faults[k] for k in _FAULT_KINDS],
                dtype=torch.float64, device=pl_module.device,
            )
            total = trainer.strategy.reduce(local, reduce_op="sum").cpu().tolist()
            counts = dict(zip(keys, total[: len(keys)]))
            faults = dict(zip(_FAULT_KINDS, total[len(keys):]))
            for (name, key), count in counts.items():
                metric = self._metric_objs[name][key]
                if count > 0:  # same decision on every rank: compute() is a collective
                    value = metric.compute().float()
                    # Identical on every rank after the metric's own sync; `max` keeps it exact while
                    # telling Lightning it is a synchronised epoch value.
                    pl_module.log(f"cam/{name}/{key}", value, on_step=False, on_epoch=True,
                                  sync_dist=True, reduce_fx="max")
                metric.reset()
        epoch = trainer.current_epoch
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if trainer.is_global_zero:
            if fitting and epoch not in self.epochs_logged:
                self.epochs_logged.append(epoch)
            before = dict(self._faults)
            self._log_probe(trainer, pl_module, epoch, record=fitting)
            for kind in _FAULT_KINDS:  # rank-zero faults of the probe work, after the reduce
                faults[kind] += self._faults[kind] - before[kind]
        if self.probe.size and not self.probe.frozen:
            self.probe.frozen = True
            if self.probe.size < self.num_images and trainer.is_global_zero:
                self._warn_once(
                    "short_probe",
                    f"CAMCallback(num_images={self.num_images}) but rank zero's validation data held only "
                    f"{self.probe.size} image(s); the grids show those {self.probe.size}. Lower `num_images` "
                    "(or raise `limit_val_batches`) to silence this warning.",
                )
        n_faults = int(sum(faults.values()))
        if n_faults and trainer.is_global_zero:
            detail = ", ".join(f"{int(v)} {k}" for k, v in faults.items() if v)
            first = f"; first on rank 0: {self._first_fault}" if self._first_fault else ""
            rank_zero_warn(
                f"CAMCallback: {n_faults} fault(s) in CAM work at epoch {epoch} ({detail}){first}. The affected "
                "samples/images were skipped; pass on_error='raise' to stop at the first one."
            )
        self._progress.done(f"CAM work of epoch {epoch} ({self._seen} samples on rank 0)")

    def _log_probe(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, record: bool) -> None:
        """Rank zero only, no collectives: compute, record and log the probe grid of every method."""
        if not self.probe.size or not self.num_images:
            return
        loggers = _logging.tensorboard_loggers(trainer)
        device = pl_module.device
        with self._cam_context(trainer):
            images = self.probe.images.to(device).clone()  # type: ignore[union-attr]
            labels = None if self.probe.labels is None else self.probe.labels.to(device).clone()
            targets = labels if self.target == "label" else None
            display = pl_module.cam_denormalize(images).float().cpu()  # type: ignore[attr-defined]
            names = getattr(pl_module, "cam_class_names", None)
            for name in self.methods:
                self._progress.step(f"CAM probe grid of {name}")
                try:
                    result = self._cams[name].explain(images, targets)
                    preds = result.logits.argmax(-1)
                    maps = torch.nan_to_num(result.maps.detach().float(), nan=0.0)
                    if not (torch.isfinite(result.maps).all() and torch.isfinite(result.logits).all()):
                        self._fault("nonfinite", f"{name}: non-finite probe map or logit at epoch {epoch}")
                    if record:
                        self.history.add(name, epoch, maps, preds)
                    grid = cam_grid(display, maps.cpu(), preds.cpu(), None if labels is None else labels.cpu(),
                                    names, self.colormap, self.alpha, self.tile_size)
                except Exception as err:  # noqa: BLE001
                    self._fault("error", f"{name} probe grid raised {type(err).__name__}: {err}", err)
                    continue
                errors = _logging.log_image(loggers, f"cam/{name}/grid", grid, epoch)
                for err in errors:
                    detail = f"a logger failed to write cam/{name}/grid: {type(err).__name__}: {err}"
                    self._fault("logger", detail, err)

    # ------------------------------------------------------------------ end of fit
    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.log_evolution and trainer.is_global_zero and self.probe.size):
            return
        loggers = _logging.tensorboard_loggers(trainer)
        faults = 0
        display = pl_module.cam_denormalize(self.probe.images.float()).cpu()  # type: ignore[attr-defined,union-attr]
        for name in self.methods:
            series = self.history.series(name, max_rows=EVOLUTION_ROWS)
            if series is None:
                continue
            epochs, maps = series
            try:
                image = evolution_grid(display, maps, [f"epoch {e}" for e in epochs], self.colormap, self.alpha,
                                       tile_size=min(self.tile_size, 96))
                directory = _logging.image_dir(trainer)
                if directory is not None:
                    _logging.save_png(image, directory, f"cam_evolution_{_logging.safe_name(name)}.png")
            except Exception as err:  # noqa: BLE001
                if self.on_error == "raise":
                    raise
                faults += 1
                continue
            errors = _logging.log_image(loggers, f"cam/{name}/evolution", image, epochs[-1])
            if errors and self.on_error == "raise":
                raise errors[0]
            faults += len(errors)
        if faults:
            rank_zero_warn(f"CAMCallback: {faults} fault(s) while saving or logging the CAM evolution images.")

    # ------------------------------------------------------------------ helpers
    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            rank_zero_warn(message)


def _canonical_name(cls: type, spec: Any) -> str:
    """The tag name of a method class: its ``name`` attribute (canonical in the registry)."""
    name = getattr(cls, "name", None)
    return str(name) if name else (spec if isinstance(spec, str) else cls.__name__.lower())


def _canonical_key(key: str, classes: Mapping[str, type]) -> str | None:
    if key in classes:
        return key
    from lightning_cam.methods import get_method

    try:
        cls = get_method(key)
    except ValueError:
        return None
    for name, c in classes.items():
        if c is cls:
            return name
    return None


def _clone_batch(parts: CAMBatch, n: int) -> CAMBatch:
    """The first ``n`` samples, detached copies made outside inference mode (usable with autograd)."""

    def cut(t: Tensor | None) -> Tensor | None:
        return None if t is None else t[:n].detach().clone()

    return CAMBatch(cut(parts.images), cut(parts.labels), cut(parts.masks), cut(parts.boxes))
