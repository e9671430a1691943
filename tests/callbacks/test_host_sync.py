"""The callback's per-batch path never reads a tensor back to the host (a device sync that stalls a GPU's
validation loop): the reads per epoch are a fixed number, whatever the number of batches.

Counted with `HostReads` (benchmarks/syncs.py) (every Tensor -> Python conversion and the
comparisons that return Python bools, while the callback's hooks run): on CPU nothing stalls, but the same code
paths run. Where CUDA exists, `CudaSyncs` counts the synchronizing calls
themselves with ``torch.cuda.set_sync_debug_mode``.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from benchmarks.syncs import CudaSyncs, HostReads, watch_hooks
from lightning_cam import CAMCallback
from lightning_cam.callbacks.views import default_views
from tests.callbacks.test_cam import ADCC, make_data, make_model, make_trainer


def reads_per_epoch(tmp_path: Any, num_val: int, methods: tuple[str, ...], metrics: tuple[str, ...],
                    views: object = None, num_images: int = 0) -> dict[str, int]:
    """The host reads of the callback's hooks in one ``trainer.validate`` (:class:`HostReads`)."""
    dm = make_data(num_val=num_val)
    model = make_model(dm)
    off = {} if views is None else {"views": views}
    cb = CAMCallback(methods=methods, metrics=metrics, num_images=num_images, max_samples=None, on_error="warn",
                     **off)
    trainer = make_trainer(tmp_path, [cb], logger=False)
    reads = HostReads()
    with watch_hooks(reads):
        trainer.validate(model, dm, verbose=False)
    assert all(f"cam/{m}/complexity" in trainer.callback_metrics for m in methods)
    return reads.counts


@pytest.mark.parametrize("methods", [("gradcam",), ("gradcam", "gradcam_pp", "eigencam")])
def test_host_reads_do_not_grow_with_the_number_of_batches(tmp_path: Any, methods: tuple[str, ...]) -> None:
    metrics = (*ADCC, "pointing_game", "iou")
    views = tuple(v for v in default_views() if v != "strategies")
    two = reads_per_epoch(tmp_path / "a", 32, methods, metrics, views)  # 2 batches of 16
    six = reads_per_epoch(tmp_path / "b", 96, methods, metrics, views)  # 6 batches
    assert two == six, (two, six)  # with the default views (gallery gather, agreement) on
    assert not [k for k in six if k.startswith("batch:")], six  # nothing read in the per-batch hook
    # the strategies view reads nothing per batch either: its epoch end clusters a host copy of its one gather
    # (conversions of CPU tensors, as many as the clustering needs, none a device sync)
    full = reads_per_epoch(tmp_path / "d", 96, methods, metrics)
    assert not [k for k in full if k.startswith("batch:")], full
    # with the probe grid: the run's first scored batch compared with the probe (ProbeReuse: its images and
    # labels, one copy to the host), whatever the number of batches
    two = reads_per_epoch(tmp_path / "e", 32, methods, metrics, views, num_images=4)
    six = reads_per_epoch(tmp_path / "f", 96, methods, metrics, views, num_images=4)
    assert two == six and {k: v for k, v in six.items() if k.startswith("batch:")} == {"batch:equal": 2}, six
    # without the views, epoch end only: the one reduce and the fault tallies (one read each), and each
    # metric's compute()
    two = reads_per_epoch(tmp_path / "c", 32, methods, metrics, views=())
    assert two.get("tolist", 0) <= 2 and sum(two.values()) <= 2 + len(methods) * len(metrics), two


def test_faults_found_in_batches_still_reported_with_their_first_message(tmp_path: Any) -> None:
    """The device-side tallies keep the first message: a blank-map model reports it at the epoch end."""
    dm = make_data()
    model = make_model(dm)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # every activation 0: every map blank
    cb = CAMCallback(methods=("gradcam",), metrics=ADCC, num_images=0, on_error="warn")
    with pytest.warns(UserWarning, match=r"2 fault\(s\).*\(2 blank\); first blank on rank 0: gradcam: 16 blank "
                                         r"\(constant\) map\(s\) left out of the metrics; GradCAM: blank"):
        make_trainer(tmp_path, [cb], logger=False).validate(model, dm, verbose=False)


def test_raise_policy_still_stops_at_the_first_bad_batch(tmp_path: Any) -> None:
    dm = make_data()
    model = make_model(dm)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    cb = CAMCallback(methods=("gradcam",), metrics=ADCC, num_images=0, on_error="raise")
    with pytest.raises(RuntimeError, match="16 blank"):
        make_trainer(tmp_path, [cb], logger=False).validate(model, dm, verbose=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_no_synchronizing_cuda_call_in_the_batch_hook(tmp_path: Any) -> None:
    """On a GPU, the sync debug mode sees no synchronizing call in the per-batch hook (the probe grid's one
    comparison with the first scored batch aside), the same number with 2 and 6 batches."""
    counts = []
    for num_val in (32, 96):
        dm = make_data(num_val=num_val)
        cb = CAMCallback(methods=("gradcam", "gradcam_pp"), metrics=(*ADCC, "pointing_game"), num_images=4,
                         max_samples=None, on_error="warn")
        syncs = CudaSyncs()
        with watch_hooks(syncs):
            make_trainer(tmp_path / str(num_val), [cb], logger=False, accelerator="gpu").validate(
                make_model(dm), dm, verbose=False)
        counts.append(syncs.counts.get("batch:sync", 0))
    assert counts[0] == counts[1], counts  # a sync per batch would make 6 batches count more than 2


_ = pl  # the trainer type of the helpers
