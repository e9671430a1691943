"""The probe grid takes the scored pass's maps when the run's first scored batch holds the probe images, and
explains the probe (one shared pass) otherwise: either way the grid shows the probe's own maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from lightning_cam.callbacks.probe import ProbeSet
from lightning_cam.callbacks.probe_reuse import ProbeReuse
from lightning_cam.methods import CAMResult, GradCAM, GradCAMPlusPlus
from lightning_cam.record import BatchRecord, CAMBatch
from tests.callbacks.test_cam import cam, make_data, make_model, make_trainer


def _result(n: int) -> CAMResult:
    return CAMResult(torch.rand(n, 8, 8), torch.rand(n, 2, 2), torch.rand(n, 5), torch.arange(n) % 5)


def _probe(images: torch.Tensor, labels: torch.Tensor | None = None) -> ProbeSet:
    probe = ProbeSet(capacity=3)
    probe.add(images, labels)
    return probe


def test_the_probe_rows_of_a_matching_batch_are_kept() -> None:
    images, labels = torch.rand(5, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4])
    reuse, result = ProbeReuse(), _result(5)
    reuse.start(_probe(images, labels))
    reuse.observe(BatchRecord(CAMBatch(images, labels), shared={"gradcam": result}))
    assert reuse.results is not None
    kept = reuse.results["gradcam"]
    assert torch.equal(kept.maps, result.maps[:3]) and torch.equal(kept.logits, result.logits[:3])
    reuse.start(None)  # a new run forgets them
    assert reuse.results is None and reuse.wanted


@pytest.mark.parametrize("case", ["other images", "other labels", "too few rows", "extra inputs", "pairs",
                                  "labels missing"])
def test_nothing_is_kept_unless_the_batch_starts_with_the_probe(case: str) -> None:
    images, labels = torch.rand(5, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4])
    probe = _probe(images, labels)
    parts, result = CAMBatch(images, labels), _result(5)
    if case == "other images":
        parts = CAMBatch(images.flip(0), labels)
    elif case == "other labels":
        parts = CAMBatch(images, labels.flip(0))
    elif case == "too few rows":
        parts, result = CAMBatch(images[:2], labels[:2]), _result(2)
    elif case == "extra inputs":
        parts = CAMBatch(images, labels, extra={"mask": torch.ones(5, 4)})
    elif case == "pairs":  # multi-label pairs: the probe explains its label pairs, not the scored ones
        result = result.paired(torch.arange(5))
    elif case == "labels missing":
        parts = CAMBatch(images)
    reuse = ProbeReuse()
    reuse.start(probe)
    reuse.observe(BatchRecord(parts, shared={"gradcam": result}))
    assert reuse.results is None


def test_kept_maps_serve_only_a_probe_of_their_size() -> None:
    """A probe larger than the first batch grows after the comparison (its first run): the kept maps then cover
    only part of it and are not used."""
    images = torch.rand(4, 3, 8, 8)
    probe, reuse = ProbeSet(capacity=8), ProbeReuse()
    probe.add(images, None)
    reuse.start(probe)
    reuse.observe(BatchRecord(CAMBatch(images), shared={"gradcam": _result(4)}))
    assert reuse.results_for(4) is not None
    probe.add(torch.rand(4, 3, 8, 8), None)  # the second batch completes the probe
    assert reuse.results_for(probe.size) is None


def test_only_the_first_scored_batch_of_a_run_is_compared() -> None:
    images = torch.rand(4, 3, 8, 8)
    reuse = ProbeReuse()
    reuse.start(_probe(images))
    reuse.observe(BatchRecord(CAMBatch(torch.rand(4, 3, 8, 8)), shared={"gradcam": _result(4)}))
    assert not reuse.wanted
    reuse.observe(BatchRecord(CAMBatch(images), shared={"gradcam": _result(4)}))  # a later batch: not compared
    assert reuse.results is None


def test_a_batch_without_a_shared_pass_is_not_the_comparison_and_other_ranks_never_compare() -> None:
    images = torch.rand(4, 3, 8, 8)
    reuse = ProbeReuse()
    reuse.start(_probe(images))
    reuse.observe(BatchRecord(CAMBatch(images)))  # each method ran alone (a shared pass raised): no maps to keep
    assert reuse.wanted and reuse.results is None
    reuse.start(None)  # a rank that draws no grid
    reuse.observe(BatchRecord(CAMBatch(images), shared={"gradcam": _result(4)}))
    assert reuse.results is None


def _probe_maps_match_a_fresh_explanation(cb: Any, model: Any) -> None:
    """The last recorded probe maps of each method equal that method explaining the probe images alone."""
    model.eval()
    images = cb.probe.images
    for name, cls in (("gradcam", GradCAM), ("gradcam_pp", GradCAMPlusPlus)):
        expected = cls(model.cam_model(), model.cam_layer()).explain(images).maps
        rows, maps = cb.history.series(name)
        assert torch.allclose(maps[-1], expected.clamp(0, 1), atol=2 / 255), name


@pytest.mark.parametrize("shuffled", [False, True])
def test_the_grid_shows_the_probe_maps_whether_reused_or_explained(tmp_path: Path, shuffled: bool) -> None:
    """A plain validation loader gives the probe again at the head of each run: its maps come from the scored
    pass. A shuffled one does not: the probe is explained. Both grids hold the probe's own maps."""
    dm = make_data()
    dm.prepare_data()
    dm.setup("fit")
    val = dm.val_dataloader()
    if shuffled:  # a different order every run: the probe is rarely the head of the first batch
        val = DataLoader(Subset(val.dataset, list(range(len(val.dataset)))), batch_size=16, shuffle=True,
                         generator=torch.Generator().manual_seed(0), collate_fn=val.collate_fn)
    cb = cam(methods=("gradcam", "gradcam_pp"), metrics=("complexity",), num_images=3)
    model = make_model(dm)
    make_trainer(tmp_path, [cb], max_epochs=2).fit(model, dm.train_dataloader(), val)
    assert (cb._probe_pass.reuse.results is not None) is not shuffled
    assert cb.history.rows("gradcam") == [0, 1]
    _probe_maps_match_a_fresh_explanation(cb, model)
