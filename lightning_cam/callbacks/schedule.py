"""When the callback works: which stages (``fit``, ``validate``, ``test``), which validation runs of ``fit``
(``every_n_epochs`` counts the validation runs that actually happen), and the setup warnings when a
configuration means it never works or an ``EarlyStopping``/``ModelCheckpoint`` would decide on a stale
``cam/`` value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning_cam.callbacks.faults import stale_monitor
from lightning_cam.callbacks.sinks import missing_sinks_message
from lightning_cam.utilities.lightning import CHECKPOINT_CALLBACKS, EARLY_STOPPING_CALLBACKS, stage_name

__all__ = [
    "DEFAULT_STAGES",
    "STAGES",
    "Schedule",
    "check_stages",
    "key_prefix",
    "never_runs",
    "setup_warnings",
    "stale_monitors",
]

#: the stages the callback can work in: validation of ``fit``, ``trainer.validate()``, ``trainer.test()``.
STAGES: tuple[str, ...] = ("fit", "validate", "test")
#: the default: validation only (``trainer.test()`` is opt-in).
DEFAULT_STAGES: tuple[str, ...] = ("fit", "validate")


def check_stages(stages: str | Sequence[str]) -> tuple[str, ...]:
    """``stages`` as a tuple of names of `STAGES` (unknown or empty -> ``ValueError``).

    Examples:
        >>> check_stages("test")
        ('test',)
        >>> check_stages(("fit", "predict"))
        Traceback (most recent call last):
        ...
        ValueError: `stages` must name some of ('fit', 'validate', 'test'), got ['predict'] unknown.
    """
    names = (stages,) if isinstance(stages, str) else tuple(stages)
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise ValueError(f"`stages` must name some of {STAGES}, got {unknown or list(names)} unknown.")
    return tuple(dict.fromkeys(names))


def key_prefix(loop: str, dataloader_idx: int = 0) -> str:
    """The prefix of the logged keys and image tags: ``cam`` for validation (``cam/<method>/<metric>``),
    ``cam_test`` for ``trainer.test()``, so test results never mix with validation ones; ``_dl<i>`` appended for
    the dataloader ``i > 0``, so two callbacks on two dataloaders never overwrite each other.

    Examples:
        >>> key_prefix("validation"), key_prefix("test"), key_prefix("validation", 1)
        ('cam', 'cam_test', 'cam_dl1')
    """
    base = "cam_test" if loop == "test" else "cam"
    return f"{base}_dl{dataloader_idx}" if dataloader_idx else base


class Schedule:
    """Which runs of the validation (or test) loop get CAM work.

    * ``fit``: the ``every_n_epochs``-th validation run, counting the runs that actually happen (so it
      composes with ``check_val_every_n_epoch`` and ``val_check_interval``); the sanity check only with
      ``skip_sanity_check=False``. `runs` is checkpointed.
    * ``validate`` / ``test``: every ``trainer.validate()`` / ``trainer.test()`` when listed in ``stages``.

    Examples:
        >>> s = Schedule(every_n_epochs=2, skip_sanity_check=True, stages=("fit", "validate"))
        >>> [s.begin("fit", False, "validation") for _ in range(4)], s.runs
        ([True, False, True, False], 4)
        >>> s.begin("test", False, "test"), s.begin("validate", False, "validation")
        (False, True)
    """

    def __init__(self, every_n_epochs: int, skip_sanity_check: bool, stages: Sequence[str]) -> None:
        self.every_n = every_n_epochs
        self.skip_sanity_check = skip_sanity_check
        self.stages = tuple(stages)
        self.runs = 0

    def begin(self, fn: Any, sanity_checking: bool, loop: str) -> bool:
        """Whether the validation/test run starting now (``loop`` is ``"validation"`` or ``"test"``, ``fn`` the
        trainer's ``state.fn``) gets CAM work; counts the validation runs of ``fit``."""
        fn = stage_name(fn)
        if loop == "test":
            return fn == "test" and "test" in self.stages
        if sanity_checking:
            return "fit" in self.stages and not self.skip_sanity_check
        if fn == "fit":
            active = "fit" in self.stages and self.runs % self.every_n == 0
            self.runs += 1
            return active
        return fn == "validate" and "validate" in self.stages

    @property
    def every_validation(self) -> bool:
        """Whether every validation run of ``fit`` gets CAM work."""
        return "fit" in self.stages and self.every_n == 1


def never_runs(trainer: Any, stage: str, stages: Sequence[str]) -> str | None:
    """Why the CAM work can never run in the ``stage`` starting (``"fit"``, ``"validate"``, ``"test"``), or
    ``None``: the stage is not in ``stages``, validation is switched off (``limit_val_batches=0``), or
    ``check_val_every_n_epoch`` is larger than ``max_epochs``."""
    if stage not in stages:
        if stage in ("validate", "test"):
            return (f"CAMCallback(stages={tuple(stages)}) does nothing in trainer.{stage}(); add {stage!r} to "
                    "`stages` to get CAM metrics and grids there.")
        return None
    limit = trainer.limit_test_batches if stage == "test" else trainer.limit_val_batches
    if limit == 0:
        name = "limit_test_batches" if stage == "test" else "limit_val_batches"
        return f"CAMCallback does nothing in {stage}: the trainer's {name}=0 switches the loop off."
    every = getattr(trainer, "check_val_every_n_epoch", None)
    max_epochs = getattr(trainer, "max_epochs", None)
    if stage == "fit" and every and max_epochs and max_epochs > 0 and every > max_epochs:
        return (f"CAMCallback does nothing in fit: check_val_every_n_epoch={every} > max_epochs={max_epochs}, so "
                "validation never runs; lower check_val_every_n_epoch.")
    return None


def stale_monitors(callbacks: Sequence[Any], prefix: str = "cam/") -> list[str]:
    """The ``EarlyStopping``/``ModelCheckpoint`` callbacks (of either Lightning package) that monitor a key
    starting with ``prefix``, as ``"ClassName(monitor='...')"``."""
    kinds = EARLY_STOPPING_CALLBACKS + CHECKPOINT_CALLBACKS
    monitors = ((cb, str(getattr(cb, "monitor", None) or "")) for cb in callbacks if isinstance(cb, kinds))
    return [f"{type(cb).__name__}(monitor={key!r})" for cb, key in monitors if key.startswith(prefix)]


def setup_warnings(trainer: Any, stage: str, schedule: Schedule, num_images: int) -> list[tuple[str, str]]:
    """``(key, message)`` of every warning a configuration deserves at ``setup`` of ``stage``: the CAM work
    can never run (`never_runs`), no logger of the trainer can keep images, or an EarlyStopping /
    ModelCheckpoint monitors a ``cam/`` key that is not refreshed at every validation."""
    out: list[tuple[str, str]] = []
    reason = never_runs(trainer, stage, schedule.stages)
    if reason:
        out.append((f"never_{stage}", reason))
    if num_images and stage in schedule.stages and (message := missing_sinks_message(trainer)):
        out.append(("no_images", message))
    stale = stale_monitors(getattr(trainer, "callbacks", [])) if stage == "fit" else []
    if stale and not schedule.every_validation:
        out.append(("stale_monitor", stale_monitor(stale, schedule.every_n, schedule.stages)))
    return out
