r"""Drift ``cam/<method>/drift``: how much the probe maps changed since the previous CAM validation run.

.. math:: \mathrm{drift}_e = 1 - \frac{1}{N} \sum_{i=1}^{N} \rho(\mathrm{map}_{e}(x_i), \mathrm{map}_{e'}(x_i))

for the ``N`` probe images ``x_i``, ``e'`` the previous recorded epoch and ``ρ`` the Pearson correlation
(:func:`lightning_cam.functional.adcc.pearson`; a constant map correlates 0). Read from the callback's
:class:`~lightning_cam.callbacks.probe.History` (the maps the probe grid already computed, stored as
``uint8`` at most 64 px): no extra forward. 0 means unchanged, 1 uncorrelated, up to 2 inverted.
"""

from __future__ import annotations

from lightning_cam.callbacks.probe import History
from lightning_cam.functional.adcc import pearson

__all__ = ["probe_drift"]


def probe_drift(history: History, method: str, row: int) -> float | None:
    """The drift of ``method``'s probe maps at history row ``row`` (one recorded validation run) against the
    latest earlier recorded row; ``None`` when either is missing or their shapes differ.

    Example:
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
