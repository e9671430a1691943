"""mkdocs hook: the tables of methods, metrics, views and target kinds, generated from the registries when the
site is built (a page holds ``<!-- registry: methods -->`` and the like), so they cannot go stale."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from lightning_cam.callbacks.views import VIEW_REGISTRY
from lightning_cam.methods.registry import METHOD_REGISTRY
from lightning_cam.metrics.registry import METRIC_REGISTRY
from lightning_cam.targets.base import TARGET_REGISTRY


def _summary(obj: Any) -> str:
    """The first sentence of a docstring, as one table cell."""
    doc = inspect.getdoc(obj) or ""
    first = doc.split("\n\n", 1)[0].replace("\n", " ").replace("|", "\\|")
    return first


def _ref(cls: type) -> str:
    """The class's name as code (not every registered class has a reference section to link to)."""
    return f"`{cls.__name__}`"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def methods_table() -> str:
    rows = []
    for name, cls in METHOD_REGISTRY.items():
        aliases = ", ".join(f"`{a}`" for a in cls.aliases) or ""
        rows.append([f"`{name}`", aliases, _ref(cls), "yes" if cls.needs_grad else "no", cls.cost(),
                     "yes" if cls.leave_on else "on few samples", _summary(cls)])
    return _table(["name", "aliases", "class", "gradients", "floor per batch", "leave on", "what"], rows)


def metrics_table() -> str:
    rows = []
    for name, spec in METRIC_REGISTRY.items():
        better = {True: "higher", False: "lower"}.get(spec.metric.higher_is_better, "")  # type: ignore[arg-type]
        needs = ", ".join(f"`{n}`" for n in sorted(spec.needs)) or "nothing more"
        rows.append([f"`{name}`", _ref(spec.metric), better, needs, "yes" if spec.default else "",
                     _summary(spec.metric)])
    return _table(["name", "class", "better", "needs", "default", "what"], rows)


def views_table() -> str:
    rows = [[f"`{name}`", _ref(cls), "yes" if cls.default else "opt-in", _summary(cls)]
            for name, cls in VIEW_REGISTRY.items()]
    return _table(["name", "class", "default", "what"], rows)


def targets_table() -> str:
    rows = [[f"`{name}`", _ref(cls), _summary(inspect.getmodule(cls))] for name, cls in TARGET_REGISTRY.items()]
    return _table(["kind", "class", "what is explained"], rows)


TABLES: dict[str, Callable[[], str]] = {
    "methods": methods_table, "metrics": metrics_table, "views": views_table, "targets": targets_table,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for key, table in TABLES.items():
        marker = f"<!-- registry: {key} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, table())
    return markdown
