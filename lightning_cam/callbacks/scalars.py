"""The callback's scalar log: every ``cam/`` scalar goes through ``pl_module.log`` as a synchronised epoch value,
under the stage's prefix, and (during ``fit``) to whoever records curves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from lightning_cam.utilities.lightning import scalar_step

__all__ = ["ScalarLog", "scalar_log", "stage_key"]

#: ``log(key, value, rank_zero_only=False, detail=False)``: how the callback and its views log a scalar
#: (``pl_module.log`` underneath, or the loggers alone for a ``detail``; ``cam/`` keys are moved under the stage's
#: prefix, e.g. ``cam_test/`` in ``trainer.test()``).
ScalarLog = Callable[..., None]


def stage_key(key: str, prefix: str) -> str:
    """``key`` under the stage's ``prefix``: ``cam/...`` -> ``<prefix>/...``, and a key of a section of its own
    (``cam_<section>/...``, e.g. the strategies' per-class statistics, shown apart from the metric curves) ->
    ``<prefix>_<section>/...``.

    Examples:
        >>> stage_key("cam/gradcam/adcc", "cam_test"), stage_key("cam_strategies/gradcam/same/cat", "cam_test")
        ('cam_test/gradcam/adcc', 'cam_test_strategies/gradcam/same/cat')
    """
    return prefix + key[len("cam"):] if key.startswith(("cam/", "cam_")) else key


def scalar_log(pl_module: Any, prefix: str = "cam", on_scalar: Callable[[str, float], None] | None = None
               ) -> ScalarLog:
    """``log(key, value, rank_zero_only=False)`` through ``pl_module.log``: an epoch value, identical on every rank
    after the metrics' own sync (``sync_dist=True, reduce_fx="max"`` keeps it exact while telling Lightning it is
    a synchronised epoch value); ``cam/`` keys under ``prefix`` (`stage_key`); ``on_scalar(key, value)`` after each
    (e.g. the views' curves, during ``fit``). ``detail=True`` (a value already equal on every rank, such as a
    per-class statistic) goes to the loggers alone, from rank zero: it stays out of ``callback_metrics`` and of the
    results table ``trainer.validate``/``trainer.test`` prints, which then show the metrics readably.

    Examples:
        >>> class Module:
        ...     logged = {}
        ...     def log(self, key, value, **kwargs): self.logged[key] = float(value)
        >>> module, seen = Module(), []
        >>> log = scalar_log(module, "cam_test", on_scalar=lambda k, v: seen.append(k))
        >>> log("cam/gradcam/adcc", 0.5)
        >>> module.logged, seen
        ({'cam_test/gradcam/adcc': 0.5}, ['cam/gradcam/adcc'])
    """

    def log(key: str, value: Tensor | float, rank_zero_only: bool = False, detail: bool = False) -> None:
        if detail:  # the same value on every rank: rank zero hands it to each logger, at the epoch scalars' step
            trainer = pl_module.trainer
            if trainer.is_global_zero:
                for logger in trainer.loggers:
                    logger.log_metrics({stage_key(key, prefix): float(value)}, step=scalar_step(trainer))
        else:
            pl_module.log(stage_key(key, prefix), value, on_step=False, on_epoch=True, sync_dist=True,
                          reduce_fx="max", rank_zero_only=rank_zero_only)
        if on_scalar is not None:
            on_scalar(key, float(value))

    return log
