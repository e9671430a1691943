"""The randomisation sanity checks as torchmetrics (Quantus's family): does the map depend on what the model
learnt (`randomization`, the model parameter randomisation test) and on the class it explains (`random_logit`)?
The similarity functions are in `lightning_cam.functional.randomization`."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_cam.functional.randomization import spearman, ssim_1d
from lightning_cam.metrics.base import PerSampleMetric
from lightning_cam.metrics.registry import MetricInputs, register_metric

__all__ = ["RandomLogit", "Randomization"]


class _Similarity(PerSampleMetric):
    """A similarity of two maps of one sample, at most 1 (lower is better: the map changed)."""

    plot_lower_bound = -1.0
    plot_upper_bound = 1.0
    higher_is_better = False

    def update(self, values: Tensor) -> None:
        """``values``: ``(B,)`` per-sample similarities."""
        self.add_values(values)


def _randomization(m: MetricInputs) -> Tensor:
    twin = m.need("randomized")
    flat = twin.flatten(1)
    constant = (flat.amax(dim=1) - flat.amin(dim=1)) <= 0  # the copy explains nothing: no order in common, 0
    rho = spearman(m.maps, twin).to(m.maps.device)
    return torch.where(constant.to(rho.device), torch.zeros_like(rho), rho)


def _random_logit(m: MetricInputs) -> Tensor:
    return ssim_1d(m.maps, m.need("other_class")).to(m.maps.device)


@register_metric("randomization", _randomization, {"randomized"})
class Randomization(_Similarity):
    r"""Model parameter randomisation (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018), in
    ``[-1, 1]``, lower is better: Spearman's rank correlation (`spearman`) of each map with the same method's map of
    the same target (a segmentation pair: against its region of the original output) on a copy of the model whose
    weights were re-initialised
    (`lightning_cam.utilities.randomize`). A map that stays the same when the learnt weights are gone explains the
    input or the architecture, not what the model learnt (Eigen-CAM, and edge detectors, often do).

    Options: ``randomization`` (``"cascading"``, default: the top ``randomization_layers`` re-initialised together,
    every layer by default; ``"independent"``: the ``randomization_layers``-th from the top alone),
    ``randomization_seed`` (42). The copy is made once per state of the weights (at a validation run's first batch)
    and costs one CAM pass per batch on it, plus the memory of one model copy during validation. Equal to Quantus
    0.6's ``MPRT`` (``layer_order="top_down"``, ``return_last_correlation=True``) with the same method. A constant map
    of the copy (a randomised model often explains nothing) has no order in common with the map: 0 here, where
    Quantus's Spearman gives NaN (which the callback would count as a fault of every such sample). Not under sharded
    strategies (FSDP, FSDP2, DeepSpeed ZeRO-3: no rank holds the whole model to copy): `evaluate_batch` refuses it
    with that reason, and the callback leaves it out of such a run at its start, with one warning.

    Examples:
        >>> m = Randomization()
        >>> m.update(torch.tensor([0.2, 0.4]))
        >>> m.compute()
        tensor(0.3000)
    """


@register_metric("random_logit", _random_logit, {"other_class"})
class RandomLogit(_Similarity):
    r"""Random logit (Sixt et al., "When Explanations Lie", ICML 2020), lower is better: the structural similarity
    (`ssim_1d`: Quantus's, over the raster-ordered maps with a window of 7) of each map with the same method's map of
    another class, drawn at random once per class (`lightning_cam.functional.pairs.other_classes`, option
    ``random_logit_seed``, 42). A map that does not change with the class explains the image, not the class.

    Costs one CAM pass per batch. Equal to Quantus 0.6's ``RandomLogit`` on the same maps (Quantus draws the other
    class per position in the batch from NumPy's global RNG; here per class, so a sample's value does not depend on
    its batch or rank). For kinds with classes (multi-class, multi-label, binary: the other class is the negation,
    segmentation: the other class's own region); an embedding has none and is refused.

    Examples:
        >>> m = RandomLogit()
        >>> m.update(torch.tensor([0.9, 0.7]))
        >>> m.compute()
        tensor(0.8000)
    """
