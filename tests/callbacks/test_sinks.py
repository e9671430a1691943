"""Image sinks: TensorBoard add_image, PNG files, failures collected, the output directory."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from lightning_cam.callbacks.sinks import (
    PNGDirectorySink,
    TensorBoardSink,
    image_sinks,
    log_to_all,
    safe_name,
    sink_for,
)


class Writer:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def add_image(self, tag: str, image: torch.Tensor, global_step: int, dataformats: str) -> None:
        self.calls.append((tag, tuple(image.shape), global_step, dataformats))


class FakeTB:
    def __init__(self, log_dir: str) -> None:
        self.experiment = Writer()
        self.log_dir = log_dir


def trainer(tmp_path: Any, logger: Any) -> pl.Trainer:
    return pl.Trainer(logger=logger, default_root_dir=str(tmp_path), enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)


def test_tensorboard_sink_calls_add_image_and_saves_in_its_log_dir(tmp_path: Any) -> None:
    logger = FakeTB(str(tmp_path / "tb"))
    sink = TensorBoardSink(logger)
    sink.log_image("cam/gradcam/grid", torch.rand(3, 8, 8), 4)
    assert logger.experiment.calls == [("cam/gradcam/grid", (3, 8, 8), 4, "CHW")]
    path = sink.save(torch.rand(3, 8, 8), "x.png")
    assert path == os.path.join(str(tmp_path / "tb"), "x.png") and os.path.getsize(path) > 0


def test_png_directory_sink_writes_one_file_per_tag_and_step(tmp_path: Any) -> None:
    sink = PNGDirectorySink(str(tmp_path / "new"))  # created on the first write
    sink.log_image("cam/gradcam_pp/grid", torch.rand(3, 8, 8), 2)
    sink.log_image("cam/gradcam_pp/grid", torch.rand(3, 8, 8), 3)
    assert sorted(os.listdir(tmp_path / "new")) == ["cam_gradcam_pp_grid_step2.png", "cam_gradcam_pp_grid_step3.png"]


def test_log_to_all_collects_failures_and_still_writes_the_others(tmp_path: Any) -> None:
    class Failing(PNGDirectorySink):
        def log_image(self, tag: str, image: torch.Tensor, step: int, caption: str | None = None) -> None:
            raise OSError("disk full")

    good = TensorBoardSink(FakeTB(str(tmp_path)))
    errors = log_to_all([Failing(str(tmp_path)), good], "t", torch.rand(3, 4, 4), 0)
    assert [str(e) for e in errors] == ["disk full"] and len(good.logger.experiment.calls) == 1


def test_sinks_follow_the_trainer_loggers(tmp_path: Any) -> None:
    tb, csv = TensorBoardLogger(str(tmp_path), name="tb"), CSVLogger(str(tmp_path), name="csv")
    sinks = image_sinks(trainer(tmp_path, [csv, tb]))
    assert [type(s) for s in sinks] == [PNGDirectorySink, TensorBoardSink]  # one per logger, in order
    assert sinks[0].directory == csv.log_dir and sinks[1].logger is tb  # type: ignore[attr-defined]
    assert image_sinks(trainer(tmp_path, False)) == []  # logger=False: no files at all


@pytest.mark.parametrize(("name", "safe"), [("gradcam++", "gradcampp"), ("a b/c", "a_b_c"), ("x-1.y", "x-1.y")])
def test_safe_name(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_every_registered_method_name_passes_mlflow_name_validation() -> None:
    from mlflow.utils.validation import _validate_metric_name

    from lightning_cam.methods import available_methods
    from lightning_cam.metrics import metric_names

    for method in available_methods():
        for metric in metric_names():
            for key in (f"cam/{method}/{metric}", f"cam_test/{method}/{metric}"):
                _validate_metric_name(key)  # raises on a name MLflow rejects
                # and no logger's sanitising changes it: MLflow's keeps [a-zA-Z0-9_/. -], the others keep more
                assert re.sub("[^a-zA-Z0-9_/. -]+", "", key) == key


def test_a_tag_unsafe_method_name_is_refused_with_the_fix() -> None:
    from lightning_cam import CAMCallback
    from lightning_cam.methods import GradCAM

    class Plus(GradCAM):
        name = "grad+cam"

    with pytest.raises(ValueError, match="'grad\\+cam' would be changed by some loggers.*'grad_pcam'"):
        CAMCallback(methods=(Plus,))


def test_old_spellings_stay_aliases_of_the_canonical_names() -> None:
    from lightning_cam import CAMCallback

    assert CAMCallback(methods=("gradcam++", "Smooth Grad-CAM++")).methods == ("gradcam_pp", "smoothgradcam_pp")


class CustomLogger(Logger):
    """A user's own logger: scalars kept in memory, a log_dir of its own."""

    def __init__(self, log_dir: str | None) -> None:
        super().__init__()
        self._dir = log_dir
        self.metrics: list[tuple[dict[str, float], int | None]] = []

    @property
    def name(self) -> str:
        return "custom"

    @property
    def version(self) -> int:
        return 0

    @property
    def log_dir(self) -> str | None:
        return self._dir

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((dict(metrics), step))


class WriterLogger(CustomLogger):
    """A custom logger whose experiment has add_image: treated like TensorBoard."""

    @property
    def experiment(self) -> Writer:
        if not hasattr(self, "_writer"):
            self._writer = Writer()
        return self._writer


def test_sink_kinds_of_custom_loggers(tmp_path: Any) -> None:
    assert isinstance(sink_for(CustomLogger(str(tmp_path))), PNGDirectorySink)
    assert sink_for(CustomLogger(None)) is None
    writer = WriterLogger(None)
    sink = sink_for(writer)
    assert isinstance(sink, TensorBoardSink)
    sink.log_image("cam/gradcam/grid", torch.rand(3, 4, 4), 7)
    assert writer.experiment.calls == [("cam/gradcam/grid", (3, 4, 4), 7, "CHW")]
    assert sink.save(torch.rand(3, 4, 4), "x.png") is None  # no directory: no file anywhere


def test_a_custom_logger_gets_scalars_and_png_files_in_its_own_log_dir(tmp_path: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_cam import CAMCallback
    from lightning_cam.data import ShapesDataModule
    from lightning_cam.models import GAPClassifier

    monkeypatch.chdir(tmp_path)
    dm = ShapesDataModule(num_train=32, num_val=32, image_size=32, batch_size=16, seed=0)
    model = GAPClassifier(num_classes=5, channels=(8, 16), mean=dm.hparams.mean, std=dm.hparams.std)
    logger, blind = CustomLogger(str(tmp_path / "mine")), CustomLogger(None)
    t = pl.Trainer(logger=[logger, blind], callbacks=[CAMCallback(num_images=2, on_error="raise")], max_epochs=1,
                   default_root_dir=str(tmp_path / "root"), enable_progress_bar=False, enable_model_summary=False,
                   enable_checkpointing=False, num_sanity_val_steps=0)
    with pytest.warns(UserWarning, match=r"logger\(s\) \['CustomLogger'\] have no image call and no log_dir"):
        t.fit(model, dm)
    assert [step for m, step in logger.metrics if "cam/gradcam/adcc" in m] == [1]
    assert sorted(os.listdir(tmp_path / "mine")) == ["cam_evolution_gradcam.png", "cam_gradcam_grid_step1.png",
                                                     "cam_gradcam_worst_step1.png", "cam_summary.png"]
    assert [p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*.png")] == ["mine"] * 4
