"""Regenerate the README's "Catching a shortcut" pictures and numbers from two real runs.

Trains ``configs/shapes.yaml`` (clean) and ``configs/shapes_shortcut.yaml`` (the same images, 95 % of them
with a class-coded marker) through the project's own CLI, reads their TensorBoard event files back and
writes, under ``docs/``:

* ``shortcut_curves.png``: validation accuracy and the Grad-CAM curves a user watches (pointing game,
  energy pointing game, ADCC), clean and shortcut side by side, one point per epoch;
* ``shortcut_grid.png``: the callback's last Grad-CAM grid of each run (the fixed probe images on top,
  the heatmap overlays below), clean above shortcut: on the shortcut run the heat sits on the marker;
* ``shortcut_worst.png``: the shortcut run's last worst-case gallery ``cam/gradcam/worst`` (the scored
  samples with the lowest energy pointing game, over all 128 of the epoch): the heat on the marker;
* ``shortcut_numbers.json``: the last epoch's values, plus both models' accuracy and Grad-CAM
  localization on the validation split with the markers shuffled and with no marker at all.

Usage (a few CPU minutes; ``--logdir`` keeps the runs, ``--reuse`` reads existing runs there)::

    python scripts/make_docs_figures.py [--logdir /tmp/lightning_cam_docs] [--reuse] [--epochs 5]
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_cam import CAMCallback
from lightning_cam.cli import main
from lightning_cam.data import ShapesDataModule

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
RUNS = {"clean": "configs/shapes.yaml", "shortcut": "configs/shapes_shortcut.yaml"}
COLOURS = {"clean": "tab:blue", "shortcut": "tab:red"}
CURVES = (
    ("val_acc", "validation accuracy"),
    ("cam/gradcam/pointing_game", "Grad-CAM pointing game"),
    ("cam/gradcam/energy_pointing_game", "Grad-CAM energy pointing game"),
    ("cam/gradcam/adcc", "Grad-CAM ADCC"),
)
PROBE_METRICS = ("pointing_game", "energy_pointing_game", "adcc")


def fit(name: str, logdir: Path, epochs: int) -> tuple[str, Any]:
    """Fit one config through the CLI; returns its TensorBoard log directory and the CLI object."""
    shutil.rmtree(logdir / Path(RUNS[name]).stem / "docs", ignore_errors=True)  # one event file per run
    cli = main([
        "fit", "--config", str(REPO / RUNS[name]), f"--trainer.max_epochs={epochs}",
        f"--trainer.logger.init_args.save_dir={logdir}", "--trainer.logger.init_args.version=docs",
        f"--trainer.default_root_dir={logdir}", "--trainer.enable_progress_bar=false",
        "--trainer.enable_checkpointing=false",
    ])
    return cli.trainer.logger.log_dir, cli


def evaluate_variants(cli: Any) -> dict[str, dict[str, float]]:
    """Accuracy and Grad-CAM localization of the fitted model on the validation split with the markers
    as in training ("same"), shuffled and removed; a fresh trainer without a logger, so the run's
    event file keeps only the fit's points."""
    hparams = {k: v for k, v in cli.datamodule.hparams.items() if not k.startswith("_")}  # no _class_path
    shortcut = hparams["shortcut"] or 0.95  # the clean model meets the markers it never saw in training
    out: dict[str, dict[str, float]] = {}
    for variant in ("same", "shuffled", "none"):
        dm = ShapesDataModule(**{**hparams, "shortcut": shortcut, "val_shortcut": variant})
        callback = CAMCallback(methods=("gradcam",), metrics=PROBE_METRICS, max_samples=None, num_images=0)
        trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[callback],
                             enable_progress_bar=False, enable_model_summary=False)
        result = trainer.validate(cli.model, dm, verbose=False)[0]
        out[variant] = {"val_acc": round(result["val_acc"], 3)}
        out[variant].update({m: round(result[f"cam/gradcam/{m}"], 3) for m in PROBE_METRICS})
    return out


def read_events(log_dir: str) -> EventAccumulator:
    acc = EventAccumulator(log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def draw_curves(events: dict[str, EventAccumulator], path: Path) -> None:
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.3), dpi=80)
    for ax, (tag, title) in zip(axes, CURVES):
        for name, acc in events.items():
            points = acc.Scalars(tag)
            epochs = np.arange(1, len(points) + 1)
            ax.plot(epochs, [p.value for p in points], "o-", color=COLOURS[name], label=name)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1.02)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle("clean Shapes vs. the same images with a class-coded marker (validation keeps the marker)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def last_grid(acc: EventAccumulator, tag: str = "cam/gradcam/grid") -> Image.Image:
    return Image.open(io.BytesIO(acc.Images(tag)[-1].encoded_image_string)).convert("RGB")


def draw_grids(events: dict[str, EventAccumulator], path: Path, width: int = 960) -> None:
    """The last Grad-CAM grid of each run, stacked under a caption, resized to ``width`` pixels."""
    fig_rows = []
    for name, acc in events.items():
        grid = last_grid(acc)
        grid = grid.resize((width, round(grid.height * width / grid.width)), Image.LANCZOS)
        fig_rows.append((name, np.asarray(grid)))
    heights = [g.shape[0] for _, g in fig_rows]
    fig, axes = plt.subplots(len(fig_rows), 1, figsize=(width / 100, sum(heights) / 100 + 0.8), dpi=100,
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (name, grid) in zip(axes[:, 0], fig_rows):
        ax.imshow(grid)
        ax.set_axis_off()
        ax.set_title(f"{name} run, last epoch: Grad-CAM on the probe images", fontsize=10)
    fig.tight_layout(pad=0.3)
    fig.savefig(path)
    plt.close(fig)
    # A palette PNG keeps the committed file small (the overlays need far fewer than 256 colours).
    Image.open(path).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)


def draw_worst(acc: EventAccumulator, path: Path, width: int = 960) -> None:
    """The last Grad-CAM worst-case gallery of a run, resized to ``width`` pixels, as a palette PNG."""
    gallery = last_grid(acc, "cam/gradcam/worst")
    gallery = gallery.resize((width, round(gallery.height * width / gallery.width)), Image.LANCZOS)
    gallery.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)


def main_script() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="/tmp/lightning_cam_docs", help="where the two runs are written")
    parser.add_argument("--reuse", action="store_true", help="read runs already in --logdir (no training)")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    logdir = Path(args.logdir)
    DOCS.mkdir(exist_ok=True)
    numbers: dict[str, Any] = {}
    log_dirs: dict[str, str] = {}
    if args.reuse:
        numbers = json.loads((DOCS / "shortcut_numbers.json").read_text())
        for name in RUNS:
            log_dirs[name] = glob.glob(str(logdir / Path(RUNS[name]).stem / "docs"))[0]
    else:
        for name in RUNS:
            log_dirs[name], cli = fit(name, logdir, args.epochs)
            numbers[name] = {"validation_variants": evaluate_variants(cli)}
    events = {name: read_events(d) for name, d in log_dirs.items()}
    for name, acc in events.items():
        numbers[name]["last_epoch"] = {tag: round(acc.Scalars(tag)[-1].value, 3) for tag, _ in CURVES}
        numbers[name]["curves"] = {tag: [round(p.value, 3) for p in acc.Scalars(tag)] for tag, _ in CURVES}
    draw_curves(events, DOCS / "shortcut_curves.png")
    draw_grids(events, DOCS / "shortcut_grid.png")
    draw_worst(events["shortcut"], DOCS / "shortcut_worst.png")
    (DOCS / "shortcut_numbers.json").write_text(json.dumps(numbers, indent=2) + "\n")
    for name in ("shortcut_curves.png", "shortcut_grid.png", "shortcut_worst.png", "shortcut_numbers.json"):
        print(f"wrote docs/{name} ({os.path.getsize(DOCS / name) // 1024} KiB)")
    print(json.dumps({k: {"validation_variants": v["validation_variants"]} for k, v in numbers.items()}, indent=1))


if __name__ == "__main__":
    main_script()
