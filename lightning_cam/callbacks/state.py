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
from typing import Any

__all__ = ["STATE_VERSION", "migrate_state"]

#: the version :meth:`CAMCallback.state_dict <lightning_cam.CAMCallback.state_dict>` writes.
STATE_VERSION = 3


def migrate_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpointed state of any version as the current version holds it (``validation_runs`` stays absent
    in a version-1 state: the callback then counts one run per epoch done).

    Raises:
        ValueError: a state written by a newer lightning_cam (the message names both versions).

    Example:
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
