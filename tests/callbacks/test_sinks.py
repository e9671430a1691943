"""Image sinks: TensorBoard add_image, PNG files, failures collected, the output directory."""

from __future__ import annotations

import os
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from lightning_cam.callbacks.sinks import (
    PNGDirectorySink,
    TensorBoardSink,
    image_sinks,
    log_to_all,
    safe_name,
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
