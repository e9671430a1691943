r"""Drift ``cam/<method>/drift`` (view ``"drift"``): how much the probe maps changed since the previous CAM
validation run.

$$
\mathrm{drift}_e = 1 - \frac{1}{N} \sum_{i=1}^{N} \rho(\mathrm{map}_{e}(x_i), \mathrm{map}_{e'}(x_i))
$$

for the ``N`` probe images ``x_i``, ``e'`` the previous recorded epoch and ``ρ`` the Pearson correlation
(`lightning_cam.functional.adcc.pearson`; a constant map correlates 0). Read from the callback's
`History` (the maps the probe grid already computed, stored as
``uint8`` at most 64 px): no extra forward. 0 means unchanged, 1 uncorrelated, up to 2 inverted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lightning_cam.callbacks.probe import History, ProbeRecord
from lightning_cam.callbacks.scalars import ScalarLog
from lightning_cam.callbacks.sinks import ImageSink
from lightning_cam.callbacks.views.base import Chart, View, register_view
from lightning_cam.functional.adcc import pearson

__all__ = ["DriftView", "probe_drift"]


def probe_drift(history: History, method: str, row: int) -> float | None:
    """The drift of ``method``'s probe maps at history row ``row`` (one recorded validation run) against the
    latest earlier recorded row; ``None`` when either is missing or their shapes differ.

    Examples:
        >>> import torch
        >>> h = History()
        >>> maps = torch.rand(3, 8, 8)
        >>> h.add("gradcam", 0, maps, torch.zeros(3))
        >>> h.add("gradcam", 1, maps, torch.zeros(3))
        >>> h.add("gradcam", 2, 1 - maps, torch.zeros(3))
        >>> probe_drift(h, "gradcam", 0) is None
        True
        >>> round(probe_drift(h, "gradcam", 1), 3), round(probe_drift(h, "gradcam", 2), 3)
        (0.0, 2.0)
    """
    recorded = history.maps.get(method, {})
    earlier = [r for r in recorded if r < row]
    if row not in recorded or not earlier:
        return None
    now, before = recorded[row].float(), recorded[max(earlier)].float()
    if now.shape != before.shape:
        return None
    return float(1.0 - pearson(now, before).double().mean())


@register_view
class DriftView(View):
    """View ``"drift"``: ``cam/<method>/drift`` after each recorded probe grid of ``fit`` (rank zero, logged with
    ``rank_zero_only=True``: no collective, so it cannot be a ``monitor`` in a multi-process run).

    Examples:
        >>> DriftView.chart("cam/gradcam/drift")
        ('CAM agreement and drift', 'drift', 'gradcam')
    """

    name = "drift"
    default = True

    def keys(self, class_names: Sequence[str] | None, with_probe: bool) -> list[str]:
        return [f"cam/{m}/drift" for m in self.ctx.methods] if with_probe else []

    @classmethod
    def chart(cls, key: str) -> Chart | None:
        parts = key.split("/")
        return ("CAM agreement and drift", "drift", parts[1]) if len(parts) == 3 and parts[2] == "drift" else None

    def probe_logged(self, probe: ProbeRecord, log: ScalarLog, sinks: Sequence[ImageSink]) -> None:
        if not probe.recorded:
            return
        for name in self.ctx.methods:
            value = probe_drift(probe.history, name, probe.when.row)
            if value is not None:
                log(f"cam/{name}/drift", torch.tensor(value), rank_zero_only=True)
