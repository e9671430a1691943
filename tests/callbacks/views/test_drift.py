"""views/drift.py: drift of the probe maps from the history."""

from __future__ import annotations

import torch

from lightning_cam.callbacks.probe import History
from lightning_cam.callbacks.views.drift import DriftView, probe_drift


def test_drift_needs_an_earlier_row() -> None:
    h = History()
    maps = torch.rand(4, 16, 16)
    h.add("gradcam", 0, maps, torch.zeros(4))
    h.add("gradcam", 2, maps.flip(-1), torch.zeros(4))
    assert probe_drift(h, "gradcam", 0) is None
    assert 0.5 < probe_drift(h, "gradcam", 2) < 1.5  # type: ignore[operator]
    assert DriftView.chart("cam/gradcam/adcc") is None


def test_a_model_gone_nan_logs_no_drift_but_a_fault(tmp_path: object) -> None:
    """Non-finite probe maps are drawn as 0: compared with the previous run they would read as drift 1.0
    ("unrelated"). They are left out of drift and the evolution image, and counted as a fault instead."""
    import warnings

    from pytorch_lightning import Callback

    from lightning_cam import CAMCallback
    from tests.callbacks.test_cam import make_data, make_model, make_trainer

    class GoesNaN(Callback):
        def on_validation_epoch_start(self, trainer: object, pl_module: torch.nn.Module) -> None:
            if trainer.current_epoch == 1:  # type: ignore[attr-defined]
                with torch.no_grad():
                    pl_module.fc.weight.fill_(float("nan"))  # type: ignore[union-attr, operator]

    dm = make_data()
    cb = CAMCallback(metrics=("complexity",), num_images=2, views=("drift",))
    trainer = make_trainer(tmp_path, [GoesNaN(), cb], max_epochs=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(make_model(dm), dm)
    assert "cam/gradcam/drift" not in trainer.callback_metrics
    assert cb.history.rows("gradcam") == [0]  # the NaN run is not a row of the evolution either
    # 2 scored batches and the probe grid, each a counted fault of the epoch
    assert any("3 fault(s) in CAM work at epoch 1 (3 nonfinite)" in str(w.message) for w in record)
