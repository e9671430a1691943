"""The metric registry: every metric registers itself where its class is defined (`@register_metric`), with
its per-sample formula and what that formula needs of a batch's passes;
[`evaluate_batch`][lightning_cam.evaluate.evaluate_batch], the callback and the documentation read the table when
asked (`metric_names()`, `default_metrics()`, `localization_metrics()`, `metric_spec(name)`).

Adding a metric is one file: its formula (in `lightning_cam.functional` for the built-in ones) and a
`torchmetrics` class decorated with `@register_metric` (a
[`PerSampleMean`][lightning_cam.metrics.base.PerSampleMean] subclass when it only averages), and its test. A
metric registered in a user's own file works in `evaluate_batch` and in `CAMCallback(metrics=...)`.

What a metric can read ([`MetricInputs`][lightning_cam.metrics.registry.MetricInputs], filled by
`evaluate_batch` only with what some requested metric needs):

| `needs` | what it costs and gives |
|---|---|
| `"masked"` | one forward on `x ⊙ map`: `masked_probs` ($O_c$) |
| `"remap"` | the CAM on `x ⊙ map` instead (one forward and backward): also `masked_maps` |
| `"truth"` | ground-truth masks or boxes in the batch: `truth` `(B, H, W)` |
| `"curves"` | the insertion/deletion perturbation passes (shared by both): `curves()` |
| `"road"` | ROAD's imputed images, one forward per percentile and order (shared by the ROAD family): `road()` |
| `"randomized"` | the CAM of a weight-randomised model copy (made once per state of the weights): `randomized()` |
| `"other_class"` | the CAM of a random other class (one more CAM pass): `other_class()` |

Examples:
    >>> default_metrics()
    ('average_drop', 'increase', 'coherency', 'complexity', 'adcc')
    >>> sorted(metric_spec("coherency").needs), metric_spec("adcc").requires
    (['masked', 'remap'], ('average_drop', 'coherency', 'complexity'))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import Tensor

from lightning_cam.metrics.base import PerSampleMetric
from lightning_cam.utilities.registry import Registry, check_key_name

__all__ = [
    "METRIC_REGISTRY",
    "NEEDS",
    "MetricInputs",
    "MetricSpec",
    "check_metric_names",
    "default_metrics",
    "localization_metrics",
    "metric_names",
    "metric_needs",
    "metric_spec",
    "register_metric",
]

#: what a metric may need of a batch's passes (see the module docstring).
NEEDS: frozenset[str] = frozenset({"masked", "remap", "truth", "curves", "road", "randomized", "other_class"})


@dataclass
class MetricInputs:
    """What one batch's passes produced, for the `MetricSpec.compute` functions (fields a batch does
    not need stay ``None``).

    Attributes:
        maps: ``(B, H, W)`` float32 maps in ``[0, 1]`` (NaN replaced by 0).
        probs: ``(B,)`` ``Y_c``, the target probability on ``x``.
        masked_probs: ``(B,)`` ``O_c`` on ``x ⊙ map`` (``"masked"``).
        masked_maps: ``(B, H, W)`` the maps of ``x ⊙ map`` for the same targets (``"remap"``).
        truth: ``(B, H, W)`` bool ground-truth object masks (``"truth"``).
        options: the checked ``evaluate_batch`` options (``steps``, ``threshold``, ``tolerance``, ...).
        values: the per-sample values computed so far (a spec's `requires` are there).
        curves: ``curves()`` -> ``{"insertion": (B,), "deletion": (B,)}`` for the requested ones (``"curves"``).
        road: ``road()`` -> ``{"road_morf": (B,), "road_lerf": (B,)}`` (``"road"``).
        randomized: ``randomized()`` -> ``(B, H, W)`` the maps of the weight-randomised twin (``"randomized"``).
        other_class: ``other_class()`` -> ``(B, H, W)`` the maps of a random other class (``"other_class"``).
    """

    maps: Tensor
    probs: Tensor
    masked_probs: Tensor | None = None
    masked_maps: Tensor | None = None
    truth: Tensor | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    values: dict[str, Tensor] = field(default_factory=dict)
    curves: Callable[[], Mapping[str, Tensor]] | None = None
    road: Callable[[], Mapping[str, Tensor]] | None = None
    randomized: Callable[[], Tensor] | None = None
    other_class: Callable[[], Tensor] | None = None

    def need(self, name: str) -> Any:
        """The field ``name``, which the spec's ``needs`` guarantee is filled."""
        lazy = {"curves": self.curves, "road": self.road, "randomized": self.randomized,
                "other_class": self.other_class}.get(name)
        value = lazy() if lazy is not None else getattr(self, name)
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
        needs: a subset of `NEEDS`.
        requires: other metrics whose values ``compute`` reads (computed first, even when not requested).
        default: part of the default selection `DEFAULT_METRICS`.
    """

    name: str
    metric: type[PerSampleMetric]
    compute: Callable[[MetricInputs], Tensor]
    needs: frozenset[str] = frozenset()
    requires: tuple[str, ...] = ()
    default: bool = False

    @property
    def shardable(self) -> bool:
        """Whether the metric runs when the parameters are sharded (FSDP, FSDP2, ZeRO-3): every metric but those
        that need a weight-randomised whole copy of the model (``"randomized"``)."""
        return "randomized" not in self.needs

    def __post_init__(self) -> None:
        check_key_name(self.name, "a metric", lower=True)
        if not self.needs <= NEEDS:
            raise ValueError(f"metric {self.name!r} needs {sorted(self.needs - NEEDS)}, not in {sorted(NEEDS)}.")


#: metric name -> [`MetricSpec`][lightning_cam.metrics.registry.MetricSpec]; the built-in metrics are the modules
#: of `lightning_cam.metrics`.
METRIC_REGISTRY: Registry[MetricSpec] = Registry("metric", package="lightning_cam.metrics", loose=False)

C = TypeVar("C", bound=type[PerSampleMetric])


def register_metric(
    name: str,
    compute: Callable[[MetricInputs], Tensor],
    needs: Iterable[str] = (),
    requires: tuple[str, ...] = (),
    default: bool = False,
) -> Callable[[C], C]:
    """Class decorator: register a `torchmetrics` class as the metric `name`, with its per-sample formula
    `compute` (`MetricInputs -> (B,)`), what it `needs` (a subset of `NEEDS`), the metrics it `requires` and
    whether it is part of the `default` selection.

    Examples:
        >>> from lightning_cam.metrics import PerSampleMean
        >>> @register_metric("mean_heat", compute=lambda m: m.maps.mean((1, 2)))
        ... class MeanHeat(PerSampleMean):
        ...     higher_is_better = False
        >>> "mean_heat" in metric_names(), metric_spec("mean_heat").metric is MeanHeat
        (True, True)
        >>> METRIC_REGISTRY.remove("mean_heat").metric is MeanHeat
        True
    """

    def add(cls: C) -> C:
        METRIC_REGISTRY.add(name, MetricSpec(name, cls, compute, frozenset(needs), tuple(requires), default))
        return cls

    return add


def metric_spec(name: str) -> MetricSpec:
    """The registered [`MetricSpec`][lightning_cam.metrics.registry.MetricSpec] of `name` (unknown ->
    `ValueError` listing the valid names)."""
    return METRIC_REGISTRY.get(name)


def metric_names() -> tuple[str, ...]:
    """Every registered metric name, in registration order (the design table's for the built-in ones)."""
    return tuple(METRIC_REGISTRY.names())


def default_metrics() -> tuple[str, ...]:
    """The default selection: the registered metrics with `default=True` (ADCC and its components)."""
    return tuple(METRIC_REGISTRY.names(lambda spec: spec.default))


def localization_metrics() -> frozenset[str]:
    """The metrics that need ground-truth masks or boxes (`"truth"` in their `needs`)."""
    return frozenset(METRIC_REGISTRY.names(lambda spec: "truth" in spec.needs))


def check_metric_names(metrics: str | Iterable[str] | None) -> tuple[str, ...]:
    """A selection of metric names (one name or several; `None`: the default selection) -> the tuple of names,
    in the order given.

    Raises:
        ValueError: an unknown name (the valid ones are listed), an empty selection, or a name listed twice.

    Examples:
        >>> check_metric_names(["iou", "adcc"])
        ('iou', 'adcc')
    """
    if metrics is None:
        return default_metrics()
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [n for n in names if n not in METRIC_REGISTRY]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid names are {list(metric_names())}.")
    if not names:
        raise ValueError(f"no metric requested; choose from {list(metric_names())}.")
    if len(set(names)) != len(names):
        raise ValueError(f"`metrics` lists a metric twice: {list(names)}; list each metric once.")
    return names


def metric_needs(names: Iterable[str]) -> tuple[tuple[MetricSpec, ...], frozenset[str]]:
    """`(specs to compute, in dependency order, their needs combined)` for the requested `names`: each
    spec's `requires` come before it.

    Examples:
        >>> specs, needs = metric_needs(["adcc"])
        >>> [s.name for s in specs], sorted(needs)
        (['average_drop', 'coherency', 'complexity', 'adcc'], ['masked', 'remap'])
    """
    order: list[MetricSpec] = []

    def visit(name: str) -> None:
        spec = metric_spec(name)
        for dep in spec.requires:
            visit(dep)
        if spec not in order:
            order.append(spec)

    for name in names:
        visit(name)
    return tuple(order), frozenset().union(*(s.needs for s in order))
