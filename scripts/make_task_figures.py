"""Regenerate the README's pictures and numbers of a multi-label and a binary classifier from two real runs.

Trains ``configs/shapes_multilabel.yaml`` (two or three objects per image, a sigmoid per class) and
``configs/shapes_binary.yaml`` (square against circle, one logit) through the project's own CLI, reads
their TensorBoard event files back and writes, under ``docs/``:

* ``task_grids.png``: each run's last Grad-CAM grid (the multi-label grid has one column per (probe
  image, label) pair, captioned with the class its map explains);
* ``task_numbers.json``: per epoch, validation accuracy and the Grad-CAM curves (pointing game overall
  and per class, Average Drop, ADCC), with the per-class chance level of the pointing game (the share of
  the image the class's object covers).

Usage (a few CPU minutes; ``--reuse`` reads existing runs in ``--logdir``)::

    python scripts/make_task_figures.py [--logdir /tmp/lightning_cam_tasks] [--reuse]
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from make_docs_figures import draw_grids, read_events

from lightning_cam.cli import main
from lightning_cam.data import ShapesDataModule

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
RUNS = {"multi-label": "configs/shapes_multilabel.yaml", "binary": "configs/shapes_binary.yaml"}


def fit(config: str, logdir: Path, overrides: Sequence[str] = (), version: str = "docs") -> str:
    """Fit one config through the CLI (``overrides``: more command-line arguments); returns its TensorBoard log
    directory, ``<logdir>/<config's name>/<version>``."""
    shutil.rmtree(logdir / Path(config).stem / version, ignore_errors=True)  # one event file per run
    cli = main([
        "fit", "--config", str(REPO / config), f"--trainer.logger.init_args.save_dir={logdir}",
        f"--trainer.logger.init_args.version={version}", f"--trainer.default_root_dir={logdir}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false", *overrides,
    ])
    return str(cli.trainer.logger.log_dir)


def fitted(config: str, logdir: Path, reuse: bool, overrides: Sequence[str] = (), version: str = "docs") -> str:
    """The TensorBoard log directory of ``config``'s run in ``logdir``: the one already there with ``reuse``, else
    a new `fit`."""
    found = glob.glob(str(logdir / Path(config).stem / version))
    return found[0] if reuse and found else fit(config, logdir, overrides, version)


def curves(acc: Any) -> dict[str, list[float]]:
    tags = [t for t in acc.Tags()["scalars"] if t == "val_acc" or (t.startswith("cam/gradcam/") and any(
        m in t for m in ("/pointing_game", "/average_drop", "/adcc")))]
    return {t: [round(e.value, 4) for e in acc.Scalars(t)] for t in sorted(tags)}


def main_script() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="/tmp/lightning_cam_tasks", help="where the two runs are written")
    parser.add_argument("--reuse", action="store_true", help="read runs already in --logdir (no training)")
    args = parser.parse_args()
    logdir = Path(args.logdir)
    dirs = {}
    for name, config in RUNS.items():
        dirs[name] = fitted(config, logdir, args.reuse)
    events = {name: read_events(d) for name, d in dirs.items()}
    DOCS.mkdir(exist_ok=True)
    draw_grids(events, DOCS / "task_grids.png")
    val = ShapesDataModule(task="multilabel")  # the config's validation split: its objects' areas
    val.setup("validate")
    area = val.val_set.masks.float().flatten(2).mean(2).sum(0) / val.val_set.labels.sum(0).clamp(min=1)
    numbers = {name: curves(acc) for name, acc in events.items()}
    numbers["multi-label chance of the pointing game per class"] = {  # type: ignore[assignment]
        n: round(float(a), 4) for n, a in zip(val.class_names, area)}
    (DOCS / "task_numbers.json").write_text(json.dumps(numbers, indent=1) + "\n")
    print(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main_script()
