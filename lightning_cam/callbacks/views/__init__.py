"""The callback's views beyond the per-metric scalars and the probe grid, one module each, chosen with
``CAMCallback(views=...)``:

* ``"worst"``: the worst-case gallery ``cam/<method>/worst`` (:mod:`.gallery`, option ``k``);
* ``"drift"``: the drift of the probe maps ``cam/<method>/drift`` (:mod:`.drift`);
* ``"agreement"``: method agreement ``cam/agreement/<a>__<b>`` (:mod:`.agreement`);
* ``"per_class"``: per-class curves ``cam/<method>/per_class/<metric>/<class>`` (:mod:`.per_class`, opt-in);
* ``"strategies"``: the strategies of each class found by clustering its maps, a mask-free shortcut detector,
  ``cam/<method>/strategy/<stat>/<class>`` and the image ``cam/<method>/strategies`` (:mod:`.strategies`);
* ``"summary"``: the custom-scalars layout and the summary figure of all ``cam/`` curves (:mod:`.summary`).

**Adding a view** is one new module with a :class:`~.base.View` subclass decorated with
:func:`~.base.register_view`, and one import line below (the registry line). The contract (which hook runs
when, on which ranks) is in :mod:`.base`.
"""

from __future__ import annotations

# the registry: one line per view module (each registers its view on import)
from lightning_cam.callbacks.views import agreement, drift, gallery, per_class, strategies, summary  # noqa: F401
from lightning_cam.callbacks.views.base import VIEWS, View, ViewContext, register_view
from lightning_cam.callbacks.views.collection import DEFAULT_VIEWS, CAMViews, resolve_views

__all__ = ["DEFAULT_VIEWS", "VIEWS", "CAMViews", "View", "ViewContext", "register_view", "resolve_views"]
