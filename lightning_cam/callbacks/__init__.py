"""``CAMCallback`` and its parts, one home each. The package exports the callback and the image sinks (one per
logger kind); every other part is importable from its own module.

* :mod:`.cam`: :class:`CAMCallback`, the hooks and their orchestration;
* :mod:`.options`: argument resolution and checks (run at construction);
* :mod:`.state`: the checkpointed state's version and its migration;
* :mod:`.accumulate`: per-rank sample quota, metric objects, NaN filter, the one reduce, the logged scalars;
* :mod:`.faults`: fault kinds, the ``on_error`` policy, the fault report, warn-once;
* :mod:`.images`: rank zero's probe grids and evolution images, rendered and sent to the sinks;
* :mod:`.probe`: the checkpointed probe set and the history of its maps; :mod:`.probe_pass`: their per-run work;
* :mod:`.batch`: the per-batch step; :mod:`.runner`: the method objects and the CAM context;
* :mod:`.distributed`: the lock-step of sharded runs (with :mod:`lightning_cam.utilities.lockstep`);
* :mod:`.schedule`: which runs get CAM work (stages, validation runs counted), the setup warnings;
* :mod:`.sinks`: where images go (one sink per logger kind: TensorBoard, W&B, MLflow, Comet, Neptune, PNG
  files in a logger's ``log_dir``), safe file names;
* :mod:`.progress`: rank-zero progress lines;
* :mod:`.views`: the views beyond scalars and grids, one module each, one registry (``views=``).
"""

from __future__ import annotations

from lightning_cam.callbacks.cam import CAMCallback
from lightning_cam.callbacks.sinks import (
    CometSink,
    ImageSink,
    MLflowSink,
    NeptuneSink,
    PNGDirectorySink,
    TensorBoardSink,
    WandbSink,
)

__all__ = [
    "CAMCallback",
    "CometSink",
    "ImageSink",
    "MLflowSink",
    "NeptuneSink",
    "PNGDirectorySink",
    "TensorBoardSink",
    "WandbSink",
]
