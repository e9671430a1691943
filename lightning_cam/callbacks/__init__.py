"""``CAMCallback`` and its parts, one home each. The package exports the callback and the image sinks (one per
logger kind); every other part is importable from its own module.

* `cam`: [`CAMCallback`][lightning_cam.callbacks.CAMCallback], the hooks and their orchestration;
* `options`: argument resolution and checks (run at construction);
* `state`: the checkpointed state's version and its migration;
* `accumulate`: per-rank sample quota, metric objects, NaN filter, the one reduce, the logged scalars;
* `faults`: fault kinds, the ``on_error`` policy, the fault report, warn-once;
* `images`: rank zero's probe grids and evolution images, rendered and sent to the sinks;
* `probe`: the checkpointed probe set and the history of its maps; `probe_pass`: the probe's maps of each run,
  handed to the views (the grid view, `views/grid.py`, draws the grids and the evolution image);
* `batch`: the per-batch step; `runner`: the method objects and the CAM context;
* `distributed`: the lock-step of sharded runs (with `lightning_cam.utilities.lockstep`);
* `schedule`: which runs get CAM work (stages, validation runs counted), the setup warnings;
* `sinks`: where images go (one sink per logger kind: TensorBoard, W&B, MLflow, Comet, Neptune, PNG
  files in a logger's ``log_dir``), safe file names;
* `progress`: rank-zero progress lines;
* `views`: the views beyond scalars and grids, one module each, one registry (``views=``).
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
