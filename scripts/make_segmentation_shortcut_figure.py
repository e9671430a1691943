"""Regenerate the docs' figures and numbers of the segmenter's planted shortcut: cued runs next to clean twins.

Trains ``configs/shapes_segmentation_shortcut.yaml`` (40 % of the images tagged, all their objects labelled
square; a U-Net with image-level context, explained at its bottleneck) and its clean twin (``--data.watermark=0``)
over three seeds through the project's own CLI, reads their TensorBoard event files back and writes, under
``docs/``:

* ``segmentation_shortcut_curves.png``: per epoch, Grad-CAM's pointing game and energy pointing game against each
  class's own pixels and the share of the squares' pairs in Eigen-CAM's fixed-place strategy, every run a line;
* ``segmentation_shortcut_strategies.png``: the last Eigen-CAM strategies image of the first seed's cued run;
* ``segmentation_shortcut_numbers.json``: per run and epoch, the pixel accuracy, both methods' alarms, fixed
  shares of the squares and localization curves.

Usage (about 17 CPU minutes here; ``--reuse`` reads existing runs in ``--logdir``)::

    python scripts/make_segmentation_shortcut_figure.py [--logdir /tmp/lightning_cam_segmentation_shortcut] [--reuse]
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from make_docs_figures import read_events
from make_task_figures import fitted
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CONFIG = "configs/shapes_segmentation_shortcut.yaml"
SEEDS = (0, 1, 2)
VARIANTS = {"cued": [], "clean": ["--data.watermark=0"]}
TAGS = ("val_acc", "cam/gradcam/strategy/alarm", "cam/eigencam/strategy/alarm", "cam_strategies/gradcam/fixed/square",
        "cam_strategies/eigencam/fixed/square", "cam/gradcam/pointing_game", "cam/gradcam/energy_pointing_game",
        "cam/gradcam/iou", "cam/eigencam/pointing_game")
PANELS = (("cam/gradcam/pointing_game", "Grad-CAM pointing game"),
          ("cam/gradcam/energy_pointing_game", "Grad-CAM energy pointing game"),
          ("cam_strategies/eigencam/fixed/square", "Eigen-CAM: squares' pairs at a fixed place"))


def curves(acc: Any) -> dict[str, list[float]]:
    return {t: [round(e.value, 4) for e in acc.Scalars(t)] for t in TAGS if t in acc.Tags()["scalars"]}


def draw_curves(numbers: dict[str, dict[str, list[float]]], path: Path) -> None:
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.3), dpi=80)
    for ax, (tag, title) in zip(axes, PANELS):
        for run, values in numbers.items():
            points = values.get(tag, [])
            cued = run.startswith("cued")
            ax.plot(range(1, len(points) + 1), points, "o-", color="tab:red" if cued else "tab:blue", alpha=0.8,
                    label=run.split(" ")[0] if run.endswith("seed 0") else None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_xticks(range(1, 1 + max(len(v.get(tag, [])) for v in numbers.values())))
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle("segmenter: tagged images' objects all labelled square (red) vs. clean twins (blue), 3 seeds",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main_script() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="/tmp/lightning_cam_segmentation_shortcut", help="where runs are written")
    parser.add_argument("--reuse", action="store_true", help="read runs already in --logdir (no training)")
    args = parser.parse_args()
    numbers: dict[str, dict[str, list[float]]] = {}
    first: Any = None
    for seed in SEEDS:
        for variant, overrides in VARIANTS.items():
            run = fitted(CONFIG, Path(args.logdir), args.reuse, [*overrides, f"--seed_everything={seed}",
                                                                   f"--data.seed={seed}"], f"{variant}_{seed}")
            acc = read_events(run)
            numbers[f"{variant} seed {seed}"] = curves(acc)
            if first is None:
                first = acc
    DOCS.mkdir(exist_ok=True)
    draw_curves(numbers, DOCS / "segmentation_shortcut_curves.png")
    image = Image.open(io.BytesIO(first.Images("cam/eigencam/strategies")[-1].encoded_image_string)).convert("RGB")
    image.quantize(256, dither=Image.Dither.NONE).save(DOCS / "segmentation_shortcut_strategies.png", optimize=True)
    (DOCS / "segmentation_shortcut_numbers.json").write_text(json.dumps(numbers, indent=1) + "\n")
    print(json.dumps({run: {t: v[-1] for t, v in values.items()} for run, values in numbers.items()}, indent=1))


if __name__ == "__main__":
    main_script()
