"""Catching a shortcut: what a user of configs/shapes_shortcut.yaml sees next to the clean configs/shapes.yaml.

Both configs are trained briefly (2 epochs, Grad-CAM only, seeded) through the CLI. On validation with the
marker, the shortcut model stays accurate while Grad-CAM's pointing game is far below the clean model's;
on the config's test split, where the markers are shuffled, its accuracy falls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lightning_cam.cli import main

REPO = Path(__file__).resolve().parents[1]


def _run(config: str, tmp_path: Path) -> dict[str, float]:
    cfg: dict[str, Any] = yaml.safe_load((REPO / "configs" / config).read_text())
    cfg["trainer"].update(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, default_root_dir=str(tmp_path))
    cam = cfg["trainer"]["callbacks"][0]["init_args"]
    cam.update(methods=["gradcam"], metrics=["pointing_game", "energy_pointing_game"], max_samples=256,
               num_images=0)
    cfg["data"]["init_args"].update(num_val=256, num_test=256)
    cli = main(args={"fit": cfg})
    out = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith(("val_acc", "cam/"))}
    out["test_acc"] = cli.trainer.test(cli.model, cli.datamodule, verbose=False)[0]["test_acc"]
    return out


@pytest.mark.slow
def test_shortcut_config_keeps_accuracy_but_loses_the_object(tmp_path: Path) -> None:
    clean = _run("shapes.yaml", tmp_path / "clean")
    shortcut = _run("shapes_shortcut.yaml", tmp_path / "shortcut")
    pointing = "cam/gradcam/pointing_game"
    summary = f"clean {clean}, shortcut {shortcut}"
    # With the marker as in training the shortcut model is at least as accurate as the clean one ...
    assert shortcut["val_acc"] >= 0.9, summary
    # ... but Grad-CAM's maximum has left the object (it sits on the marker).
    assert clean[pointing] >= 0.6, summary
    assert shortcut[pointing] <= clean[pointing] - 0.4, summary
    assert shortcut["cam/gradcam/energy_pointing_game"] < clean["cam/gradcam/energy_pointing_game"], summary
    # The config's test split shuffles the markers: the shortcut model's accuracy falls.
    assert shortcut["test_acc"] <= 0.6 and shortcut["test_acc"] <= shortcut["val_acc"] - 0.3, summary
