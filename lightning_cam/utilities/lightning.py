"""Both Lightning packages at once: ``pytorch_lightning`` and ``lightning.pytorch`` (whichever are installed).

The two packages hold separate copies of every class (``pytorch_lightning.Callback`` is not
``lightning.pytorch.Callback``), and each ``Trainer`` and ``LightningCLI`` checks ``isinstance``/``issubclass``
against its own copy. So the callback derives from `CallbackBase`, a class whose bases are the ``Callback``
classes of *every* installed package, and the logger and callback checks below use tuples of the classes of
every installed package. Lightning's enums (``TrainerFn``) are ``str`` enums, so they are compared with plain
strings here (``"fit"``, ``"validate"``, ``"test"``), which is the same for both packages.

Examples:
    >>> import pytorch_lightning
    >>> issubclass(CallbackBase, pytorch_lightning.Callback)
    True
    >>> "pytorch_lightning" in PACKAGE_NAMES
    True
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

__all__ = [
    "CHECKPOINT_CALLBACKS",
    "COMET_LOGGERS",
    "DUMMY_LOGGERS",
    "EARLY_STOPPING_CALLBACKS",
    "MLFLOW_LOGGERS",
    "NEPTUNE_LOGGERS",
    "PACKAGE_NAMES",
    "TENSORBOARD_LOGGERS",
    "WANDB_LOGGERS",
    "CallbackBase",
    "classes",
    "rank_zero_info",
    "rank_zero_warn",
    "scalar_step",
    "stage_name",
]


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


#: the installed Lightning trainer packages, ``pytorch_lightning`` first (the one this project's models use).
_PACKAGES: tuple[ModuleType, ...] = tuple(
    m for m in (_optional("pytorch_lightning"), _optional("lightning.pytorch")) if m is not None
)
if not _PACKAGES:
    raise ImportError(
        "lightning_cam's callback needs PyTorch Lightning: install `pytorch-lightning` or `lightning` "
        "(pip install lightning)."
    )
#: names of the installed packages, e.g. ``("pytorch_lightning", "lightning.pytorch")``.
PACKAGE_NAMES: tuple[str, ...] = tuple(m.__name__ for m in _PACKAGES)
_FABRIC: tuple[ModuleType, ...] = tuple(
    m for m in (_optional("lightning_fabric"), _optional("lightning.fabric")) if m is not None
)


def classes(path: str, fabric: bool = False) -> tuple[type, ...]:
    """The class at the dotted ``path`` (e.g. ``"loggers.WandbLogger"``) of every installed package (and of
    ``lightning_fabric``/``lightning.fabric`` with ``fabric=True``); missing ones are left out.

    Examples:
        >>> [c.__module__.split(".")[0] for c in classes("callbacks.EarlyStopping")][:1]
        ['pytorch_lightning']
    """
    found: list[type] = []
    for package in (*_PACKAGES, *(_FABRIC if fabric else ())):
        obj: Any = package
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, type) and obj not in found:
            found.append(obj)
    return tuple(found)


if TYPE_CHECKING:  # one static base for type checkers; at run time the union of both packages' classes
    from pytorch_lightning import Callback as CallbackBase
else:
    CallbackBase = type("CallbackBase", classes("Callback"), {"__doc__": "Every installed package's ``Callback``."})

TENSORBOARD_LOGGERS: tuple[type, ...] = classes("loggers.TensorBoardLogger", fabric=True)
WANDB_LOGGERS: tuple[type, ...] = classes("loggers.WandbLogger")
MLFLOW_LOGGERS: tuple[type, ...] = classes("loggers.MLFlowLogger")
COMET_LOGGERS: tuple[type, ...] = classes("loggers.CometLogger")
NEPTUNE_LOGGERS: tuple[type, ...] = classes("loggers.NeptuneLogger")
DUMMY_LOGGERS: tuple[type, ...] = classes("loggers.logger.DummyLogger")
EARLY_STOPPING_CALLBACKS: tuple[type, ...] = classes("callbacks.EarlyStopping")
CHECKPOINT_CALLBACKS: tuple[type, ...] = classes("callbacks.ModelCheckpoint")

# rank-zero helpers: identical behaviour in both packages (they read the same RANK environment variables)
_utilities = importlib.import_module(f"{_PACKAGES[0].__name__}.utilities")
rank_zero_warn = _utilities.rank_zero_warn
rank_zero_info = _utilities.rank_zero_info


def stage_name(fn: Any) -> str:
    """A trainer function or stage (``TrainerFn.FITTING`` of either package, or ``"fit"``) as its plain name.

    Examples:
        >>> from pytorch_lightning.trainer.states import TrainerFn
        >>> stage_name(TrainerFn.TESTING), stage_name("fit")
        ('test', 'fit')
    """
    return str(getattr(fn, "value", fn))


def scalar_step(trainer: Any) -> int:
    """The step at which Lightning logs the epoch scalars right now (``cam/<method>/<metric>``), so images
    logged at it line up with them: the fit loop's count of batches that stepped the optimizer (what
    ``LoggerConnector.log_metrics`` uses; it trails ``trainer.global_step`` by one at the validation that
    closes a training epoch), else ``trainer.global_step``."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    step = getattr(loop, "_batches_that_stepped", None)
    return int(trainer.global_step if step is None else step)
