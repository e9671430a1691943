"""The one vocabulary of metric names: what :func:`lightning_cam.evaluate_batch`, the metric classes and
the callback understand, and how a requested selection is checked against it.

Example:
    >>> check_metric_names("adcc")
    ('adcc',)
    >>> DEFAULT_METRICS == METRIC_NAMES[:5]
    True
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["DEFAULT_METRICS", "LOCALIZATION_METRICS", "METRIC_NAMES", "check_metric_names"]

#: every metric name, in the order of the design table (the keys of ``lightning_cam.metrics.METRICS``).
METRIC_NAMES: tuple[str, ...] = (
    "average_drop",
    "increase",
    "coherency",
    "complexity",
    "adcc",
    "insertion",
    "deletion",
    "pointing_game",
    "energy_pointing_game",
    "iou",
)
#: the default selection: ADCC and its components.
DEFAULT_METRICS: tuple[str, ...] = ("average_drop", "increase", "coherency", "complexity", "adcc")
#: metrics that need ground-truth masks (or boxes).
LOCALIZATION_METRICS: frozenset[str] = frozenset({"pointing_game", "energy_pointing_game", "iou"})


def check_metric_names(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """A selection of metric names (one name or several) -> the tuple of names, in the order given.

    Raises:
        ValueError: an unknown name (the valid ones are listed), an empty selection, or a name listed twice.

    Example:
        >>> check_metric_names(["iou", "adcc"])
        ('iou', 'adcc')
    """
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid names are {list(METRIC_NAMES)}.")
    if not names:
        raise ValueError(f"no metric requested; choose from {list(METRIC_NAMES)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"`metrics` lists a metric twice: {list(names)}; list each metric once.")
    return names
