"""The callback's views beyond the per-metric scalars and the probe grid, one module each, chosen with
``CAMCallback(views=...)``:

* ``"worst"``: the worst-case gallery ``cam/<method>/worst`` (`gallery`, option ``k``);
* ``"drift"``: the drift of the probe maps ``cam/<method>/drift`` (`drift`);
* ``"agreement"``: method agreement ``cam/agreement/<a>__<b>`` (`agreement`);
* ``"per_class"``: per-class curves ``cam/<method>/per_class/<metric>/<class>`` (`per_class`, opt-in);
* ``"strategies"``: the strategies of each class found by clustering its maps, a mask-free shortcut detector,
  ``cam_strategies/<method>/<stat>/<class>`` and the image ``cam/<method>/strategies`` (`strategies`);
* ``"summary"``: the custom-scalars layout and the summary figure of all ``cam/`` curves (`summary`).

**Adding a view** is one new module of this package with a `View` subclass decorated with `@register_view`:
the registry imports every module of the package when it is first read, so nothing else changes. The contract
(which hook runs when, on which ranks) is in `lightning_cam.callbacks.views.base`.
"""

from __future__ import annotations

from lightning_cam.callbacks.views.base import VIEW_REGISTRY, View, ViewContext, default_views, register_view
from lightning_cam.callbacks.views.collection import CAMViews, resolve_views

VIEW_REGISTRY.load()  # every view module of this package, in name order: one fixed registration order

__all__ = ["VIEW_REGISTRY", "CAMViews", "View", "ViewContext", "default_views", "register_view", "resolve_views"]
