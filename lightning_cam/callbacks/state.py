"""The callback's checkpointed state: its version, and the migration of every earlier version to it.

=========  ==========================================================================================
version    what it holds
=========  ==========================================================================================
1          ``probe``, ``history``, ``epochs_logged`` (one validation run per epoch assumed)
2          + ``validation_runs`` (the runs counted), ``views``: ``{"curves": ...}`` (the summary curves)
3          ``views``: ``{<view name>: <its state>}``, e.g. ``{"summary": {"curves": ...}}``; ``probe_test``,
           the test stage's probe set (earlier versions have none: it is captured at the next test)
=========  ==========================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lightning_cam.callbacks.probe import History, ProbeSet
from lightning_cam.callbacks.schedule import Schedule
from lightning_cam.callbacks.views import CAMViews

__all__ = ["STATE_VERSION", "CallbackState", "migrate_state"]

#: the version :meth:`CAMCallback.state_dict <lightning_cam.CAMCallback.state_dict>` writes.
STATE_VERSION = 3


def migrate_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpointed state of any version as the current version holds it (``validation_runs`` stays absent
    in a version-1 state: the callback then counts one run per epoch done).

    Raises:
        ValueError: a state written by a newer lightning_cam (the message names both versions).

    Examples:
        >>> migrate_state({"version": 2, "views": {"curves": {"cam/gradcam/adcc": {0: 0.5}}}})["views"]
        {'summary': {'curves': {'cam/gradcam/adcc': {0: 0.5}}}}
        >>> migrate_state({"probe": {}})["version"]
        3
    """
    out = dict(state)
    version = int(out.get("version", 2 if "validation_runs" in out else 1))
    if version > STATE_VERSION:
        raise ValueError(f"this checkpoint's CAMCallback state has version {version}, newer than this lightning_cam "
                         f"reads ({STATE_VERSION}); upgrade lightning_cam to resume from it.")
    if version < 3:
        views = dict(out.get("views", {}))
        out["views"] = {"summary": {"curves": views["curves"]}} if "curves" in views else {}
    out["version"] = STATE_VERSION
    return out


@dataclass
class CallbackState:
    """Everything of a :class:`~lightning_cam.CAMCallback` that its checkpoint keeps (the objects themselves,
    shared with the callback's parts), written and read in the current version.

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> from lightning_cam.callbacks.views import ViewContext
        >>> views = CAMViews(ViewContext(("gradcam",), ("adcc",), 32, "jet", 0.5, Faults("warn")), {})
        >>> state = CallbackState(ProbeSet(2), ProbeSet(2), History(), Schedule(1, True, ("fit",)), views)
        >>> sorted(state.state_dict())
        ['epochs_logged', 'history', 'probe', 'probe_test', 'validation_runs', 'version', 'views']
    """

    probe: ProbeSet
    test_probe: ProbeSet
    history: History
    schedule: Schedule
    views: CAMViews
    epochs_logged: list[int] = field(default_factory=list)
    #: False after loading a checkpoint of the first version (no run count): one run per epoch is assumed
    runs_loaded: bool = True

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "probe": self.probe.state_dict(),
            "probe_test": self.test_probe.state_dict(),
            "history": self.history.state_dict(),
            "epochs_logged": list(self.epochs_logged),
            "validation_runs": self.schedule.runs,
            "views": self.views.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = migrate_state(state)
        self.probe.load_state_dict(state.get("probe", {}))
        self.test_probe.load_state_dict(state.get("probe_test", {}))
        self.history.load_state_dict(state.get("history", {}))
        self.epochs_logged[:] = [int(e) for e in state.get("epochs_logged", [])]
        self.schedule.runs = int(state.get("validation_runs", 0))
        self.runs_loaded = "validation_runs" in state
        self.views.load_state_dict(state.get("views", {}))
