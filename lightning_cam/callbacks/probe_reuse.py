"""The probe maps taken from the scored pass: when a run's first scored batch starts with the probe images, the
probe grid shows the maps that pass already computed instead of explaining the probe again.

The probe set is captured from the first validation batches on rank zero, and a validation loader without
shuffling yields them again, at the head of its first batch, in every later run. The scored pass explains
those rows anyway (rank zero scores the first samples of its batches), with the same targets as the probe
grid (the predicted class, or the labels with ``target="label"``). So the grid costs no forward at all when:

* the probe images are the first rows of the run's first scored batch (compared once per run on rank zero:
  one device-to-host copy of the probe rows, never per batch), with the same labels;
* the model has no extra inputs (they would have to be compared too) and the task is not multi-label (its
  probe explains fixed label pairs, which the scored pass of predicted positives does not);
* every method's map came from the shared pass (a method that failed there is explained again, alone).

Otherwise the probe is explained as before, all methods in one shared pass
([`MethodGroup`][lightning_cam.methods.MethodGroup]). The maps agree with a separate pass over the probe images to
float rounding (a convolution's arithmetic may differ with the batch size).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lightning_cam.callbacks.probe import ProbeSet
from lightning_cam.methods import CAMResult
from lightning_cam.record import BatchRecord, CAMBatch

__all__ = ["ProbeReuse"]


class ProbeReuse:
    """The probe's maps of the current run, if the scored pass computed them (see the module docstring).

    Examples:
        >>> from lightning_cam.callbacks.probe import ProbeSet
        >>> probe, reuse = ProbeSet(capacity=2), ProbeReuse()
        >>> images = torch.rand(4, 3, 8, 8)
        >>> probe.add(images, None)
        >>> result = CAMResult(torch.rand(4, 8, 8), torch.rand(4, 2, 2), torch.rand(4, 5), torch.arange(4))
        >>> reuse.start(probe)
        >>> reuse.observe(BatchRecord(CAMBatch(images), shared={"gradcam": result}))
        >>> reuse.results["gradcam"].targets.tolist()
        [0, 1]
    """

    def __init__(self) -> None:
        #: method name -> the probe rows of its scored result, or ``None`` (explain the probe)
        self.results: dict[str, CAMResult] | None = None
        self.probe: ProbeSet | None = None
        self._offered = False

    def start(self, probe: ProbeSet | None) -> None:
        """A new CAM run of the stage whose probe set is ``probe`` (``None`` on the ranks that draw no grid):
        nothing kept; the run's first scored batch will be compared."""
        self.results, self.probe, self._offered = None, probe, False

    def observe(self, record: BatchRecord) -> None:
        """An observer of the batch step: the run's first batch with a shared pass is offered (`offer`)."""
        if self.probe is not None and not self._offered and record.shared is not None:
            self.offer(self.probe, record.parts, record.shared)

    def results_for(self, size: int) -> dict[str, CAMResult] | None:
        """The kept maps if they cover a probe of ``size`` images (the probe may still have grown after the
        comparison, in its first run, from later batches), else ``None``."""
        if self.results is None or any(int(r.maps.shape[0]) != size for r in self.results.values()):
            return None
        return self.results

    @property
    def wanted(self) -> bool:
        """Whether the next scored batch should be offered (only the run's first one is compared)."""
        return not self._offered

    def offer(self, probe: ProbeSet, parts: CAMBatch, results: Mapping[str, CAMResult]) -> None:
        """Keep the probe rows of ``results`` (each method's maps of the scored samples ``parts``) if ``parts``
        starts with the probe images and labels; only the first call of a run compares (one host copy)."""
        if self._offered:
            return
        self._offered = True
        k = probe.size
        if (probe.images is None or k == 0 or int(parts.images.shape[0]) < k or parts.extra is not None
                or probe.extra is not None or any(r.samples is not None for r in results.values())):
            return
        head = parts.images[:k].detach().to("cpu", torch.float32)
        if head.shape != probe.images.shape or not torch.equal(head, probe.images):
            return
        if (probe.labels is None) != (parts.labels is None):
            return
        if probe.labels is not None and parts.labels is not None and not torch.equal(
                parts.labels[:k].detach().to("cpu", torch.long), probe.labels):
            return
        rows = torch.arange(k, device=parts.images.device)
        self.results = {name: result.take(rows) for name, result in results.items()}
