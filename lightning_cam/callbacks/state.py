"""The callback's checkpointed state: what a checkpoint keeps, written and read in one version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lightning_cam.callbacks.bank import CentroidBank
from lightning_cam.callbacks.probe import History, ProbeSet
from lightning_cam.callbacks.schedule import Schedule
from lightning_cam.callbacks.views import CAMViews

__all__ = ["STATE_VERSION", "CallbackState"]

#: the version [`CAMCallback.state_dict`][lightning_cam.callbacks.cam.CAMCallback.state_dict] writes and reads.
STATE_VERSION = 1


@dataclass
class CallbackState:
    """Everything of a `CAMCallback` that its checkpoint keeps (the objects themselves, shared with the
    callback's parts).

    Raises:
        ValueError: on loading a state of another version (the message names both).

    Examples:
        >>> from lightning_cam.callbacks.faults import Faults
        >>> from lightning_cam.callbacks.views import ViewContext
        >>> views = CAMViews(ViewContext(("gradcam",), ("adcc",), 32, "jet", 0.5, Faults("warn")), {})
        >>> state = CallbackState(ProbeSet(2), ProbeSet(2), History(), Schedule(1, True, ("fit",)), views)
        >>> sorted(state.state_dict())
        ['bank', 'epochs_logged', 'history', 'probe', 'probe_test', 'validation_runs', 'version', 'view_runs', 'views']
    """

    probe: ProbeSet
    test_probe: ProbeSet
    history: History
    schedule: Schedule
    views: CAMViews
    bank: CentroidBank = field(default_factory=CentroidBank)
    epochs_logged: list[int] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "probe": self.probe.state_dict(),
            "probe_test": self.test_probe.state_dict(),
            "history": self.history.state_dict(),
            "epochs_logged": list(self.epochs_logged),
            "validation_runs": self.schedule.runs,
            "views": self.views.state_dict(),
            "view_runs": self.views.runs,  # the views' `every_n` counts on from here
            "bank": self.bank.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        version = state.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"this checkpoint's CAMCallback state has version {version!r}, and this lightning_cam "
                             f"reads version {STATE_VERSION}; resume with the lightning_cam that wrote it, or drop "
                             "the callback's state from the checkpoint to start its history afresh.")
        self.probe.load_state_dict(state["probe"])
        self.test_probe.load_state_dict(state["probe_test"])
        self.history.load_state_dict(state["history"])
        self.epochs_logged[:] = [int(e) for e in state["epochs_logged"]]
        self.schedule.runs = int(state["validation_runs"])
        self.views.load_state_dict(state["views"])
        self.views.runs = int(state.get("view_runs", 0))
        self.bank.load_state_dict(state.get("bank", {}))  # (an embedding model's; none for other kinds)
