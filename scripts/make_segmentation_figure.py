"""Regenerate the docs' picture and numbers of the semantic segmenter from one real run.

Trains ``configs/shapes_segmentation.yaml`` (a small U-Net on the Shapes label maps) through the project's own
CLI, reads its TensorBoard event files back and writes, under ``docs/``:

* ``segmentation_grids.png``: the last Grad-CAM and Eigen-CAM grids (one column per (probe image, predicted
  class), each pair's region outlined in white);
* ``segmentation_numbers.json``: per epoch, the pixel accuracy and the Grad-CAM curves (pointing game, IoU,
  Average Drop, ADCC), with the chance level of the pointing game (the mean share of the image a class's pixels
  cover, over the validation label maps' (image, class) pairs).

Usage (a few CPU minutes; ``--reuse`` reads an existing run in ``--logdir``)::

    python scripts/make_segmentation_figure.py [--logdir /tmp/lightning_cam_segmentation] [--reuse]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from make_docs_figures import draw_grids, read_events
from make_task_figures import fitted

from lightning_cam.data import ShapesDataModule

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CONFIG = "configs/shapes_segmentation.yaml"


def curves(acc: Any) -> dict[str, list[float]]:
    tags = [t for t in acc.Tags()["scalars"] if t == "val_acc" or t in (
        "cam/gradcam/pointing_game", "cam/gradcam/iou", "cam/gradcam/average_drop", "cam/gradcam/adcc",
        "cam/eigencam/pointing_game", "cam/eigencam/iou")]
    return {t: [round(e.value, 4) for e in acc.Scalars(t)] for t in sorted(tags)}


def main_script() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="/tmp/lightning_cam_segmentation", help="where the run is written")
    parser.add_argument("--reuse", action="store_true", help="read the run already in --logdir (no training)")
    args = parser.parse_args()
    acc = read_events(fitted(CONFIG, Path(args.logdir), args.reuse))
    DOCS.mkdir(exist_ok=True)
    draw_grids({"segmentation (Grad-CAM)": acc}, DOCS / "segmentation_grids.png")
    val = ShapesDataModule(task="segmentation", num_classes=6)  # the config's validation split
    val.setup("validate")
    assert val.val_set is not None
    masks = val.val_set.masks.float()  # (N, K, S, S): a class's pixels, per image
    present = masks.flatten(2).any(2)
    chance = float(masks.flatten(2).mean(2)[present].mean())
    numbers: dict[str, Any] = {"segmentation": curves(acc), "chance of the pointing game": round(chance, 4)}
    (DOCS / "segmentation_numbers.json").write_text(json.dumps(numbers, indent=1) + "\n")
    print(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main_script()
