"""lightning_cam: class activation maps and their metrics, watched while a Lightning model trains."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["CAMBatch", "CAMCallback", "CAMMixin", "CAMResult", "evaluate_batch"]

_LAZY = {
    "CAMBatch": "lightning_cam.mixin",
    "CAMMixin": "lightning_cam.mixin",
    "CAMCallback": "lightning_cam.callbacks",
    "CAMResult": "lightning_cam.methods.result",
    "evaluate_batch": "lightning_cam.evaluate",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import lightning_cam` stays cheap and the Lightning side is only imported when used.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lightning_cam' has no attribute {name!r}")
