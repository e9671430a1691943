"""The proof that the ``"strategies"`` view catches a shortcut without masks, and the README's picture of it.

For each seed, three runs of the main job's model on Shapes with the masks and boxes left out of the batches
(``ground_truth=False``: labels only, as most real datasets are) and only the mask-free metrics:

* ``clean``: the clean data;
* ``marker``: ``configs/shapes_shortcut.yaml``'s cue, a class-coded marker in the corner opposite the object
  on 95 % of the images;
* ``watermark``: a second kind of cue, a fixed 16-pixel tag in the bottom-left corner of 20 % of the images, each
  tagged image labelled *square* whatever shape it shows (:mod:`lightning_cam.data.watermark`, like the
  copyright tag on many PASCAL VOC horse images).

Each run logs to TensorBoard; the script reads the event files back and writes, under ``docs/``:

* ``strategies_numbers.json``: per run and epoch, validation accuracy, the alarm count, and per class the
  strategy statistics (``count``, ``fixed``, ``focus``, ``same``), with the alarm warnings counted;
* ``strategies_image.png``: the last ``cam/gradcam/strategies`` image of the first seed's marker and watermark
  runs (one row per class, each strategy's mean map with share, focus and sameness, then members).

Usage (about 2 CPU minutes per run)::

    python scripts/make_strategies_figures.py [--seeds 0 1 2] [--epochs 3] [--logdir /tmp/lightning_cam_spray]
    python scripts/make_strategies_figures.py --watermark-size 0.16 --kinds watermark --out strategies_tag10
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from make_docs_figures import last_grid, read_events
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger

from lightning_cam import CAMCallback
from lightning_cam.data import ShapesDataModule
from lightning_cam.models import GAPClassifier

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
KINDS: dict[str, dict[str, Any]] = {
    "clean": {},
    "marker": {"shortcut": 0.95},
    "watermark": {"watermark": 0.2, "watermark_class": 0, "watermark_size": 0.25},
}
METRICS = ("average_drop", "increase", "coherency", "complexity", "adcc")


def run(kind: str, seed: int, epochs: int, logdir: Path, tag: float) -> tuple[str, int]:
    """One run; returns its log directory and the number of alarm warnings it gave."""
    shutil.rmtree(logdir / f"{kind}_{seed}", ignore_errors=True)
    pl.seed_everything(seed)
    options = {**KINDS[kind], "watermark_size": tag} if kind == "watermark" else KINDS[kind]
    dm = ShapesDataModule(num_train=4000, num_val=512, seed=seed, ground_truth=False, **options)
    model = GAPClassifier(channels=(16, 32, 64, 64), lr=0.003, cosine=True, class_names=list(dm.class_names),
                          mean=list(dm.mean), std=list(dm.std))
    callback = CAMCallback(methods=("gradcam",), metrics=METRICS, max_samples=256, num_images=8,
                           views=("strategies", "worst"))
    trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, logger=TensorBoardLogger(str(logdir), f"{kind}_{seed}"),
                         callbacks=[callback], enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, dm)
    alarms = sum("look at one fixed place" in str(w.message) for w in caught)
    return str(trainer.logger.log_dir), alarms


def main_script() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--logdir", default="/tmp/lightning_cam_spray")
    parser.add_argument("--watermark-size", type=float, default=0.25, help="the tag's side / the image side")
    parser.add_argument("--out", default="strategies", help="file stem under docs/ (numbers, image)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS), help="the runs to make")
    args = parser.parse_args()
    logdir = Path(args.logdir)
    numbers: dict[str, Any] = {}
    dirs: dict[str, str] = {}
    for seed in args.seeds:
        for kind in args.kinds:
            log_dir, alarms = run(kind, seed, args.epochs, logdir, args.watermark_size)
            acc = read_events(log_dir)
            tags = [t for t in acc.Tags()["scalars"]
                    if t.startswith("cam_strategies/") or "/strategy/" in t or t == "val_acc"]
            numbers[f"{kind} seed {seed}"] = {"alarm warnings": alarms, **{
                t: [round(e.value, 3) for e in acc.Scalars(t)] for t in sorted(tags)}}
            dirs[f"{kind}_{seed}"] = log_dir
            print(kind, seed, "alarm per epoch", numbers[f"{kind} seed {seed}"]["cam/gradcam/strategy/alarm"],
                  "warnings", alarms, flush=True)
    DOCS.mkdir(exist_ok=True)
    (DOCS / f"{args.out}_numbers.json").write_text(json.dumps(numbers, indent=1) + "\n")
    first = args.seeds[0]
    shown = [k for k in ("marker", "watermark") if k in args.kinds]
    images = [last_grid(read_events(dirs[f"{k}_{first}"]), "cam/gradcam/strategies") for k in shown]
    width = max(i.width for i in images)
    sheet = Image.new("RGB", (width, sum(i.height for i in images) + 8), (20, 20, 20))
    y = 0
    for image in images:
        sheet.paste(image, (0, y))
        y += image.height + 8
    sheet.quantize(256, dither=Image.Dither.NONE).save(DOCS / f"{args.out}_image.png", optimize=True)


if __name__ == "__main__":
    main_script()
