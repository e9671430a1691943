"""PerSampleMetric/PerSampleMean (metrics/base.py), shared by every metric class: accumulation, NaN skipping,
empty updates, sum states, plotting, collections, logging."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric, MetricCollection

from lightning_cam.metrics import ADCC, AverageDrop, Coherency, IncreaseInConfidence, metric_names, metric_spec

NAN = float("nan")
BETTER = {
    "average_drop": False,
    "increase": True,
    "coherency": True,
    "complexity": False,
    "adcc": True,
    "insertion": True,
    "deletion": False,
    "pointing_game": True,
    "energy_pointing_game": True,
    "iou": True,
    "randomization": False,
    "random_logit": False,
    "relevance_mass_accuracy": True,
    "relevance_rank_accuracy": True,
    "top_k_intersection": True,
    "attribution_localisation": True,
    "auc": True,
    "road_morf": False,
    "road_lerf": True,
    "road": True,
    "arcc": True,
}


def test_registry_covers_every_evaluate_batch_name() -> None:
    assert metric_spec("adcc").metric is ADCC and metric_spec("increase").metric is IncreaseInConfidence


@pytest.mark.parametrize("name", metric_names())
def test_class_attributes_and_sum_states(name: str) -> None:
    m = metric_spec(name).metric()
    assert isinstance(m, Metric)
    assert m.higher_is_better is BETTER[name]
    assert m.is_differentiable is False and m.full_state_update is False
    signed = name.startswith("road") or name in ("randomization", "random_logit")  # changes, correlations
    assert m.plot_lower_bound == (-1.0 if signed else 0.0)
    assert m.plot_upper_bound == (100.0 if name in ("average_drop", "increase") else 1.0)
    assert set(m._reductions) == {"total", "count", "num_skipped"}
    for fx in m._reductions.values():
        assert fx is not None and fx(torch.tensor([[1.0], [2.0]])).item() == 3.0  # sum across processes


@pytest.mark.parametrize("name", metric_names())
def test_mean_over_batches_with_nan_skipped_and_counted(name: str) -> None:
    m = metric_spec(name).metric()
    m.update(torch.tensor([0.2, NAN, 0.4]))
    m.update(torch.tensor([], dtype=torch.float32))  # empty update: no-op
    m.update(torch.tensor([0.9]))
    torch.testing.assert_close(m.compute(), torch.tensor(0.5))
    assert int(m.count) == 3 and int(m.num_skipped) == 1
    assert m.compute().dtype == torch.float32


def test_compute_without_samples_is_finite_zero_with_warning() -> None:
    m = ADCC()
    m.update(torch.tensor([]))
    with pytest.warns(UserWarning, match="before any finite sample"):
        assert m.compute().item() == 0.0
    m2 = Coherency()
    m2.update(torch.tensor([NAN, NAN]))
    with pytest.warns(UserWarning, match="2 skipped"):
        assert m2.compute().item() == 0.0
    assert int(m2.num_skipped) == 2


def test_reset_clears_states() -> None:
    m = AverageDrop()
    m.update(torch.tensor([10.0, NAN]))
    m.reset()
    assert int(m.count) == 0 and int(m.num_skipped) == 0 and m.total.item() == 0.0


@pytest.mark.parametrize("name", ["average_drop", "adcc"])
def test_plot_single_and_multiple_values(name: str) -> None:
    m = metric_spec(name).metric()
    m.update(torch.tensor([0.3, 0.6]))
    fig, ax = m.plot()
    assert fig is not None and ax.get_ylim()[0] <= 0.0
    vals = [m.compute(), m.compute() / 2]
    fig2, _ = m.plot(vals)
    assert fig2 is not None
    matplotlib.pyplot.close("all")


def test_metric_collection_with_evaluate_batch_values() -> None:
    coll = MetricCollection({name: metric_spec(name).metric() for name in ("average_drop", "increase", "adcc")},
                            prefix="cam/")
    values = {"average_drop": torch.tensor([10.0, 30.0]), "increase": torch.tensor([100.0, 0.0]),
              "adcc": torch.tensor([0.5, 0.7])}
    for name, metric in coll.items(keep_base=True):
        metric.update(values[name])
    out = coll.compute()
    assert set(out) == {"cam/average_drop", "cam/increase", "cam/adcc"}
    torch.testing.assert_close(out["cam/average_drop"], torch.tensor(20.0))
    torch.testing.assert_close(out["cam/increase"], torch.tensor(50.0))
    torch.testing.assert_close(out["cam/adcc"], torch.tensor(0.6))


def test_loggable_with_lightning_module_log(tmp_path) -> None:
    class Model(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)
            self.adcc = ADCC()

        def validation_step(self, batch, batch_idx):
            (values,) = batch
            self.adcc.update(values)
            self.log("cam/adcc", self.adcc, on_epoch=True)

    data = DataLoader(TensorDataset(torch.tensor([0.2, 0.4, NAN, 0.6])), batch_size=2)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", devices=1, default_root_dir=tmp_path)
    out = trainer.validate(Model(), data, verbose=False)
    assert out[0]["cam/adcc"] == pytest.approx(0.4, abs=1e-6)

