"""The LightningCLI entry point and every shipped config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from lightning_cam.cli import LINKED_ATTRIBUTES, main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
QUIET = ["--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


@pytest.fixture(autouse=True)
def _clean_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    # main(args) must not see pytest's own command line
    monkeypatch.setattr(sys, "argv", ["lightning-cam"])


def test_all_expected_configs_exist() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"shapes", "shapes_ddp", "cifar10", "mnist", "imagefolder"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_print_config(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    model, data = printed["model"], printed["data"]
    assert model["class_path"].startswith("lightning_cam.models.")
    assert data["class_path"].startswith("lightning_cam.data.")
    assert not set(LINKED_ATTRIBUTES) & set(model["init_args"]), "linked keys come from the datamodule"
    callbacks = printed["trainer"]["callbacks"]
    cam = [c for c in callbacks if c["class_path"] == "lightning_cam.CAMCallback"]
    assert len(cam) == 1 and cam[0]["init_args"]["methods"]
    assert printed["seed_everything"] == 0
    if "download" in data["init_args"]:
        assert data["init_args"]["download"] is False, "configs never download by default"


def _config_cam() -> dict:
    """The CAMCallback init_args of configs/shapes.yaml, as written in the file."""
    return yaml.safe_load((ROOT / "configs" / "shapes.yaml").read_text())["trainer"]["callbacks"][0]["init_args"]


def test_shapes_config_is_the_documented_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(ROOT / "configs" / "shapes.yaml"), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    trainer = printed["trainer"]
    assert trainer["accelerator"] == "cpu" and trainer["logger"]["class_path"].endswith("TensorBoardLogger")
    assert trainer["logger"]["init_args"]["save_dir"] == "lightning_logs"
    cam = trainer["callbacks"][0]["init_args"]
    assert cam["methods"] == _config_cam()["methods"] and "gradcam" in cam["methods"]
    assert printed["model"]["class_path"] == "lightning_cam.models.GAPClassifier"
    assert printed["data"]["class_path"] == "lightning_cam.data.ShapesDataModule"


def test_ddp_config_uses_two_cpu_processes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(ROOT / "configs" / "shapes_ddp.yaml"), "--print_config"])
    trainer = yaml.safe_load(capsys.readouterr().out)["trainer"]
    assert (trainer["accelerator"], trainer["devices"], trainer["strategy"]) == ("cpu", 2, "ddp")


def test_defaults_are_gap_classifier_on_shapes() -> None:
    cli = main(QUIET + ["--data.num_classes=4"], run=False)
    assert type(cli.model).__name__ == "GAPClassifier" and type(cli.datamodule).__name__ == "ShapesDataModule"
    assert cli.model.fc.out_features == 4
    assert cli.model.cam_class_names == ["square", "circle", "triangle", "cross"]
    assert cli.model.cam_mean == cli.datamodule.mean and cli.model.cam_std == cli.datamodule.std
    assert cli.model.hparams["mean"] == cli.datamodule.hparams["mean"]


def test_model_without_linked_arguments_still_instantiates() -> None:
    cli = main([*QUIET, "--model=pytorch_lightning.demos.boring_classes.BoringModel"], run=False)
    assert type(cli.model).__name__ == "BoringModel"


def test_mnist_config_links_one_channel_without_files() -> None:
    cli = main(["--config", str(ROOT / "configs" / "mnist.yaml"), *QUIET, "--trainer.callbacks=null"], run=False)
    assert cli.model.features[0][0].in_channels == 1
    assert cli.model.fc.out_features == 10 and cli.model.cam_mean == (0.1307,)


def test_imagefolder_config_reads_classes_from_tree(tmp_path: Path) -> None:
    for cls in ("apple", "banana", "cherry"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "train" / cls / "0.png")
    args = ["--config", str(ROOT / "configs" / "imagefolder.yaml"), *QUIET, f"--data.root={tmp_path}"]
    cli = main(args, run=False)
    assert cli.model.model.fc.out_features == 3
    assert cli.model.cam_class_names == ["apple", "banana", "cherry"]


def test_cifar10_config_missing_data_error() -> None:
    with pytest.raises(FileNotFoundError, match="download=True"):
        main(["validate", "--config", str(ROOT / "configs" / "cifar10.yaml"), *QUIET, "--trainer.callbacks=null",
              "--data.root=/nonexistent/cifar"])


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model on a shared CPU: one intra-op thread is faster
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_fit_shapes_config_end_to_end(tmp_path: Path, one_thread) -> None:
    cli = main([
        "fit", "--config", str(ROOT / "configs" / "shapes.yaml"),
        "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
        "--data.num_train=64", "--data.num_val=32", "--data.num_test=8", "--data.image_size=32",
        "--data.batch_size=32", "--model.channels=[8, 16]",
    ])
    metrics = cli.trainer.callback_metrics
    assert {"val_acc", "val_loss", "train_loss"} <= set(metrics)
    for method in _config_cam()["methods"]:
        for metric in ("adcc", "pointing_game", "iou"):
            assert torch.isfinite(metrics[f"cam/{method}/{metric}"]), f"cam/{method}/{metric}"
    log_dir = Path(cli.trainer.logger.log_dir)
    assert log_dir.is_relative_to(tmp_path) and list(log_dir.glob("events.out.tfevents.*"))
    assert (log_dir / "config.yaml").is_file()
    (ckpt,) = tmp_path.rglob("*.ckpt")
    from lightning_cam.models import GAPClassifier

    restored = GAPClassifier.load_from_checkpoint(ckpt)  # linked values were saved as hparams
    assert restored.cam_mean == cli.model.cam_mean and restored.cam_class_names == cli.model.cam_class_names
    assert restored.fc.out_features == 5 and restored.cam_layer() == "features.1"


@pytest.mark.slow
def test_fit_shapes_ddp_config_on_two_cpu_processes(tmp_path: Path) -> None:
    # Also proves `python train.py` is the CLI. DDP through LightningCLI re-launches this command
    # for rank 1; gloo on CPU.
    out = subprocess.run(
        [
            sys.executable, str(ROOT / "train.py"), "fit", "--config", str(ROOT / "configs" / "shapes_ddp.yaml"),
            "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false",
            f"--trainer.logger.init_args.save_dir={tmp_path}", "--data.num_train=64", "--data.num_val=32",
            "--data.image_size=32", "--data.batch_size=16", "--model.channels=[8, 16]",
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = list(tmp_path.glob("shapes_ddp/version_*"))
    assert len(runs) == 1, "one TensorBoard run, written by rank zero only"
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"val_acc", "cam/gradcam/adcc", "cam/eigencam/iou"} <= scalars
    assert "cam/gradcam/grid" in events.Tags()["images"]


@pytest.mark.slow
def test_the_console_script_exits_0_after_a_successful_run(tmp_path: Path) -> None:
    """What `lightning-cam fit ...` does: the installed entry point, called as a console script calls it."""
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="lightning-cam")
    assert script.value == "lightning_cam.cli:run"
    code = (f"import sys; from {script.module} import {script.attr} as entry; sys.argv = sys.argv[:1] + "
            f"sys.argv[1:]; sys.exit(entry())")
    args = ["fit", "--config", str(ROOT / "configs" / "shapes.yaml"), "--trainer.max_epochs=1", *QUIET,
            "--trainer.enable_checkpointing=false", f"--trainer.default_root_dir={tmp_path}", "--data.num_train=16",
            "--data.num_val=16", "--data.num_test=8", "--data.image_size=32", "--data.batch_size=16",
            "--model.channels=[8, 8]"]
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _typo(tmp_path: Path, key: str, bad: str) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "shapes.yaml").read_text())
    config["trainer"]["callbacks"][0]["init_args"][key] = yaml.safe_load(bad)
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_bad_method_name_in_a_config_is_one_short_error(tmp_path: Path) -> None:
    """What a user sees for a typo in a YAML config: one error line naming the bad name and the valid ones (exit
    status 2, as for a parse error), no traceback."""
    path = _typo(tmp_path, "methods", "[gradcm, eigencam]")
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "fit", "--config", str(path), *QUIET],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("Seed set")]
    assert len(lines) == 1 and lines[0].startswith("train.py: error: "), done.stderr[-3000:]
    assert "unknown CAM method 'gradcm'; valid names: " in lines[0] and "Traceback" not in done.stderr


@pytest.mark.parametrize(("key", "bad"), [("metrics", "[adc]"), ("views", "[galery]")])
def test_a_bad_metric_or_view_name_is_the_same_one_line(tmp_path: Path, key: str, bad: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(_typo(tmp_path, key, bad)), *QUIET])
    assert stop.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and ": error: " in lines[0] and yaml.safe_load(bad)[0] in lines[0], lines


def test_a_bundled_config_is_reachable_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    from lightning_cam.cli import bundled_configs

    assert {p.stem for p in CONFIGS} == set(bundled_configs())
    for name in ("shapes", "shapes.yaml"):
        with pytest.raises(SystemExit):
            main(["fit", "--config", name, "--print_config"])
        assert yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]["image_size"] == 64
