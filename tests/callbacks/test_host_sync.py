"""The callback's per-batch path never reads a tensor back to the host (a device sync that stalls a GPU's
validation loop): the reads per epoch are a fixed number, whatever the number of batches.

Counted by patching every Tensor -> Python conversion (``item``, ``tolist``, ``__bool__``, ``__int__``,
``__float__``, ``__index__``) and the comparisons that return Python bools (``torch.equal``, ``torch.allclose``,
``Tensor.nonzero``), while the callback's hooks run. On CPU nothing stalls, but the same code paths run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from lightning_cam import CAMCallback
from lightning_cam.callbacks import cam as cam_module
from lightning_cam.callbacks.views import DEFAULT_VIEWS
from tests.callbacks.test_cam import ADCC, make_data, make_model, make_trainer

CONVERSIONS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero")


@contextlib.contextmanager
def count_host_reads(counter: dict[str, int]) -> Iterator[None]:
    """Count the conversions made while ``counter['active']`` is set (the callback's hooks)."""
    originals = {name: getattr(torch.Tensor, name) for name in CONVERSIONS}
    functions = {"equal": torch.equal, "allclose": torch.allclose}

    def wrap(name: str, fn: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            if counter["active"]:  # reads in the per-batch hook are keyed "batch:<name>"
                key = name if counter["active"] == 2 else f"batch:{name}"
                counter[key] = counter.get(key, 0) + 1
            return fn(*args, **kwargs)

        return counted

    try:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, wrap(name, fn))
        for name, fn in functions.items():
            setattr(torch, name, wrap(name, fn))
        yield
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)
        for name, fn in functions.items():
            setattr(torch, name, fn)


def reads_per_epoch(tmp_path: Any, num_val: int, methods: tuple[str, ...], metrics: tuple[str, ...],
                    monkeypatch: pytest.MonkeyPatch, views: object = None) -> dict[str, int]:
    counter: dict[str, int] = {"active": 0}
    with monkeypatch.context() as mp:
        return _reads(tmp_path, num_val, methods, metrics, mp, counter, views)


def _reads(tmp_path: Any, num_val: int, methods: tuple[str, ...], metrics: tuple[str, ...],
           monkeypatch: pytest.MonkeyPatch, counter: dict[str, int], views: object) -> dict[str, int]:
    for hook in ("on_validation_batch_end", "on_validation_epoch_end"):
        original = getattr(cam_module.CAMCallback, hook)

        def active(self: CAMCallback, *args: Any, _original: Any = original, _hook: str = hook) -> Any:
            counter["active"] = 1 if _hook == "on_validation_batch_end" else 2
            try:
                return _original(self, *args)
            finally:
                counter["active"] = 0

        monkeypatch.setattr(cam_module.CAMCallback, hook, active)
    dm = make_data(num_val=num_val)
    model = make_model(dm)
    off = {} if views is None else {"views": views}
    cb = CAMCallback(methods=methods, metrics=metrics, num_images=0, max_samples=None, on_error="warn", **off)
    trainer = make_trainer(tmp_path, [cb], logger=False)
    with count_host_reads(counter):
        trainer.validate(model, dm, verbose=False)
    assert all(f"cam/{m}/complexity" in trainer.callback_metrics for m in methods)
    counter.pop("active")
    return counter


@pytest.mark.parametrize("methods", [("gradcam",), ("gradcam", "gradcam_pp", "eigencam")])
def test_host_reads_do_not_grow_with_the_number_of_batches(tmp_path: Any, methods: tuple[str, ...],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = (*ADCC, "pointing_game", "iou")
    views = tuple(v for v in DEFAULT_VIEWS if v != "strategies")
    two = reads_per_epoch(tmp_path / "a", 32, methods, metrics, monkeypatch, views)  # 2 batches of 16
    six = reads_per_epoch(tmp_path / "b", 96, methods, metrics, monkeypatch, views)  # 6 batches
    assert two == six, (two, six)  # with the default views (gallery gather, agreement) on
    assert not [k for k in six if k.startswith("batch:")], six  # nothing read in the per-batch hook
    # the strategies view reads nothing per batch either: its epoch end clusters a host copy of its one gather
    # (conversions of CPU tensors, as many as the clustering needs, none a device sync)
    full = reads_per_epoch(tmp_path / "d", 96, methods, metrics, monkeypatch)
    assert not [k for k in full if k.startswith("batch:")], full
    # without the views, epoch end only: the one reduce and the fault tallies (one read each), and each
    # metric's compute()
    two = reads_per_epoch(tmp_path / "c", 32, methods, metrics, monkeypatch, views=())
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


_ = pl  # the trainer type of the helpers
