"""Insertion and Deletion (RISE) as torchmetrics; the curves are computed by
`lightning_cam.functional.perturbation.insertion_deletion`."""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest examples)

from lightning_cam.metrics.base import PerSampleMean
from lightning_cam.metrics.registry import register_metric

__all__ = ["Deletion", "Insertion"]


@register_metric("insertion", lambda m: m.need("curves")["insertion"], {"curves"})
class Insertion(PerSampleMean):
    r"""Insertion AUC in ``[0, 1]`` (higher is better): the target probability as the most salient pixels
    are revealed into a baseline, integrated over the revealed fraction.

    ``update(values)`` with ``evaluate_batch(..., metrics=("insertion",))["insertion"]``
    (see `lightning_cam.functional.perturbation.insertion_deletion`).

    Examples:
        >>> m = Insertion(); m.update(torch.tensor([0.75, 0.25])); m.compute()
        tensor(0.5000)
    """

    higher_is_better = True


@register_metric("deletion", lambda m: m.need("curves")["deletion"], {"curves"})
class Deletion(PerSampleMean):
    r"""Deletion AUC in ``[0, 1]`` (lower is better): the target probability as the most salient pixels
    are removed into a baseline, integrated over the removed fraction.

    Examples:
        >>> m = Deletion(); m.update(torch.tensor([0.1, 0.3])); m.compute()
        tensor(0.2000)
    """

    higher_is_better = False
