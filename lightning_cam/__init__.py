"""lightning_cam: class activation maps and their metrics, watched while a Lightning model trains."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning_cam.callbacks import CAMCallback
    from lightning_cam.evaluate import evaluate_batch
    from lightning_cam.methods.result import CAMResult
    from lightning_cam.mixin import CAMMixin
    from lightning_cam.record import CAMBatch
    from lightning_cam.targets.task import Task

__version__ = "0.1.0"
__all__ = ["CAMBatch", "CAMCallback", "CAMMixin", "CAMResult", "Task", "evaluate_batch"]

# Lazy so that `import lightning_cam` stays cheap and the Lightning side is only imported when used.
_LAZY = {
    "CAMBatch": "lightning_cam.record",
    "CAMMixin": "lightning_cam.mixin",
    "CAMCallback": "lightning_cam.callbacks",
    "CAMResult": "lightning_cam.methods.result",
    "evaluate_batch": "lightning_cam.evaluate",
    "Task": "lightning_cam.targets.task",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lightning_cam' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
