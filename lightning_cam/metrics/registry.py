"""The one table of metrics: every name, its ``torchmetrics`` class, how its per-sample values are computed
from one batch's passes, and what those passes need. :func:`lightning_cam.evaluate_batch`, the metric
classes' ``METRICS`` map, the callback and the documentation all read :data:`METRIC_SPECS`.

Adding a metric is one formula in :mod:`lightning_cam.functional`, one :class:`MetricSpec` line below (with
its class, a :class:`~lightning_cam.metrics.base.PerSampleMean` subclass when it only averages) and its test.

What a metric can read (:class:`MetricInputs`, filled by :func:`~lightning_cam.evaluate_batch` only with
what some requested metric needs):

============== =========================================================================================
``needs``      what it costs and gives
============== =========================================================================================
``"masked"``   one forward on ``x ⊙ map``: ``masked_probs`` (``O_c``)
``"remap"``    the CAM on ``x ⊙ map`` instead (one forward and backward): also ``masked_maps``
``"truth"``    ground-truth masks or boxes in the batch: ``truth`` ``(B, H, W)``
``"curves"``   the insertion/deletion perturbation passes (shared by both): ``curves()``
============== =========================================================================================

Examples:
    >>> [s.name for s in METRIC_SPECS.values() if s.default]
    ['average_drop', 'increase', 'coherency', 'complexity', 'adcc']
    >>> sorted(METRIC_SPECS["coherency"].needs), METRIC_SPECS["adcc"].requires
    (['masked', 'remap'], ('average_drop', 'coherency', 'complexity'))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from lightning_cam.functional.adcc import adcc, average_drop, coherency, complexity, increase_in_confidence
from lightning_cam.functional.localization import energy_pointing_game, iou, pointing_game
from lightning_cam.metrics.adcc import ADCC, AverageDrop, Coherency, Complexity, IncreaseInConfidence
from lightning_cam.metrics.base import PerSampleMetric
from lightning_cam.metrics.localization import EnergyPointingGame, IoU, PointingGame
from lightning_cam.metrics.perturbation import Deletion, Insertion

__all__ = [
    "DEFAULT_METRICS",
    "LOCALIZATION_METRICS",
    "METRIC_NAMES",
    "METRIC_SPECS",
    "NEEDS",
    "MetricInputs",
    "MetricSpec",
    "check_metric_names",
    "metric_needs",
]

#: what a metric may need of a batch's passes (see the module docstring).
NEEDS: frozenset[str] = frozenset({"masked", "remap", "truth", "curves"})


@dataclass
class MetricInputs:
    """What one batch's passes produced, for the :attr:`MetricSpec.compute` functions (fields a batch does
    not need stay ``None``).

    Attributes:
        maps: ``(B, H, W)`` float32 maps in ``[0, 1]`` (NaN replaced by 0).
        probs: ``(B,)`` ``Y_c``, the target probability on ``x``.
        masked_probs: ``(B,)`` ``O_c`` on ``x ⊙ map`` (``"masked"``).
        masked_maps: ``(B, H, W)`` the maps of ``x ⊙ map`` for the same targets (``"remap"``).
        truth: ``(B, H, W)`` bool ground-truth object masks (``"truth"``).
        options: the checked ``evaluate_batch`` options (``steps``, ``threshold``, ``tolerance``, ...).
        values: the per-sample values computed so far (a spec's :attr:`~MetricSpec.requires` are there).
        curves: ``curves()`` -> ``{"insertion": (B,), "deletion": (B,)}`` for the requested ones (``"curves"``).
    """

    maps: Tensor
    probs: Tensor
    masked_probs: Tensor | None = None
    masked_maps: Tensor | None = None
    truth: Tensor | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    values: dict[str, Tensor] = field(default_factory=dict)
    curves: Callable[[], Mapping[str, Tensor]] | None = None

    def need(self, name: str) -> Any:
        """The field ``name``, which the spec's ``needs`` guarantee is filled."""
        value = self.curves() if name == "curves" and self.curves is not None else getattr(self, name)
        if value is None:
            raise RuntimeError(f"metric input {name!r} was not computed; declare it in the metric's `needs`.")
        return value


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its name (the key of ``evaluate_batch``'s result and of the logged scalars), its class,
    its per-sample formula and what that formula needs.

    Attributes:
        name: lower-case key, letters, digits and ``_``.
        metric: the ``torchmetrics`` class accumulating the per-sample values (``update(values)``).
        compute: ``MetricInputs -> (B,)`` per-sample values.
        needs: a subset of :data:`NEEDS`.
        requires: other metrics whose values ``compute`` reads (computed first, even when not requested).
        default: part of the default selection :data:`DEFAULT_METRICS`.
    """

    name: str
    metric: type[PerSampleMetric]
    compute: Callable[[MetricInputs], Tensor]
    needs: frozenset[str] = frozenset()
    requires: tuple[str, ...] = ()
    default: bool = False

    def __post_init__(self) -> None:
        if not self.needs <= NEEDS:
            raise ValueError(f"metric {self.name!r} needs {sorted(self.needs - NEEDS)}, not in {sorted(NEEDS)}.")


def _curve(name: str) -> Callable[[MetricInputs], Tensor]:
    return lambda m: m.need("curves")[name]


_MASKED, _REMAP, _TRUTH = frozenset({"masked"}), frozenset({"masked", "remap"}), frozenset({"truth"})
_SPECS = (
    MetricSpec("average_drop", AverageDrop, lambda m: average_drop(m.probs, m.need("masked_probs")), _MASKED,
               default=True),
    MetricSpec("increase", IncreaseInConfidence, lambda m: increase_in_confidence(m.probs, m.need("masked_probs")),
               _MASKED, default=True),
    MetricSpec("coherency", Coherency, lambda m: coherency(m.maps, m.need("masked_maps")), _REMAP, default=True),
    MetricSpec("complexity", Complexity, lambda m: complexity(m.maps), default=True),
    MetricSpec("adcc", ADCC, lambda m: adcc(m.values["coherency"], m.values["complexity"], m.values["average_drop"]),
               requires=("average_drop", "coherency", "complexity"), default=True),
    MetricSpec("insertion", Insertion, _curve("insertion"), frozenset({"curves"})),
    MetricSpec("deletion", Deletion, _curve("deletion"), frozenset({"curves"})),
    MetricSpec("pointing_game", PointingGame,
               lambda m: pointing_game(m.maps, m.need("truth"), tolerance=m.options["tolerance"]), _TRUTH),
    MetricSpec("energy_pointing_game", EnergyPointingGame, lambda m: energy_pointing_game(m.maps, m.need("truth")),
               _TRUTH),
    MetricSpec("iou", IoU, lambda m: iou(m.maps, m.need("truth"), threshold=m.options["threshold"]), _TRUTH),
)

#: metric name -> :class:`MetricSpec`, in the order of the design table.
METRIC_SPECS: dict[str, MetricSpec] = {s.name: s for s in _SPECS}
#: every metric name, in table order.
METRIC_NAMES: tuple[str, ...] = tuple(METRIC_SPECS)
#: the default selection: ADCC and its components.
DEFAULT_METRICS: tuple[str, ...] = tuple(s.name for s in _SPECS if s.default)
#: metrics that need ground-truth masks (or boxes).
LOCALIZATION_METRICS: frozenset[str] = frozenset(s.name for s in _SPECS if "truth" in s.needs)


def check_metric_names(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """A selection of metric names (one name or several) -> the tuple of names, in the order given.

    Raises:
        ValueError: an unknown name (the valid ones are listed), an empty selection, or a name listed twice.

    Examples:
        >>> check_metric_names(["iou", "adcc"])
        ('iou', 'adcc')
    """
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [n for n in names if n not in METRIC_SPECS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid names are {list(METRIC_NAMES)}.")
    if not names:
        raise ValueError(f"no metric requested; choose from {list(METRIC_NAMES)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"`metrics` lists a metric twice: {list(names)}; list each metric once.")
    return names


def metric_needs(names: Iterable[str]) -> tuple[tuple[MetricSpec, ...], frozenset[str]]:
    """``(specs to compute, in dependency order, their needs combined)`` for the requested ``names``: each
    spec's :attr:`~MetricSpec.requires` come before it.

    Examples:
        >>> specs, needs = metric_needs(["adcc"])
        >>> [s.name for s in specs], sorted(needs)
        (['average_drop', 'coherency', 'complexity', 'adcc'], ['masked', 'remap'])
    """
    order: list[MetricSpec] = []

    def visit(name: str) -> None:
        spec = METRIC_SPECS[name]
        for dep in spec.requires:
            visit(dep)
        if spec not in order:
            order.append(spec)

    for name in names:
        visit(name)
    return tuple(order), frozenset().union(*(s.needs for s in order))
