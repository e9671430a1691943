"""``CAMCallback`` and its parts, one home each.

* :mod:`.cam`: :class:`CAMCallback`, the hooks and their orchestration;
* :mod:`.options`: argument resolution and checks (run at construction);
* :mod:`.accumulate`: per-rank sample quota, metric objects, NaN filter, the one reduce, the logged scalars;
* :mod:`.faults`: fault kinds, the ``on_error`` policy, the fault report, warn-once;
* :mod:`.images`: rank zero's probe grids and evolution images, rendered and sent to the sinks;
* :mod:`.probe`: the checkpointed probe set and the history of its maps;
* :mod:`.schedule`: which runs get CAM work (stages, validation runs counted), the setup warnings;
* :mod:`.sinks`: where images go (one sink per logger kind: TensorBoard, W&B, MLflow, Comet, Neptune, PNG
  files in a logger's ``log_dir``), safe file names;
* :mod:`.progress`: rank-zero progress lines;
* :mod:`.views`: the views beyond scalars and grids, one module each: :mod:`.gallery` (worst cases),
  :mod:`.drift`, :mod:`.agreement`, :mod:`.per_class`, :mod:`.summary` (custom-scalars layout, summary figure).
"""

from __future__ import annotations

from lightning_cam.callbacks.accumulate import MetricAccumulator
from lightning_cam.callbacks.cam import CAMCallback
from lightning_cam.callbacks.faults import FAULT_KINDS, Faults, WarnOnce
from lightning_cam.callbacks.images import EVOLUTION_ROWS, ProbeImages
from lightning_cam.callbacks.probe import History, ProbeSet
from lightning_cam.callbacks.progress import Progress
from lightning_cam.callbacks.schedule import DEFAULT_STAGES, STAGES
from lightning_cam.callbacks.sinks import ImageSink, MLflowSink, PNGDirectorySink, TensorBoardSink, WandbSink
from lightning_cam.metrics.names import DEFAULT_METRICS, LOCALIZATION_METRICS

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_STAGES",
    "EVOLUTION_ROWS",
    "FAULT_KINDS",
    "LOCALIZATION_METRICS",
    "STAGES",
    "CAMCallback",
    "Faults",
    "History",
    "ImageSink",
    "MLflowSink",
    "MetricAccumulator",
    "PNGDirectorySink",
    "ProbeImages",
    "ProbeSet",
    "Progress",
    "TensorBoardSink",
    "WandbSink",
    "WarnOnce",
]
